// The single-rank computation that ring.cp2.mlir shards: dim 0 of x, r, w
// and v is the rank; the shifts are rotations of dim 0 by slices.
func.func @forward(%x: tensor<2x3x5xf32> {loom.input = "x"},
                   %r: tensor<2x3x5xf32> {loom.input = "r"},
                   %w: tensor<2x5x5xf32> {loom.param = "w"},
                   %v: tensor<2x5xf32> {loom.param = "v"}) -> tensor<f32> {
  %y0 = loom.matmul %x, %w {transpose_rhs} : tensor<2x3x5xf32>, tensor<2x5x5xf32> -> tensor<2x3x5xf32>
  %y = loom.gelu %y0 approximate tanh : tensor<2x3x5xf32>
  // k1[i] = y[i − 1 mod 2]
  %yl = loom.slice %y {offsets = array<i64: 1, 0, 0>, sizes = array<i64: 1, 3, 5>} : tensor<2x3x5xf32> -> tensor<1x3x5xf32>
  %yf = loom.slice %y {offsets = array<i64: 0, 0, 0>, sizes = array<i64: 1, 3, 5>} : tensor<2x3x5xf32> -> tensor<1x3x5xf32>
  %k1 = loom.concat %yl, %yf {dim = 0 : i64} : tensor<1x3x5xf32>, tensor<1x3x5xf32> -> tensor<2x3x5xf32>
  %vb = loom.broadcast %v, [0, 2] : tensor<2x5xf32> -> tensor<2x3x5xf32>
  %m = loom.mul %k1, %vb : tensor<2x3x5xf32>
  // k2[i] = m[i + 1 mod 2]
  %mf = loom.slice %m {offsets = array<i64: 0, 0, 0>, sizes = array<i64: 1, 3, 5>} : tensor<2x3x5xf32> -> tensor<1x3x5xf32>
  %ml = loom.slice %m {offsets = array<i64: 1, 0, 0>, sizes = array<i64: 1, 3, 5>} : tensor<2x3x5xf32> -> tensor<1x3x5xf32>
  %k2 = loom.concat %ml, %mf {dim = 0 : i64} : tensor<1x3x5xf32>, tensor<1x3x5xf32> -> tensor<2x3x5xf32>
  %o1 = loom.add %y, %k1 : tensor<2x3x5xf32>
  %o = loom.add %o1, %k2 : tensor<2x3x5xf32>
  %z = loom.gelu %o approximate tanh : tensor<2x3x5xf32>
  %zr = loom.mul %z, %r : tensor<2x3x5xf32>
  %loss = loom.reduce sum %zr {dims = array<i64: 0, 1, 2>} : tensor<2x3x5xf32> -> tensor<f32>
  return %loss : tensor<f32>
}
