// RUN: loom-opt %s -split-input-file -loom-autodiff -verify-diagnostics

// The forward returns its loss and nothing else.
// expected-error @+1 {{the forward function must return only its loss, a tensor<f32>}}
func.func @two(%w: tensor<4xf32> {loom.param = "w"}) -> (tensor<f32>, tensor<4xf32>) {
  %s = loom.reduce sum %w {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  return %s, %w : tensor<f32>, tensor<4xf32>
}

// -----

// Every argument is a parameter or an input.
// expected-error @+1 {{argument #1 is neither a {loom.param} nor a {loom.input}}}
func.func @unmarked(%w: tensor<4xf32> {loom.param = "w"}, %x: tensor<4xf32>) -> tensor<f32> {
  %p = loom.mul %w, %x : tensor<4xf32>
  %s = loom.reduce sum %p {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// Nothing to train.
// expected-error @+1 {{the forward function has no {loom.param} argument to train}}
func.func @nothing(%x: tensor<4xf32> {loom.input = "x"}) -> tensor<f32> {
  %s = loom.reduce sum %x {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// An op without a vector-Jacobian rule between the loss and a parameter.
func.func @max(%w: tensor<4xf32> {loom.param = "w"}) -> tensor<f32> {
  // expected-error @+1 {{reduce max has no vector-Jacobian rule yet; gradients flow only through sum and mean}}
  %s = loom.reduce max %w {dims = array<i64: 0>} : tensor<4xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// Integer parameters cannot be trained.
// expected-error @+1 {{parameter argument #0 must have a float element type}}
func.func @ints(%w: tensor<4xi32> {loom.param = "w"}) -> tensor<f32> {
  %f = loom.fill 0.0 : tensor<f32>
  return %f : tensor<f32>
}
