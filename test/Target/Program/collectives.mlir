// RUN: loom-opt %s -loom-lower-to-program | loom-translate --loom-to-program-text | FileCheck %s

// Collectives get the program's mesh, one communicator per set of axes in
// order of first use, and run on the comm stream.
// CHECK: mesh [dp=2, tp=2]
// CHECK: comm #0 [tp] size 2
// CHECK: comm #1 [dp, tp] size 4
// CHECK: = all_reduce(%{{[0-9]+}}) comm #0 stream comm {reduction = "sum"}
// CHECK: = all_gather(%{{[0-9]+}}) comm #1 stream comm {gather_dim = 0}
// CHECK: = reduce_scatter(%{{[0-9]+}}) comm #1 stream comm {reduction = "max", scatter_dim = 0}
// CHECK: = all_to_all(%{{[0-9]+}}) comm #0 stream comm {split_dim = 1, concat_dim = 0}
// CHECK: = collective_permute(%{{[0-9]+}}) comm #0 stream comm {shift = 1}
#mesh = #loom.mesh<dp = 2, tp = 2>
func.func @f(%x: tensor<4x8xf32> {loom.input = "x"}) -> (tensor<8x4xf32> {loom.output = "y"}, tensor<4x8xf32> {loom.output = "z"}) attributes {loom.mesh = #mesh} {
  %0 = loom.all_reduce sum %x {mesh = #mesh, axes = ["tp"]} : tensor<4x8xf32>
  %1 = loom.all_gather %0 {mesh = #mesh, axes = ["dp", "tp"], gather_dim = 0 : i64} : tensor<4x8xf32> -> tensor<16x8xf32>
  %2 = loom.reduce_scatter max %1 {mesh = #mesh, axes = ["dp", "tp"], scatter_dim = 0 : i64} : tensor<16x8xf32> -> tensor<4x8xf32>
  %3 = loom.all_to_all %2 {mesh = #mesh, axes = ["tp"], split_dim = 1 : i64, concat_dim = 0 : i64} : tensor<4x8xf32> -> tensor<8x4xf32>
  %4 = loom.collective_permute %2 {mesh = #mesh, axes = ["tp"], shift = 1 : i64} : tensor<4x8xf32>
  return %3, %4 : tensor<8x4xf32>, tensor<4x8xf32>
}

