// RUN: loom-opt %s -split-input-file -loom-autodiff | FileCheck %s
// RUN: loom-opt %s -split-input-file -loom-autodiff="micro-batches=2 emit-gradients=true" | FileCheck %s --check-prefix=MB2
// RUN: loom-opt %s -split-input-file -loom-autodiff="recompute=full" | FileCheck %s --check-prefix=FULL

// The training step of a matmul, an rmsnorm and the loss: parameters, their
// AdamW moments (loom.state), the inputs, lr and step in; the loss, the
// gradient norm and the new parameters and moments out, each marked with
// the name it replaces.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[W:[a-z0-9]+]]: tensor<6x8xf32> {loom.param = "w"}, %[[G:[a-z0-9]+]]: tensor<6xf32> {loom.param = "g"},
// CHECK-SAME: %[[WM:[a-z0-9]+]]: tensor<6x8xf32> {loom.state = "w.exp_avg"}, %[[GM:[a-z0-9]+]]: tensor<6xf32> {loom.state = "g.exp_avg"},
// CHECK-SAME: %[[WV:[a-z0-9]+]]: tensor<6x8xf32> {loom.state = "w.exp_avg_sq"}, %[[GV:[a-z0-9]+]]: tensor<6xf32> {loom.state = "g.exp_avg_sq"},
// CHECK-SAME: %[[X:[a-z0-9]+]]: tensor<4x8xf32> {loom.input = "x"}, %[[T:[a-z0-9]+]]: tensor<4xi32> {loom.input = "targets"},
// CHECK-SAME: %[[LR:[a-z0-9]+]]: tensor<f32> {loom.input = "lr"}, %[[STEP:[a-z0-9]+]]: tensor<i32> {loom.input = "step"})
// CHECK-SAME: -> (tensor<f32> {loom.output = "loss"}, tensor<f32> {loom.output = "grad_norm"}, tensor<6x8xf32> {loom.param = "w"}, tensor<6xf32> {loom.param = "g"}, tensor<6x8xf32> {loom.state = "w.exp_avg"}, tensor<6xf32> {loom.state = "g.exp_avg"}, tensor<6x8xf32> {loom.state = "w.exp_avg_sq"}, tensor<6xf32> {loom.state = "g.exp_avg_sq"})
// The forward, tagged fwd.
// CHECK: %[[H:.+]] = loom.matmul %[[X]], %[[W]] {loom.layer = 0 : i64, loom.phase = #loom.phase<"fwd">, transpose_rhs}
// CHECK: %[[N:.+]] = loom.rmsnorm %[[H]], %[[G]] {loom.layer = 0 : i64, loom.phase = #loom.phase<"fwd">}
// CHECK: %[[LOSS:.+]] = loom.cross_entropy %[[N]], %[[T]] {loom.phase = #loom.phase<"fwd">}
// The backward from the loss's cotangent 1: the input gradients, then the
// weight gradient (no cotangent for the data x).
// CHECK: %[[ONE:.+]] = loom.fill 1.000000e+00 {loom.phase = #loom.phase<"bwd-input">} : tensor<f32>
// CHECK: %[[DN:.+]] = loom.cross_entropy_grad %[[N]], %[[T]], %[[ONE]] {loom.phase = #loom.phase<"bwd-input">}
// CHECK: %[[DH:.+]], %[[DG:.+]] = loom.rmsnorm_grad %[[H]], %[[G]], %[[DN]] {loom.layer = 0 : i64, loom.phase = #loom.phase<"bwd-input">}
// CHECK: %[[DW:.+]] = loom.matmul %[[DH]], %[[X]] {loom.layer = 0 : i64, loom.phase = #loom.phase<"bwd-weight">, transpose_lhs}
// CHECK-NOT: loom.matmul
// The global norm, one sum of squares per gradient (g² never materialized),
// and AdamW clipped by it; no weight decay for the vector.
// CHECK-NOT: loom.mul %[[DW]], %[[DW]]
// CHECK: %[[SW:.+]] = loom.reduce sum_squares %[[DW]] {dims = array<i64: 0, 1>} : tensor<6x8xf32> -> tensor<f32>
// CHECK: %[[SG:.+]] = loom.reduce sum_squares %[[DG]] {dims = array<i64: 0>} : tensor<6xf32> -> tensor<f32>
// CHECK: %[[SS:.+]] = loom.add %[[SW]], %[[SG]]
// CHECK: %[[NORM:.+]] = loom.sqrt %[[SS]]
// CHECK: %[[NW:.+]], %[[NWM:.+]], %[[NWV:.+]] = loom.adamw %[[W]], %[[DW]], %[[WM]], %[[WV]], %[[STEP]], %[[LR]], %[[NORM]] {max_grad_norm = 1.000000e+00 : f64}
// CHECK: %[[NG:.+]], %[[NGM:.+]], %[[NGV:.+]] = loom.adamw %[[G]], %[[DG]], %[[GM]], %[[GV]], %[[STEP]], %[[LR]], %[[NORM]] {max_grad_norm = 1.000000e+00 : f64, weight_decay = 0.000000e+00 : f64}
// CHECK: return %[[LOSS]], %[[NORM]], %[[NW]], %[[NG]], %[[NWM]], %[[NGM]], %[[NWV]], %[[NGV]]

