// RUN: loom-opt %s -split-input-file -loom-propagate-sharding | FileCheck %s
// RUN: loom-opt %s -split-input-file -loom-propagate-sharding -loom-propagate-sharding | FileCheck %s

// Megatron's tensor-parallel MLP falls out of one seed, the hidden units
// over "tp": the first weight is split by rows (column parallel), the
// second by columns (row parallel); the batch over "dp" flows from the
// data to every activation. Running the pass twice changes nothing.
loom.mesh @world <dp = 2, tp = 2>
// CHECK-LABEL: func.func @mlp(
// CHECK-SAME: loom.input = "x", loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>
// CHECK-SAME: loom.param = "w1", loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>
// CHECK-SAME: loom.param = "w2", loom.sharding = #loom.sharding<@world, [{}, {"tp"}]>
// CHECK: loom.matmul {{.*}}loom.sharding = #loom.sharding<@world, [{"dp"}, {"tp"}]>
// CHECK: loom.gelu {{.*}}loom.sharding = #loom.sharding<@world, [{"dp"}, {"tp"}]>
// CHECK: loom.matmul {{.*}}loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>
// CHECK: loom.cross_entropy
// CHECK-NOT: loom.sharding
// CHECK: return
func.func @mlp(%x: tensor<8x16xf32> {loom.input = "x", loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>},
               %t: tensor<8xi32> {loom.input = "targets"},
               %w1: tensor<32x16xf32> {loom.param = "w1"},
               %w2: tensor<16x32xf32> {loom.param = "w2"}) -> tensor<f32> {
  %h = loom.matmul %x, %w1 {transpose_rhs} : tensor<8x16xf32>, tensor<32x16xf32> -> tensor<8x32xf32>
  %a = loom.gelu %h {loom.sharding = #loom.sharding<@world, [{}, {"tp"}]>} : tensor<8x32xf32>
  %y = loom.matmul %a, %w2 {transpose_rhs} : tensor<8x32xf32>, tensor<16x32xf32> -> tensor<8x16xf32>
  %l = loom.cross_entropy %y, %t : tensor<8x16xf32>, tensor<8xi32> -> tensor<f32>
  return %l : tensor<f32>
}

// -----

// Heads: sharding an attention's heads over "tp" splits the projections
// through the reshapes that split and merge heads; a norm's hidden
// dimension is never split (it needs the whole row).
loom.mesh @world <tp = 2>
// CHECK-LABEL: func.func @heads(
// CHECK-SAME: loom.param = "wq", loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>
// CHECK-SAME: loom.param = "wo", loom.sharding = #loom.sharding<@world, [{}, {"tp"}]>
// CHECK: loom.rmsnorm
// CHECK-NOT: loom.sharding
// CHECK-SAME: tensor<2x4x16xf32>
// CHECK: loom.matmul {{.*}}#loom.sharding<@world, [{}, {}, {"tp"}]>
// CHECK: loom.reshape {{.*}}#loom.sharding<@world, [{}, {}, {"tp"}, {}]>
// CHECK: loom.attention {{.*}}#loom.sharding<@world, [{}, {}, {"tp"}, {}]>
// CHECK: loom.reshape {{.*}}#loom.sharding<@world, [{}, {}, {"tp"}]>
// CHECK: loom.matmul %{{[0-9]+}}, %arg3 {transpose_rhs}
func.func @heads(%x: tensor<2x4x16xf32> {loom.input = "x"},
                 %g: tensor<16xf32> {loom.param = "g"},
                 %wq: tensor<16x16xf32> {loom.param = "wq"},
                 %wo: tensor<16x16xf32> {loom.param = "wo"}) -> tensor<2x4x16xf32> {
  %n = loom.rmsnorm %x, %g : tensor<2x4x16xf32>, tensor<16xf32>
  %q = loom.matmul %n, %wq {transpose_rhs} : tensor<2x4x16xf32>, tensor<16x16xf32> -> tensor<2x4x16xf32>
  %q4 = loom.reshape %q : tensor<2x4x16xf32> -> tensor<2x4x4x4xf32>
  %o = loom.attention %q4, %q4, %q4 {causal, loom.sharding = #loom.sharding<@world, [{}, {}, {"tp"}, {}]>} : tensor<2x4x4x4xf32>, tensor<2x4x4x4xf32>, tensor<2x4x4x4xf32> -> tensor<2x4x4x4xf32>
  %o3 = loom.reshape %o : tensor<2x4x4x4xf32> -> tensor<2x4x16xf32>
  %y = loom.matmul %o3, %wo {transpose_rhs} : tensor<2x4x16xf32>, tensor<16x16xf32> -> tensor<2x4x16xf32>
  return %y : tensor<2x4x16xf32>
}

// -----

// Priorities: a pin (loom.shard) is never changed; a stronger seed wins a
// conflict over an axis; a weaker seed keeps what it has. What a sharding
// reaches inherits its priority (printed when not the default 1).
loom.mesh @world <tp = 2>
// CHECK-LABEL: func.func @priorities(
// CHECK-SAME: %arg1: tensor<4x8xf32> {loom.priority = 2 : i64, loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>}
// CHECK: %[[P:.+]] = loom.shard %arg0 <@world, [{}, {"tp"}]>
// CHECK: loom.add %[[P]], %arg1 {loom.priority = 0 : i64, loom.sharding = #loom.sharding<@world, [{}, {"tp"}]>}
func.func @priorities(%a: tensor<4x8xf32>, %b: tensor<4x8xf32> {loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>, loom.priority = 2 : i64}) -> tensor<4x8xf32> {
  %p = loom.shard %a <@world, [{}, {"tp"}]> : tensor<4x8xf32>
  %s = loom.add %p, %b : tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}

// -----

// Levels: the strongest shardings spread as far as they can before a
// weaker one moves, whatever the order of the ops. The weak seed on %b
// (priority 3) is next to the add; the default-priority seed on %x reaches
// the add only through the exp, and still wins it.
loom.mesh @world <tp = 2>
// CHECK-LABEL: func.func @levels(
// CHECK: loom.sqrt %arg0 {loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>}
// CHECK: loom.add {{.*}}loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>
// CHECK: return
func.func @levels(%x: tensor<4x8xf32> {loom.sharding = #loom.sharding<@world, [{"tp"}, {}]>},
                  %b: tensor<4x8xf32> {loom.sharding = #loom.sharding<@world, [{}, {"tp"}]>, loom.priority = 3 : i64}) -> tensor<4x8xf32> {
  %e = loom.sqrt %x : tensor<4x8xf32>
  %s = loom.add %b, %e : tensor<4x8xf32>
  return %s : tensor<4x8xf32>
}

// -----

// loom.reshard: the result takes the requested sharding (pinned), the
// input keeps what its producers give it, and nothing passes through.
loom.mesh @world <dp = 2>
// CHECK-LABEL: func.func @reshard(
// CHECK: %[[E:.+]] = loom.sqrt %arg0 {loom.sharding = #loom.sharding<@world, [{}, {"dp"}]>}
// CHECK: %[[R:.+]] = loom.reshard %[[E]] <@world, [{"dp"}, {}]>
// CHECK: loom.neg %[[R]] {loom.priority = 0 : i64, loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>}
func.func @reshard(%x: tensor<4x8xf32> {loom.sharding = #loom.sharding<@world, [{}, {"dp"}]>}) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %e = loom.sqrt %x : tensor<4x8xf32>
  %r = loom.reshard %e <@world, [{"dp"}, {}]> : tensor<4x8xf32>
  %n = loom.neg %r : tensor<4x8xf32>
  return %e, %n : tensor<4x8xf32>, tensor<4x8xf32>
}
