// RUN: loom-opt %s | FileCheck %s
// RUN: loom-opt %s | loom-opt | FileCheck %s
// RUN: loom-opt %s -mlir-print-op-generic | loom-opt | FileCheck %s

// Every op of the loom dialect round-trips through its custom syntax.

// CHECK: loom.mesh @world <dp = 2, tp = 4>
loom.mesh @world <dp = 2, tp = 4>
// Several meshes over the same ranks (experts folded over dp x tp).
// CHECK: loom.mesh @experts <ep = 8>
loom.mesh @experts <ep = 8>

// CHECK-LABEL: func @elementwise
func.func @elementwise(%x: tensor<2x8xf32>, %y: tensor<2x8xf32>, %h: tensor<2x8xbf16>) -> tensor<2x8xf32> {
  // CHECK: loom.add %{{.*}}, %{{.*}} : tensor<2x8xf32>
  %0 = loom.add %x, %y : tensor<2x8xf32>
  // CHECK: loom.sub
  %1 = loom.sub %0, %y : tensor<2x8xf32>
  // CHECK: loom.mul
  %2 = loom.mul %1, %y : tensor<2x8xf32>
  // CHECK: loom.div
  %3 = loom.div %2, %y : tensor<2x8xf32>
  // CHECK: loom.scale %{{.*}}, 1.250000e-01 : tensor<2x8xf32>
  %4 = loom.scale %3, 0.125 : tensor<2x8xf32>
  // CHECK: loom.gelu %{{.*}} : tensor<2x8xf32>
  %5 = loom.gelu %4 : tensor<2x8xf32>
  // CHECK: loom.gelu %{{.*}} approximate tanh : tensor<2x8xf32>
  %6 = loom.gelu %5 approximate tanh : tensor<2x8xf32>
  // CHECK: loom.silu %{{.*}} : tensor<2x8xf32>
  %7 = loom.silu %6 : tensor<2x8xf32>
  // CHECK: loom.neg %{{.*}} : tensor<2x8xf32>
  %n = loom.neg %7 : tensor<2x8xf32>
  // CHECK: loom.swiglu %{{.*}}, %{{.*}} : tensor<2x8xbf16>
  %8 = loom.swiglu %h, %h : tensor<2x8xbf16>
  // CHECK: loom.softmax %{{.*}} {axis = 0 : i64} : tensor<2x8xf32>
  %9 = loom.softmax %7 {axis = 0 : i64} : tensor<2x8xf32>
  return %9 : tensor<2x8xf32>
}

// CHECK-LABEL: func @norms
func.func @norms(%x: tensor<2x16x64xf16>, %w: tensor<64xf16>, %b: tensor<64xf16>) -> tensor<2x16x64xf16> {
  // CHECK: loom.rmsnorm %{{.*}}, %{{.*}} {epsilon = 9.9999999999999995E-7 : f64} : tensor<2x16x64xf16>, tensor<64xf16>
  %0 = loom.rmsnorm %x, %w {epsilon = 1.0e-6 : f64} : tensor<2x16x64xf16>, tensor<64xf16>
  // CHECK: loom.layernorm %{{.*}}, %{{.*}}, %{{.*}} : tensor<2x16x64xf16>, tensor<64xf16>, tensor<64xf16>
  %1 = loom.layernorm %0, %w, %b : tensor<2x16x64xf16>, tensor<64xf16>, tensor<64xf16>
  // CHECK: loom.layernorm %{{.*}}, %{{.*}} : tensor<2x16x64xf16>, tensor<64xf16>
  %2 = loom.layernorm %1, %w : tensor<2x16x64xf16>, tensor<64xf16>
  return %2 : tensor<2x16x64xf16>
}

