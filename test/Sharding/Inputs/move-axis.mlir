loom.mesh @world <dp = 2>
func.func @f(%x: tensor<4x6xf32> {loom.input = "x", loom.sharding = #loom.sharding<@world, [{"dp"}, {}]>}) -> (tensor<4x6xf32> {loom.output = "y"}) {
  %e = loom.scale %x, 2.0 : tensor<4x6xf32>
  %r = loom.reshard %e <@world, [{}, {"dp"} ]> : tensor<4x6xf32>
  %n = loom.neg %r : tensor<4x6xf32>
  return %n : tensor<4x6xf32>
}
