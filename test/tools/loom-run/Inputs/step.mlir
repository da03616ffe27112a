// The step of Inputs/format-1.0/step-1.0.mlir in today's IR: adamw's
// learning rate is an operand (here a constant).
func.func @step(%x: tensor<4x8xf32> {loom.input = "x"},
                %w: tensor<6x8xf32> {loom.param = "w"},
                %ew: tensor<2x8x8xf32> {loom.param = "experts"},
                %m: tensor<6x8xf32> {loom.param = "m"},
                %v: tensor<6x8xf32> {loom.param = "v"},
                %t: tensor<i32> {loom.input = "step"})
    -> (tensor<f32> {loom.output = "loss"}, tensor<6x8xf32> {loom.output = "w_next"},
        tensor<6x8xf32> {loom.output = "m_next"}, tensor<6x8xf32> {loom.output = "v_next"}) {
  %h = loom.matmul %x, %w {transpose_rhs} : tensor<4x8xf32>, tensor<6x8xf32> -> tensor<4x6xf32>
  %logits = loom.slice %h {offsets = array<i64: 0, 0>, sizes = array<i64: 4, 2>} : tensor<4x6xf32> -> tensor<4x2xf32>
  %wts, %idx = loom.router %logits {top_k = 1 : i64} : tensor<4x2xf32> -> tensor<4x1xf32>, tensor<4x1xi32>
  %d = loom.dispatch %x, %idx {num_experts = 2 : i64, capacity = 4 : i64} : tensor<4x8xf32>, tensor<4x1xi32> -> tensor<2x4x8xf32>
  %e = loom.grouped_matmul %d, %ew {transpose_weight} : tensor<2x4x8xf32>, tensor<2x8x8xf32> -> tensor<2x4x8xf32>
  %c = loom.combine %e, %wts, %idx : tensor<2x4x8xf32>, tensor<4x1xf32>, tensor<4x1xi32> -> tensor<4x8xf32>
  %g = loom.matmul %h, %c {transpose_lhs} : tensor<4x6xf32>, tensor<4x8xf32> -> tensor<6x8xf32>
  %lr = loom.constant dense<1.0e-2> : tensor<f32>
  %w2, %m2, %v2 = loom.adamw %w, %g, %m, %v, %t, %lr {weight_decay = 0.1 : f64} : tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>, tensor<i32>, tensor<f32>
  %loss = loom.reduce mean %c {dims = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
  return %loss, %w2, %m2, %v2 : tensor<f32>, tensor<6x8xf32>, tensor<6x8xf32>, tensor<6x8xf32>
}
