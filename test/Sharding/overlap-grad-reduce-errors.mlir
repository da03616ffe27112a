// RUN: loom-opt %s -split-input-file -verify-diagnostics

loom.mesh @world <dp = 2>
func.func @wait_without_async(%x: tensor<4xf32>) -> tensor<4xf32> {
  %r = loom.all_reduce sum %x {axes = ["dp"], mesh = @world} : tensor<4xf32>
  // expected-error @+1 {{waits for a value that no asynchronous collective (one marked 'loom.async') makes}}
  %w = loom.wait %r : tensor<4xf32>
  return %w : tensor<4xf32>
}

// -----

loom.mesh @world <dp = 2>
func.func @async_read_directly(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'loom.async' marks a collective whose result is read through 'loom.wait' only, not by 'loom.neg'}}
  %r = loom.all_reduce sum %x {axes = ["dp"], mesh = @world, loom.async} : tensor<4xf32>
  %n = loom.neg %r : tensor<4xf32>
  return %n : tensor<4xf32>
}

// -----

func.func @async_not_a_collective(%x: tensor<4xf32>) -> tensor<4xf32> {
  // expected-error @+1 {{'loom.async' marks a collective with one operand and one result}}
  %n = loom.neg %x {loom.async} : tensor<4xf32>
  return %n : tensor<4xf32>
}
