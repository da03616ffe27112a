// Shapes that do not fit.
func.func @f(%a: tensor<2x8xf32>, %b: tensor<4x5xf32>) -> tensor<2x5xf32> {
  %0 = loom.matmul %a, %b : tensor<2x8xf32>, tensor<4x5xf32> -> tensor<2x5xf32>
  return %0 : tensor<2x5xf32>
}
