// RUN: loom-opt %s -split-input-file -loom-lower-to-program | loom-translate --loom-to-program-text -split-input-file | FileCheck %s

// Collectives name their mesh; the program lists the meshes in order of first
// use, with one communicator per mesh and set of axes, on the comm stream.
// CHECK: mesh @world [dp=2, tp=2]
// CHECK: comm #0 @world [tp] size 2
// CHECK: comm #1 @world [dp, tp] size 4
// CHECK: = all_reduce(%{{[0-9]+}}) comm #0 stream comm {reduction = "sum"}
// CHECK: = all_gather(%{{[0-9]+}}) comm #1 stream comm {gather_dim = 0}
// CHECK: = reduce_scatter(%{{[0-9]+}}) comm #1 stream comm {reduction = "max", scatter_dim = 0}
// CHECK: = all_to_all(%{{[0-9]+}}) comm #0 stream comm {split_dim = 1, concat_dim = 0}
// CHECK: = collective_permute(%{{[0-9]+}}) comm #0 stream comm {shift = 1}
loom.mesh @world <dp = 2, tp = 2>
func.func @f(%x: tensor<4x8xf32> {loom.input = "x"}) -> (tensor<8x4xf32> {loom.output = "y"}, tensor<4x8xf32> {loom.output = "z"}) {
  %0 = loom.all_reduce sum %x {mesh = @world, axes = ["tp"]} : tensor<4x8xf32>
  %1 = loom.all_gather %0 {mesh = @world, axes = ["dp", "tp"], gather_dim = 0 : i64} : tensor<4x8xf32> -> tensor<16x8xf32>
  %2 = loom.reduce_scatter max %1 {mesh = @world, axes = ["dp", "tp"], scatter_dim = 0 : i64} : tensor<16x8xf32> -> tensor<4x8xf32>
  %3 = loom.all_to_all %2 {mesh = @world, axes = ["tp"], split_dim = 1 : i64, concat_dim = 0 : i64} : tensor<4x8xf32> -> tensor<8x4xf32>
  %4 = loom.collective_permute %2 {mesh = @world, axes = ["tp"], shift = 1 : i64} : tensor<4x8xf32>
  return %3, %4 : tensor<8x4xf32>, tensor<4x8xf32>
}


// -----

// Two meshes over the same four ranks (MoE folding): each communicator names
// its mesh.
// CHECK-LABEL: loom.program "folded"
// CHECK: mesh @world [dp=2, tp=2]
// CHECK: mesh @experts [etp=2, ep=2]
// CHECK: comm #0 @world [tp] size 2
// CHECK: comm #1 @experts [etp] size 2
// CHECK: = all_reduce(%0) comm #0
// CHECK: = all_reduce(%{{[0-9]+}}) comm #1
loom.mesh @world <dp = 2, tp = 2>
loom.mesh @experts <etp = 2, ep = 2>
func.func @folded(%x: tensor<4xf32> {loom.input = "x"}) -> (tensor<4xf32> {loom.output = "y"}) {
  %0 = loom.all_reduce sum %x {mesh = @world, axes = ["tp"]} : tensor<4xf32>
  %1 = loom.all_reduce sum %0 {mesh = @experts, axes = ["etp"]} : tensor<4xf32>
  return %1 : tensor<4xf32>
}
