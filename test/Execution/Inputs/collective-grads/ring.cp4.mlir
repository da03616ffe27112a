// A ring on 4 ranks: rank r computes y from its x and w, passes it on
// (shift 1: it gets y of rank r−1), scales what it got by its v and passes
// that back (shift −1: it gets rank r+1's product, y_r·v_(r+1)); the sum of
// the three goes into the rank's loss. The ranks' losses sum to
// ring.single4.mlir's.
loom.mesh @world <cp = 4>
func.func @forward(%x: tensor<3x5xf32> {loom.input = "x"},
                   %r: tensor<3x5xf32> {loom.input = "r"},
                   %w: tensor<5x5xf32> {loom.param = "w"},
                   %v: tensor<5xf32> {loom.param = "v"}) -> tensor<f32> {
  %y0 = loom.matmul %x, %w {transpose_rhs} : tensor<3x5xf32>, tensor<5x5xf32> -> tensor<3x5xf32>
  %y = loom.gelu %y0 approximate tanh : tensor<3x5xf32>
  %k1 = loom.collective_permute %y {mesh = @world, axes = ["cp"], shift = 1 : i64} : tensor<3x5xf32>
  %vb = loom.broadcast %v, [1] : tensor<5xf32> -> tensor<3x5xf32>
  %m = loom.mul %k1, %vb : tensor<3x5xf32>
  %k2 = loom.collective_permute %m {mesh = @world, axes = ["cp"], shift = -1 : i64} : tensor<3x5xf32>
  %o1 = loom.add %y, %k1 : tensor<3x5xf32>
  %o = loom.add %o1, %k2 : tensor<3x5xf32>
  %z = loom.gelu %o approximate tanh : tensor<3x5xf32>
  %zr = loom.mul %z, %r : tensor<3x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1>} : tensor<3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