// CHECK-LABEL: func @attention_block
func.func @attention_block(%table: tensor<100x64xf32>, %ids: tensor<2x16xi32>, %wq: tensor<64x64xf32>, %wkv: tensor<32x64xf32>) -> tensor<f32> {
  // CHECK: loom.embedding %{{.*}}, %{{.*}} : tensor<100x64xf32>, tensor<2x16xi32> -> tensor<2x16x64xf32>
  %h = loom.embedding %table, %ids : tensor<100x64xf32>, tensor<2x16xi32> -> tensor<2x16x64xf32>
  // CHECK: loom.matmul %{{.*}}, %{{.*}} {transpose_rhs} : tensor<2x16x64xf32>, tensor<64x64xf32> -> tensor<2x16x64xf32>
  %q = loom.matmul %h, %wq {transpose_rhs} : tensor<2x16x64xf32>, tensor<64x64xf32> -> tensor<2x16x64xf32>
  %kv = loom.matmul %h, %wkv {transpose_rhs} : tensor<2x16x64xf32>, tensor<32x64xf32> -> tensor<2x16x32xf32>
  // CHECK: loom.reshape %{{.*}} : tensor<2x16x64xf32> -> tensor<2x16x4x16xf32>
  %q4 = loom.reshape %q : tensor<2x16x64xf32> -> tensor<2x16x4x16xf32>
  %k4 = loom.reshape %kv : tensor<2x16x32xf32> -> tensor<2x16x2x16xf32>
  // CHECK: loom.rope %{{.*}} {position_offset = 4 : i64, theta = 5.000000e+05 : f64} : tensor<2x16x4x16xf32>
  %qr = loom.rope %q4 {theta = 500000.0 : f64, position_offset = 4 : i64} : tensor<2x16x4x16xf32>
  // CHECK: loom.attention %{{.*}}, %{{.*}}, %{{.*}} {causal} : tensor<2x16x4x16xf32>, tensor<2x16x2x16xf32>, tensor<2x16x2x16xf32> -> tensor<2x16x4x16xf32>
  %o = loom.attention %qr, %k4, %k4 {causal} : tensor<2x16x4x16xf32>, tensor<2x16x2x16xf32>, tensor<2x16x2x16xf32> -> tensor<2x16x4x16xf32>
  // CHECK: loom.attention {{.*}} {scale = 2.500000e-01 : f64}
  %o2 = loom.attention %o, %k4, %k4 {scale = 0.25 : f64} : tensor<2x16x4x16xf32>, tensor<2x16x2x16xf32>, tensor<2x16x2x16xf32> -> tensor<2x16x4x16xf32>
  %of = loom.reshape %o2 : tensor<2x16x4x16xf32> -> tensor<2x16x64xf32>
  // CHECK: loom.matmul {{.*}} : tensor<2x16x64xf32>, tensor<100x64xf32> -> tensor<2x16x100xf32>
  %logits = loom.matmul %of, %table {transpose_rhs} : tensor<2x16x64xf32>, tensor<100x64xf32> -> tensor<2x16x100xf32>
  // CHECK: loom.cross_entropy %{{.*}}, %{{.*}} : tensor<2x16x100xf32>, tensor<2x16xi32> -> tensor<f32>
  %loss = loom.cross_entropy %logits, %ids : tensor<2x16x100xf32>, tensor<2x16xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// CHECK-LABEL: func @batched_matmul
func.func @batched_matmul(%a: tensor<3x4x8xbf16>, %b: tensor<3x4x5xbf16>) -> tensor<3x8x5xbf16> {
  // CHECK: loom.matmul %{{.*}}, %{{.*}} {transpose_lhs} : tensor<3x4x8xbf16>, tensor<3x4x5xbf16> -> tensor<3x8x5xbf16>
  %0 = loom.matmul %a, %b {transpose_lhs} : tensor<3x4x8xbf16>, tensor<3x4x5xbf16> -> tensor<3x8x5xbf16>
  return %0 : tensor<3x8x5xbf16>
}

// CHECK-LABEL: func @shape_ops
func.func @shape_ops(%x: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x10xf32> {
  // CHECK: loom.transpose %{{.*}}, [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
  %t = loom.transpose %x, [1, 0] : tensor<4x8xf32> -> tensor<8x4xf32>
  // CHECK: loom.slice %{{.*}} {offsets = array<i64: 0, 1>, sizes = array<i64: 4, 2>} : tensor<8x4xf32> -> tensor<4x2xf32>
  %s = loom.slice %t {offsets = array<i64: 0, 1>, sizes = array<i64: 4, 2>} : tensor<8x4xf32> -> tensor<4x2xf32>
  // CHECK: loom.concat %{{.*}}, %{{.*}} {dim = 1 : i64} : tensor<4x8xf32>, tensor<4x2xf32> -> tensor<4x10xf32>
  %c = loom.concat %x, %s {dim = 1 : i64} : tensor<4x8xf32>, tensor<4x2xf32> -> tensor<4x10xf32>
  // CHECK: loom.broadcast %{{.*}}, [1] : tensor<8xf32> -> tensor<4x8xf32>
  %bb = loom.broadcast %b, [1] : tensor<8xf32> -> tensor<4x8xf32>
  // CHECK: loom.reduce sum %{{.*}} {dims = array<i64: 1>} : tensor<4x8xf32> -> tensor<4xf32>
  %r = loom.reduce sum %bb {dims = array<i64: 1>} : tensor<4x8xf32> -> tensor<4xf32>
  // CHECK: loom.reduce max %{{.*}} {dims = array<i64: 0>, keep_dims} : tensor<4x8xf32> -> tensor<1x8xf32>
  %m = loom.reduce max %bb {dims = array<i64: 0>, keep_dims} : tensor<4x8xf32> -> tensor<1x8xf32>
  // CHECK: loom.reduce mean
  %n = loom.reduce mean %x {dims = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
  // CHECK: loom.reduce sum_squares %{{.*}} {dims = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
  %q = loom.reduce sum_squares %x {dims = array<i64: 0, 1>} : tensor<4x8xf32> -> tensor<f32>
  return %c : tensor<4x10xf32>
}

// CHECK-LABEL: func @moe
func.func @moe(%x: tensor<32x64xf32>, %wr: tensor<8x64xf32>, %w1: tensor<8x64x128xf32>, %w2: tensor<8x64x128xf32>) -> tensor<32x64xf32> {
  %logits = loom.matmul %x, %wr {transpose_rhs} : tensor<32x64xf32>, tensor<8x64xf32> -> tensor<32x8xf32>
  // CHECK: loom.router %{{.*}} {top_k = 2 : i64} : tensor<32x8xf32> -> tensor<32x2xf32>, tensor<32x2xi32>
  %w, %i = loom.router %logits {top_k = 2 : i64} : tensor<32x8xf32> -> tensor<32x2xf32>, tensor<32x2xi32>
  // CHECK: loom.router %{{.*}} {normalize, softmax_before_topk, top_k = 2 : i64}
  %w2b, %i2 = loom.router %logits {top_k = 2 : i64, softmax_before_topk, normalize} : tensor<32x8xf32> -> tensor<32x2xf32>, tensor<32x2xi32>
  // CHECK: loom.dispatch %{{.*}}, %{{.*}} {capacity = 16 : i64, num_experts = 8 : i64} : tensor<32x64xf32>, tensor<32x2xi32> -> tensor<8x16x64xf32>
  %d = loom.dispatch %x, %i {num_experts = 8 : i64, capacity = 16 : i64} : tensor<32x64xf32>, tensor<32x2xi32> -> tensor<8x16x64xf32>
  // CHECK: loom.grouped_matmul %{{.*}}, %{{.*}} : tensor<8x16x64xf32>, tensor<8x64x128xf32> -> tensor<8x16x128xf32>
  %h = loom.grouped_matmul %d, %w1 : tensor<8x16x64xf32>, tensor<8x64x128xf32> -> tensor<8x16x128xf32>
  // CHECK: loom.grouped_matmul %{{.*}}, %{{.*}} {transpose_weight} : tensor<8x16x128xf32>, tensor<8x64x128xf32> -> tensor<8x16x64xf32>
  %y = loom.grouped_matmul %h, %w2 {transpose_weight} : tensor<8x16x128xf32>, tensor<8x64x128xf32> -> tensor<8x16x64xf32>
  // CHECK: loom.combine %{{.*}}, %{{.*}}, %{{.*}} : tensor<8x16x64xf32>, tensor<32x2xf32>, tensor<32x2xi32> -> tensor<32x64xf32>
  %o = loom.combine %y, %w, %i : tensor<8x16x64xf32>, tensor<32x2xf32>, tensor<32x2xi32> -> tensor<32x64xf32>
  return %o : tensor<32x64xf32>
}

// CHECK-LABEL: func @optimizer
func.func @optimizer(%p: tensor<64xbf16> {loom.param = "w"}, %g: tensor<64xbf16>, %m: tensor<64xf32>, %v: tensor<64xf32>, %t: tensor<i32>, %lr: tensor<f32>) -> (tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>) {
  // CHECK: loom.adamw %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {beta2 = 0.94999999999999996 : f64, weight_decay = 1.000000e-01 : f64} : tensor<64xbf16>, tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>, tensor<i32>, tensor<f32>
  %p2, %m2, %v2 = loom.adamw %p, %g, %m, %v, %t, %lr {beta2 = 0.95 : f64, weight_decay = 0.1 : f64} : tensor<64xbf16>, tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>, tensor<i32>, tensor<f32>
  return %p2, %m2, %v2 : tensor<64xbf16>, tensor<64xf32>, tensor<64xf32>
}

// CHECK-LABEL: func @collectives
// CHECK-SAME: loom.sharding = #loom.sharding<@world, [{"dp"}, {}, {"tp"}]>
func.func @collectives(%x: tensor<2x16x64xf32> {loom.sharding = #loom.sharding<@world, [{"dp"}, {}, {"tp"}], unreduced = {}>}) -> tensor<2x16x64xf32> {
  // CHECK: loom.all_reduce sum %{{.*}} {axes = ["tp"], mesh = @world} : tensor<2x16x64xf32>
  %0 = loom.all_reduce sum %x {mesh = @world, axes = ["tp"]} : tensor<2x16x64xf32>
  // CHECK: loom.all_gather %{{.*}} {axes = ["tp"], gather_dim = 1 : i64, mesh = @world} : tensor<2x16x64xf32> -> tensor<2x64x64xf32>
  %1 = loom.all_gather %0 {mesh = @world, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x16x64xf32> -> tensor<2x64x64xf32>
  // CHECK: loom.reduce_scatter sum %{{.*}} {axes = ["tp"], mesh = @world, scatter_dim = 1 : i64} : tensor<2x64x64xf32> -> tensor<2x16x64xf32>
  %2 = loom.reduce_scatter sum %1 {mesh = @world, axes = ["tp"], scatter_dim = 1 : i64} : tensor<2x64x64xf32> -> tensor<2x16x64xf32>
  // CHECK: loom.all_to_all %{{.*}} {axes = ["dp", "tp"], concat_dim = 2 : i64, mesh = @world, split_dim = 1 : i64} : tensor<2x16x64xf32> -> tensor<2x2x512xf32>
  %3 = loom.all_to_all %2 {mesh = @world, axes = ["dp", "tp"], split_dim = 1 : i64, concat_dim = 2 : i64} : tensor<2x16x64xf32> -> tensor<2x2x512xf32>
  // CHECK: loom.collective_permute %{{.*}} {axes = ["dp"], mesh = @world, shift = 1 : i64} : tensor<2x16x64xf32>
  %4 = loom.collective_permute %2 {mesh = @world, axes = ["dp"], shift = 1 : i64} : tensor<2x16x64xf32>
  // CHECK: loom.send %{{.*}} {axes = ["dp"], mesh = @world, peer_shift = 1 : i64} : tensor<2x16x64xf32>
  loom.send %4 {mesh = @world, axes = ["dp"], peer_shift = 1 : i64} : tensor<2x16x64xf32>
  // CHECK: loom.recv {axes = ["dp"], mesh = @world, peer_shift = -1 : i64} : tensor<2x16x64xf32>
  %5 = loom.recv {mesh = @world, axes = ["dp"], peer_shift = -1 : i64} : tensor<2x16x64xf32>
  // CHECK: loom.all_reduce max
  %6 = loom.all_reduce max %5 {mesh = @world, axes = ["dp", "tp"]} : tensor<2x16x64xf32>
  // CHECK: loom.all_to_all %{{.*}} {axes = ["ep"], concat_dim = 1 : i64, mesh = @experts, split_dim = 2 : i64}
  %7 = loom.all_to_all %3 {mesh = @experts, axes = ["ep"], split_dim = 2 : i64, concat_dim = 1 : i64} : tensor<2x2x512xf32> -> tensor<2x16x64xf32>
  return %6 : tensor<2x16x64xf32>
}

// Shardings on op results, partial sums pending, axis names that need
// quoting, and the layer and phase of an op.
// CHECK-LABEL: func @result_shardings
func.func @result_shardings(%x: tensor<8x64xf32>, %w: tensor<64x64xf32>) -> (tensor<8x64xf32> {loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>}) {
  // CHECK: loom.matmul %{{.*}}, %{{.*}} {loom.layer = 3 : i64, loom.phase = #loom.phase<"bwd-weight">, loom.sharding = #loom.sharding<@world, [{"dp"}, {}], unreduced = {"tp"}>}
  %y = loom.matmul %x, %w {loom.sharding = #loom.sharding<@world, [{"dp"}, {}], unreduced = {"tp"}>, loom.layer = 3 : i64, loom.phase = #loom.phase<"bwd-weight">} : tensor<8x64xf32>, tensor<64x64xf32> -> tensor<8x64xf32>
  // CHECK: loom.router %{{.*}} {loom.phase = #loom.phase<"fwd">, loom.sharding = [#loom.sharding<@world, [{"dp"}, {}]>, #loom.sharding<@world, [{"dp"}, {}]>], top_k = 1 : i64}
  %r, %i = loom.router %y {top_k = 1 : i64, loom.phase = #loom.phase<"fwd">, loom.sharding = [#loom.sharding<@world, [{"dp"}, {}]>, #loom.sharding<@world, [{"dp"}, {}]>]} : tensor<8x64xf32> -> tensor<8x1xf32>, tensor<8x1xi32>
  return %y : tensor<8x64xf32>
}

// CHECK: loom.mesh @"odd mesh" <"a b" = 2>
loom.mesh @"odd mesh" <"a b" = 2>
// CHECK-LABEL: func @quoted_axes
// CHECK-SAME: #loom.sharding<@"odd mesh", [{"a b"}]>
func.func @quoted_axes(%x: tensor<8xf32> {loom.sharding = #loom.sharding<@"odd mesh", [{"a b"}]>}) {
  return
}

// Constants, fills and element type conversions.
// CHECK-LABEL: func @constants_and_types
func.func @constants_and_types(%x: tensor<2x3xf32>) -> (tensor<2xf32>, tensor<4x8xbf16>, tensor<2x3xbf16>, tensor<3xi32>) {
  // CHECK: loom.constant dense<[1.000000e+00, 2.000000e+00]> : tensor<2xf32>
  %c = loom.constant dense<[1.0, 2.0]> : tensor<2xf32>
  // CHECK: loom.fill 0.000000e+00 : tensor<4x8xbf16>
  %z = loom.fill 0.0 : tensor<4x8xbf16>
  // CHECK: loom.convert %{{.*}} : tensor<2x3xf32> -> tensor<2x3xbf16>
  %y = loom.convert %x : tensor<2x3xf32> -> tensor<2x3xbf16>
  // CHECK: loom.fill -1.000000e+00 : tensor<3xi32>
  %i = loom.fill -1.0 : tensor<3xi32>
  return %c, %z, %y, %i : tensor<2xf32>, tensor<4x8xbf16>, tensor<2x3xbf16>, tensor<3xi32>
}
