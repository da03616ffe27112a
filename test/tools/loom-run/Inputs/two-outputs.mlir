// A small output and a large one (16 KiB as .npy), written as one set.
func.func @two(%x: tensor<4096xf32> {loom.input = "x"})
    -> (tensor<f32> {loom.output = "a_sum"},
        tensor<4096xf32> {loom.output = "b_scaled"}) {
  %s = loom.reduce sum %x {dims = array<i64: 0>} : tensor<4096xf32> -> tensor<f32>
  %y = loom.scale %x, 2.0 : tensor<4096xf32>
  return %s, %y : tensor<f32>, tensor<4096xf32>
}