// Two microbatches: each takes its rows of the inputs, runs its forward and
// backward (tagged loom.microbatch), and the weight gradients add up; the
// loss is the mean, and each microbatch's loss cotangent is 1/2.
// MB2-LABEL: func.func @train_step(
// MB2-SAME: tensor<8x8xf32> {loom.input = "x"}, %{{.*}}: tensor<8xi32> {loom.input = "targets"}
// MB2-SAME: tensor<6x8xf32> {loom.output = "w.grad"}, tensor<6xf32> {loom.output = "g.grad"}
// MB2: loom.slice %{{.*}} {loom.microbatch = 0 : i64, loom.phase = #loom.phase<"fwd">, offsets = array<i64: 0, 0>, sizes = array<i64: 4, 8>}
// MB2: %[[L0:.+]] = loom.cross_entropy {{.*}}loom.microbatch = 0
// MB2: loom.fill 5.000000e-01 {loom.microbatch = 0 : i64, loom.phase = #loom.phase<"bwd-input">}
// MB2: %[[DW0:.+]] = loom.matmul {{.*}}loom.microbatch = 0 : i64, loom.phase = #loom.phase<"bwd-weight">
// MB2: loom.slice %{{.*}} {loom.microbatch = 1 : i64, loom.phase = #loom.phase<"fwd">, offsets = array<i64: 4, 0>, sizes = array<i64: 4, 8>}
// MB2: %[[L1:.+]] = loom.cross_entropy {{.*}}loom.microbatch = 1
// MB2: %[[DW1:.+]] = loom.matmul {{.*}}loom.microbatch = 1 : i64, loom.phase = #loom.phase<"bwd-weight">
// MB2: %[[DW:.+]] = loom.add %[[DW0]], %[[DW1]] {loom.microbatch = 1 : i64, loom.phase = #loom.phase<"bwd-weight">}
// MB2: %[[SUM:.+]] = loom.add %[[L0]], %[[L1]]
// MB2: %[[LOSS:.+]] = loom.scale %[[SUM]], 5.000000e-01
// MB2: return %[[LOSS]], %{{.*}}, %[[DW]],

// Full recompute: the layer's forward runs again when its backward first
// needs it (loom.recomputed): here before the loss's gradient, which reads
// the layer's output, so that the forward's copies die after the forward.
// FULL: loom.matmul {{.*}}loom.phase = #loom.phase<"fwd">
// FULL: %[[H2:.+]] = loom.matmul {{.*}}loom.phase = #loom.phase<"bwd-input">, loom.recomputed
// FULL: %[[N2:.+]] = loom.rmsnorm %[[H2]], {{.*}}loom.recomputed
// FULL: %[[DN:.+]] = loom.cross_entropy_grad %[[N2]],
// FULL: loom.rmsnorm_grad %[[H2]], %{{.*}}, %[[DN]]
func.func @forward(%x: tensor<4x8xf32> {loom.input = "x"},
                   %t: tensor<4xi32> {loom.input = "targets"},
                   %w: tensor<6x8xf32> {loom.param = "w"},
                   %g: tensor<6xf32> {loom.param = "g"}) -> tensor<f32> {
  %h = loom.matmul %x, %w {transpose_rhs, loom.layer = 0 : i64} : tensor<4x8xf32>, tensor<6x8xf32> -> tensor<4x6xf32>
  %n = loom.rmsnorm %h, %g {loom.layer = 0 : i64} : tensor<4x6xf32>, tensor<6xf32>
  %l = loom.cross_entropy %n, %t : tensor<4x6xf32>, tensor<4xi32> -> tensor<f32>
  return %l : tensor<f32>
}
