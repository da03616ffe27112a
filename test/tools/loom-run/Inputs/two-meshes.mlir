// Two meshes over the same four ranks, as MoE parallel folding lays them:
// attention's [dp, tp] and the experts' [etp, ep]. Ranks are row-major in
// each: tp groups {0,1} {2,3}; etp groups {0,2} {1,3}; ep groups {0,1} {2,3}.
loom.mesh @world <dp = 2, tp = 2>
loom.mesh @experts <etp = 2, ep = 2>
func.func @folded(%x: tensor<2xf32> {loom.input = "x"})
    -> (tensor<2xf32> {loom.output = "tp_sum"}, tensor<2xf32> {loom.output = "etp_sum"},
        tensor<8xf32> {loom.output = "gathered"}) {
  %t = loom.all_reduce sum %x {mesh = @world, axes = ["tp"]} : tensor<2xf32>
  %e = loom.all_reduce sum %t {mesh = @experts, axes = ["etp"]} : tensor<2xf32>
  %g = loom.all_gather %x {mesh = @experts, axes = ["ep", "etp"], gather_dim = 0 : i64} : tensor<2xf32> -> tensor<8xf32>
  return %t, %e, %g : tensor<2xf32>, tensor<2xf32>, tensor<8xf32>
}
