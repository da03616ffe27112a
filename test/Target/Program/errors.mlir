// RUN: loom-translate --loom-to-program %s -split-input-file -verify-diagnostics

// A function must be planned before it is emitted.
// expected-error @+1 {{function @f has no memory plan; run loom-opt -loom-lower-to-program first}}
func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
  %0 = loom.silu %x : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

// One program holds one function: with several, name the one to emit.
// expected-error @+1 {{the module has 2 function bodies (@a, @b); name the one to emit (--loom-function)}}
module {
  func.func @a() attributes {loom.arena_size = 0 : i64} { return }
  func.func @b() attributes {loom.arena_size = 0 : i64} { return }
}

// -----

// Program outputs are computed values.
func.func @passthrough(%x: tensor<4xf32> {loom.offset = 0 : i64}) -> tensor<4xf32> attributes {loom.arena_size = 64 : i64} {
  // expected-error @+1 {{returns argument #0 directly; a program output must be computed}}
  return %x : tensor<4xf32>
}

// -----

// The meshes of one program span the same ranks.
loom.mesh @tp <tp = 2>
loom.mesh @dp <dp = 4>
func.func @two_meshes(%x: tensor<4xf32> {loom.input = "x", loom.offset = 0 : i64}) -> (tensor<4xf32> {loom.output = "y"}) attributes {loom.arena_size = 192 : i64} {
  %0 = loom.all_reduce sum %x {mesh = @tp, axes = ["tp"], loom.offsets = array<i64: 64>} : tensor<4xf32>
  // expected-error @+1 {{'loom.all_reduce' op uses mesh @dp of 4 ranks, but the program's mesh @tp has 2; the meshes of one program span the same ranks}}
  %1 = loom.all_reduce sum %0 {mesh = @dp, axes = ["dp"], loom.offsets = array<i64: 128>} : tensor<4xf32>
  return %1 : tensor<4xf32>
}

// -----

// A module without a function body has no program.
// expected-error @+1 {{the module has no function body to emit}}
module {
  func.func private @declared()
}
