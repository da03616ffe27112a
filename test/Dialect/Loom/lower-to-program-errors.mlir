// RUN: loom-opt %s -split-input-file -loom-lower-to-program -verify-diagnostics

// Memory planning needs static shapes everywhere, arguments included.
// expected-error @+1 {{memory planning needs statically shaped tensors, got 'tensor<?xf32>'}}
func.func @dynamic(%x: tensor<?xf32>) {
  return
}

// -----

// Memory planning needs tensors.
// expected-error @+1 {{memory planning needs statically shaped tensors, got 'i32'}}
func.func @scalar(%x: i32) {
  return
}

// -----

// A program holds f32, bf16, f16, i32 and i64 elements only, unused arguments
// included.
// expected-error @+1 {{memory planning needs tensors of f32, bf16, f16, i32 or i64 elements, got 'tensor<4xindex>'}}
func.func @index_elements(%x: tensor<4xf32>, %i: tensor<4xindex>) {
  return
}

// -----

// Complex elements neither.
// expected-error @+1 {{memory planning needs tensors of f32, bf16, f16, i32 or i64 elements, got 'tensor<4xcomplex<f32>>'}}
func.func @complex_elements(%c: tensor<4xcomplex<f32>>) {
  return
}

// -----

// Vectors are not tensors.
// expected-error @+1 {{memory planning needs statically shaped tensors, got 'vector<4xf32>'}}
func.func @vector_argument(%v: vector<4xf32>) {
  return
}

// -----

// Sizes whose byte counts would overflow are refused.
// expected-error @+1 {{memory planning needs tensors of at most 2^50 elements and dimensions of at most 2^40, got 'tensor<4294967296x4294967296xf32>'}}
func.func @huge(%x: tensor<4294967296x4294967296xf32>) {
  return
}
