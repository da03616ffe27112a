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
