// RUN: loom-opt %s -split-input-file -verify-diagnostics

// Every verifier error of the loom dialect, one case each.

// Element-wise operands must agree (generic form: the custom one cannot spell a mismatch).
func.func @binary_mismatch(%a: tensor<2x3xf32>, %b: tensor<2x4xf32>) {
  // expected-error @+1 {{all of {lhs, rhs, result} have same type}}
  %0 = "loom.add"(%a, %b) : (tensor<2x3xf32>, tensor<2x4xf32>) -> tensor<2x3xf32>
  return
}

// -----

// Shapes must be static.
func.func @dynamic(%a: tensor<?x3xf32>) {
  // expected-error @+1 {{must be statically shaped tensor}}
  %0 = loom.silu %a : tensor<?x3xf32>
  return
}

// -----

// Only f32, bf16 and f16 are float element types.
func.func @f64(%a: tensor<3xf64>) {
  // expected-error @+1 {{must be statically shaped tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %0 = loom.gelu %a : tensor<3xf64>
  return
}

// -----

// rmsnorm weight must match the last dimension.
func.func @rmsnorm_size(%x: tensor<2x8xf32>, %w: tensor<4xf32>) {
  // expected-error @+1 {{weight has size 4 but the normalized (last) dimension of the input has size 8}}
  %0 = loom.rmsnorm %x, %w : tensor<2x8xf32>, tensor<4xf32>
  return
}

// -----

// rmsnorm weight is a vector.
func.func @rmsnorm_rank(%x: tensor<2x8xf32>, %w: tensor<1x8xf32>) {
  // expected-error @+1 {{weight must be a vector, got rank 2}}
  %0 = loom.rmsnorm %x, %w : tensor<2x8xf32>, tensor<1x8xf32>
  return
}

// -----

// rmsnorm weight has the input's element type.
func.func @rmsnorm_type(%x: tensor<2x8xf32>, %w: tensor<8xbf16>) {
  // expected-error @+1 {{weight element type 'bf16' differs from the input's 'f32'}}
  %0 = loom.rmsnorm %x, %w : tensor<2x8xf32>, tensor<8xbf16>
  return
}

// -----

// Norm epsilon must be positive.
func.func @rmsnorm_eps(%x: tensor<2x8xf32>, %w: tensor<8xf32>) {
  // expected-error @+1 {{epsilon must be positive, got 0}}
  %0 = loom.rmsnorm %x, %w {epsilon = 0.0 : f64} : tensor<2x8xf32>, tensor<8xf32>
  return
}

// -----

// layernorm bias must match the last dimension.
func.func @layernorm_bias(%x: tensor<2x8xf32>, %w: tensor<8xf32>, %b: tensor<7xf32>) {
  // expected-error @+1 {{bias has size 7 but the normalized (last) dimension of the input has size 8}}
  %0 = loom.layernorm %x, %w, %b : tensor<2x8xf32>, tensor<8xf32>, tensor<7xf32>
  return
}

// -----

// softmax axis must be in range.
func.func @softmax_axis(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{axis 2 is out of range for rank 2}}
  %0 = loom.softmax %x {axis = 2 : i64} : tensor<2x8xf32>
  return
}

// -----

// softmax needs a dimension.
func.func @softmax_scalar(%x: tensor<f32>) {
  // expected-error @+1 {{input must have rank >= 1}}
  %0 = loom.softmax %x : tensor<f32>
  return
}

// -----

// rope works on [batch, seq, heads, head_dim].
func.func @rope_rank(%x: tensor<2x8x64xf32>) {
  // expected-error @+1 {{input must be [batch, seq, heads, head_dim], got rank 3}}
  %0 = loom.rope %x : tensor<2x8x64xf32>
  return
}

// -----

// rope rotates pairs, so head_dim is even.
func.func @rope_odd(%x: tensor<2x8x4x7xf32>) {
  // expected-error @+1 {{head_dim (dim 3) must be even, got 7}}
  %0 = loom.rope %x : tensor<2x8x4x7xf32>
  return
}

// -----

// rope positions start at a non-negative offset.
func.func @rope_offset(%x: tensor<2x8x4x8xf32>) {
  // expected-error @+1 {{position_offset must be >= 0, got -1}}
  %0 = loom.rope %x {position_offset = -1 : i64} : tensor<2x8x4x8xf32>
  return
}

// -----

// rope theta is positive.
func.func @rope_theta(%x: tensor<2x8x4x8xf32>) {
  // expected-error @+1 {{theta must be positive, got 0}}
  %0 = loom.rope %x {theta = 0.0 : f64} : tensor<2x8x4x8xf32>
  return
}

// -----

// Attention operands are rank 4.
func.func @attention_rank(%q: tensor<2x8x64xf32>, %k: tensor<2x8x4x16xf32>) {
  // expected-error @+2 {{'loom.attention' op query must be [batch, seq, heads, head_dim], got rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %k : tensor<2x8x64xf32>, tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32> -> tensor<2x8x64xf32>
  return
}

// -----

// Key and value have one shape.
func.func @attention_kv(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x4x16xf32>, %v: tensor<2x8x2x16xf32>) {
  // expected-error @+2 {{key shape [2, 8, 4, 16] differs from value shape [2, 8, 2, 16]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %v : tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32>, tensor<2x8x2x16xf32> -> tensor<2x8x4x16xf32>
  return
}

// -----

// The queries are positions of the keys' sequence.
func.func @attention_seq(%q: tensor<2x8x4x16xf32>, %k: tensor<2x6x4x16xf32>) {
  // expected-error @+2 {{query positions 0 .. 7 (query_offset + sequence, dim 1) lie outside the 6 key/value positions}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %k : tensor<2x8x4x16xf32>, tensor<2x6x4x16xf32>, tensor<2x6x4x16xf32> -> tensor<2x8x4x16xf32>
  return
}

// -----

// A piece of the queries (context parallelism) must lie inside the keys.
func.func @attention_query_offset(%q: tensor<2x4x4x16xf32>, %k: tensor<2x8x4x16xf32>) {
  // expected-error @+2 {{query positions 6 .. 9 (query_offset + sequence, dim 1) lie outside the 8 key/value positions}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %k {causal, query_offset = 6} : tensor<2x4x4x16xf32>, tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32> -> tensor<2x4x4x16xf32>
  return
}

// -----

func.func @attention_grad_query_offset(%q: tensor<2x4x4x16xf32>, %k: tensor<2x8x4x16xf32>) {
  // expected-error @+1 {{query positions 5 .. 8 (query_offset + sequence, dim 1) lie outside the 8 key/value positions}}
  %0:3 = loom.attention_grad %q, %k, %k, %q, %q {causal, query_offset = 5} : tensor<2x4x4x16xf32>, tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32>
  return
}

// -----

// Grouped-query attention needs query heads a multiple of key/value heads.
func.func @attention_gqa(%q: tensor<2x8x6x16xf32>, %k: tensor<2x8x4x16xf32>) {
  // expected-error @+2 {{query heads (6) must be a multiple of key/value heads (4)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %k : tensor<2x8x6x16xf32>, tensor<2x8x4x16xf32>, tensor<2x8x4x16xf32> -> tensor<2x8x6x16xf32>
  return
}

// -----

// Attention operands share an element type.
func.func @attention_type(%q: tensor<2x8x4x16xf32>, %k: tensor<2x8x4x16xbf16>) {
  // expected-error @+2 {{query, key and value must have one element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.attention %q, %k, %k : tensor<2x8x4x16xf32>, tensor<2x8x4x16xbf16>, tensor<2x8x4x16xbf16> -> tensor<2x8x4x16xf32>
  return
}

// -----

// The embedding table is [vocab, hidden].
func.func @embedding_rank(%t: tensor<100xf32>, %ids: tensor<2x8xi32>) {
  // expected-error @+2 {{table must be [vocab, hidden], got rank 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.embedding %t, %ids : tensor<100xf32>, tensor<2x8xi32> -> tensor<2x8xf32>
  return
}

// -----

// Embedding ids are integers.
func.func @embedding_ids(%t: tensor<100x4xf32>, %ids: tensor<2x8xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = loom.embedding %t, %ids : tensor<100x4xf32>, tensor<2x8xf32> -> tensor<2x8x4xf32>
  return
}

// -----

// Targets match the logits without the vocabulary dimension.
func.func @cross_entropy_targets(%l: tensor<2x8x100xf32>, %t: tensor<2x7xi32>) {
  // expected-error @+2 {{targets shape [2, 7] must equal the logits shape without the vocabulary dimension, [2, 8]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.cross_entropy %l, %t : tensor<2x8x100xf32>, tensor<2x7xi32> -> tensor<f32>
  return
}

// -----

// Matmul contracting dimensions agree.
func.func @matmul_k(%a: tensor<2x3xf32>, %b: tensor<4x5xf32>) {
  // expected-error @+2 {{contracting dimensions differ: lhs dim 1 is 3, rhs dim 0 is 4}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<2x3xf32>, tensor<4x5xf32> -> tensor<2x5xf32>
  return
}

// -----

// Transposed operands contract over their other dimension.
func.func @matmul_transposed(%a: tensor<2x3xf32>, %b: tensor<5x4xf32>) {
  // expected-error @+2 {{contracting dimensions differ: lhs dim 1 is 3, rhs dim 1 is 4}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b {transpose_rhs} : tensor<2x3xf32>, tensor<5x4xf32> -> tensor<2x5xf32>
  return
}

// -----

// Matmul batch dimensions agree unless rhs has none.
func.func @matmul_batch(%a: tensor<4x2x3xf32>, %b: tensor<2x3x5xf32>) {
  // expected-error @+2 {{batch dimensions differ: lhs [4], rhs [2] (rhs may also have none)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<4x2x3xf32>, tensor<2x3x5xf32> -> tensor<4x2x5xf32>
  return
}

// -----

// Matmul operands are at least matrices.
func.func @matmul_rank(%a: tensor<3xf32>, %b: tensor<3x5xf32>) {
  // expected-error @+2 {{lhs and rhs must have rank >= 2, got 1 and 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<3xf32>, tensor<3x5xf32> -> tensor<5xf32>
  return
}

// -----

// Matmul operands share an element type.
func.func @matmul_type(%a: tensor<2x3xf32>, %b: tensor<3x5xbf16>) {
  // expected-error @+2 {{lhs and rhs element types differ: 'f32' vs 'bf16'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<2x3xf32>, tensor<3x5xbf16> -> tensor<2x5xf32>
  return
}

// -----

// The written result type must be the inferred one.
func.func @matmul_result(%a: tensor<2x3xf32>, %b: tensor<3x5xf32>) {
  // expected-error @+2 {{inferred type(s) 'tensor<2x5xf32>' are incompatible with return type(s) of operation 'tensor<2x6xf32>'}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.matmul %a, %b : tensor<2x3xf32>, tensor<3x5xf32> -> tensor<2x6xf32>
  return
}

// -----

// Grouped matmul operands are rank 3.
func.func @grouped_rank(%x: tensor<4x8xf32>, %w: tensor<4x8x16xf32>) {
  // expected-error @+2 {{input must be [experts, capacity, in] and weight [experts, in, out]; got ranks 2 and 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.grouped_matmul %x, %w : tensor<4x8xf32>, tensor<4x8x16xf32> -> tensor<4x16xf32>
  return
}

// -----

// Grouped matmul operands have one expert count.
func.func @grouped_experts(%x: tensor<4x2x8xf32>, %w: tensor<3x8x16xf32>) {
  // expected-error @+2 {{experts (dim 0) differ: input has 4, weight has 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.grouped_matmul %x, %w : tensor<4x2x8xf32>, tensor<3x8x16xf32> -> tensor<4x2x16xf32>
  return
}

// -----

// Grouped matmul contracting dimensions agree.
func.func @grouped_k(%x: tensor<4x2x8xf32>, %w: tensor<4x16x8xf32>) {
  // expected-error @+2 {{contracting dimensions differ: input dim 2 is 8, weight dim 1 is 16}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.grouped_matmul %x, %w : tensor<4x2x8xf32>, tensor<4x16x8xf32> -> tensor<4x2x8xf32>
  return
}

// -----

// Grouped matmul operands share an element type.
func.func @grouped_type(%x: tensor<4x2x8xf32>, %w: tensor<4x8x16xf16>) {
  // expected-error @+2 {{input and weight element types differ}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.grouped_matmul %x, %w : tensor<4x2x8xf32>, tensor<4x8x16xf16> -> tensor<4x2x16xf32>
  return
}

// -----

// Reshape keeps the element count.
func.func @reshape_count(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{input [2, 8] has 16 elements but result [3, 5] has 15}}
  %0 = loom.reshape %x : tensor<2x8xf32> -> tensor<3x5xf32>
  return
}

// -----

// Reshape keeps the element type.
func.func @reshape_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{element type changes from 'f32' to 'bf16'}}
  %0 = loom.reshape %x : tensor<2x8xf32> -> tensor<16xbf16>
  return
}

// -----

// A transpose permutation has one entry per dimension.
func.func @transpose_length(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{permutation has 3 entries but the input has rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.transpose %x, [0, 1, 2] : tensor<2x8xf32> -> tensor<2x8xf32>
  return
}

// -----

// A transpose permutation names each dimension once.
func.func @transpose_perm(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{permutation [0, 0] is not a permutation of the input dimensions}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.transpose %x, [0, 0] : tensor<2x8xf32> -> tensor<2x2xf32>
  return
}

// -----

// Slices stay inside the input.
func.func @slice_bounds(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{dimension 1: slice [6, 10) is outside [0, 8)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.slice %x {offsets = array<i64: 0, 6>, sizes = array<i64: 2, 4>} : tensor<2x8xf32> -> tensor<2x4xf32>
  return
}

// -----

// Slices have one offset and size per dimension.
func.func @slice_length(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{offsets and sizes need one entry per input dimension (2), got 1 and 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.slice %x {offsets = array<i64: 0>, sizes = array<i64: 2, 4>} : tensor<2x8xf32> -> tensor<2x4xf32>
  return
}

// -----

// Concat inputs agree off the concatenated dimension.
func.func @concat_dims(%a: tensor<2x8xf32>, %b: tensor<3x4xf32>) {
  // expected-error @+2 {{input #1 has size 3 in dimension 0 but input #0 has 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %b {dim = 1 : i64} : tensor<2x8xf32>, tensor<3x4xf32> -> tensor<2x12xf32>
  return
}

// -----

// Concat inputs share rank and element type.
func.func @concat_type(%a: tensor<2x8xf32>, %b: tensor<2x8xbf16>) {
  // expected-error @+2 {{input #1 has type 'tensor<2x8xbf16>', which does not match input #0's rank and element type}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %b {dim = 1 : i64} : tensor<2x8xf32>, tensor<2x8xbf16> -> tensor<2x16xf32>
  return
}

// -----

// Concat dim is in range.
func.func @concat_dim(%a: tensor<2x8xf32>) {
  // expected-error @+2 {{dim 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.concat %a, %a {dim = 2 : i64} : tensor<2x8xf32>, tensor<2x8xf32> -> tensor<2x16xf32>
  return
}

// -----

// Concat needs inputs.
func.func @concat_empty() {
  // expected-error @+2 {{needs at least one input}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = "loom.concat"() {dim = 0 : i64} : () -> tensor<2xf32>
  return
}

// -----

// Broadcast maps every input dimension.
func.func @broadcast_length(%x: tensor<8xf32>) {
  // expected-error @+1 {{dims has 2 entries but the input has rank 1}}
  %0 = loom.broadcast %x, [0, 1] : tensor<8xf32> -> tensor<2x8xf32>
  return
}

// -----

// Broadcast dims are result dimensions.
func.func @broadcast_range(%x: tensor<8xf32>) {
  // expected-error @+1 {{dims[0] = 2 is out of range for result rank 2}}
  %0 = loom.broadcast %x, [2] : tensor<8xf32> -> tensor<2x8xf32>
  return
}

// -----

// Broadcast dims increase.
func.func @broadcast_order(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{dims must be strictly increasing}}
  %0 = loom.broadcast %x, [1, 0] : tensor<2x8xf32> -> tensor<8x2xf32>
  return
}

// -----

// Broadcast only repeats unit dimensions.
func.func @broadcast_size(%x: tensor<3xf32>) {
  // expected-error @+1 {{input dimension 0 of size 3 cannot broadcast to result dimension 1 of size 8}}
  %0 = loom.broadcast %x, [1] : tensor<3xf32> -> tensor<2x8xf32>
  return
}

// -----

// Broadcast keeps the element type.
func.func @broadcast_type(%x: tensor<8xf32>) {
  // expected-error @+1 {{element type changes from 'f32' to 'f16'}}
  %0 = loom.broadcast %x, [1] : tensor<8xf32> -> tensor<2x8xf16>
  return
}

// -----

// Reduced dimensions are in range.
func.func @reduce_range(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{reduced dimension 2 is out of range for rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.reduce sum %x {dims = array<i64: 2>} : tensor<2x8xf32> -> tensor<2xf32>
  return
}

// -----

// A dimension is reduced once.
func.func @reduce_twice(%x: tensor<2x8xf32>) {
  // expected-error @+2 {{dimension 1 is reduced twice}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.reduce sum %x {dims = array<i64: 1, 1>} : tensor<2x8xf32> -> tensor<2xf32>
  return
}

// -----

// Router logits are [tokens, experts].
func.func @router_rank(%l: tensor<2x16x8xf32>) {
  // expected-error @+2 {{logits must be [tokens, experts], got rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %w, %i = loom.router %l {top_k = 2 : i64} : tensor<2x16x8xf32> -> tensor<32x2xf32>, tensor<32x2xi32>
  return
}

// -----

// top_k is between 1 and the number of experts.
func.func @router_topk(%l: tensor<32x8xf32>) {
  // expected-error @+2 {{top_k = 9 must be in [1, 8] (the number of experts)}}
  // expected-error @+1 {{failed to infer returned types}}
  %w, %i = loom.router %l {top_k = 9 : i64} : tensor<32x8xf32> -> tensor<32x9xf32>, tensor<32x9xi32>
  return
}

// -----

// Dispatch input is [tokens, hidden].
func.func @dispatch_rank(%x: tensor<2x16x8xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{input must be [tokens, hidden], got rank 3}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 4 : i64, capacity = 16 : i64} : tensor<2x16x8xf32>, tensor<32x2xi32> -> tensor<4x16x8xf32>
  return
}

// -----

// Dispatch indices cover the same tokens.
func.func @dispatch_tokens(%x: tensor<32x8xf32>, %i: tensor<16x2xi32>) {
  // expected-error @+2 {{indices has 16 tokens (dim 0) but the input has 32}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 4 : i64, capacity = 16 : i64} : tensor<32x8xf32>, tensor<16x2xi32> -> tensor<4x16x8xf32>
  return
}

// -----

// Dispatch indices are [tokens, top_k].
func.func @dispatch_indices_rank(%x: tensor<32x8xf32>, %i: tensor<32xi32>) {
  // expected-error @+2 {{indices must be [tokens, top_k], got rank 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 4 : i64, capacity = 16 : i64} : tensor<32x8xf32>, tensor<32xi32> -> tensor<4x16x8xf32>
  return
}

// -----

// Experts and capacity are positive.
func.func @dispatch_capacity(%x: tensor<32x8xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{num_experts (4) and capacity (0) must be >= 1}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 4 : i64, capacity = 0 : i64} : tensor<32x8xf32>, tensor<32x2xi32> -> tensor<4x0x8xf32>
  return
}

// -----

// Combine input is [experts, capacity, hidden].
func.func @combine_rank(%y: tensor<4x8xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{input must be [experts, capacity, hidden], got rank 2}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.combine %y, %w, %i : tensor<4x8xf32>, tensor<32x2xf32>, tensor<32x2xi32> -> tensor<32x8xf32>
  return
}

// -----

// Combine weights and indices agree.
func.func @combine_routing(%y: tensor<4x16x8xf32>, %w: tensor<32x1xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{weights [32, 1] and indices [32, 2] must both be [tokens, top_k]}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.combine %y, %w, %i : tensor<4x16x8xf32>, tensor<32x1xf32>, tensor<32x2xi32> -> tensor<32x8xf32>
  return
}

// -----

// AdamW state has the parameter's shape.
func.func @adamw_shape(%p: tensor<8xf32>, %g: tensor<4xf32>, %m: tensor<8xf32>, %t: tensor<i32>, %lr: tensor<f32>) {
  // expected-error @+1 {{grad shape [4] differs from param shape [8]}}
  %a, %b, %c = loom.adamw %p, %g, %m, %m, %t, %lr : tensor<8xf32>, tensor<4xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i32>, tensor<f32>
  return
}

// -----

// AdamW betas are in [0, 1).
func.func @adamw_beta(%p: tensor<8xf32>, %t: tensor<i32>, %lr: tensor<f32>) {
  // expected-error @+1 {{beta2 must be in [0, 1), got 1}}
  %a, %b, %c = loom.adamw %p, %p, %p, %p, %t, %lr {beta2 = 1.0 : f64} : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i32>, tensor<f32>
  return
}

// -----

// AdamW epsilon is positive.
func.func @adamw_eps(%p: tensor<8xf32>, %t: tensor<i32>, %lr: tensor<f32>) {
  // expected-error @+1 {{epsilon must be positive, got 0}}
  %a, %b, %c = loom.adamw %p, %p, %p, %p, %t, %lr {epsilon = 0.0 : f64} : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i32>, tensor<f32>
  return
}

// -----

// AdamW weight decay is not negative.
func.func @adamw_wd(%p: tensor<8xf32>, %t: tensor<i32>, %lr: tensor<f32>) {
  // expected-error @+1 {{weight_decay must be >= 0, got -1.000000e-01}}
  %a, %b, %c = loom.adamw %p, %p, %p, %p, %t, %lr {weight_decay = -0.1 : f64} : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i32>, tensor<f32>
  return
}

// -----

// The AdamW step is a scalar integer.
func.func @adamw_step(%p: tensor<8xf32>, %t: tensor<1xi32>, %lr: tensor<f32>) {
  // expected-error @+1 {{operand #4 must be 0D tensor of 32-bit signless integer or 64-bit signless integer values}}
  %a, %b, %c = loom.adamw %p, %p, %p, %p, %t, %lr : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<1xi32>, tensor<f32>
  return
}

// -----

// Collective axes belong to the mesh.
loom.mesh @m <dp = 2, tp = 4>
func.func @collective_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{axis 'cp' is not an axis of mesh @m #loom.mesh<dp = 2, tp = 4>}}
  %0 = loom.all_reduce sum %x {mesh = @m, axes = ["cp"]} : tensor<8xf32>
  return
}

// -----

// A collective lists an axis once.
loom.mesh @m <dp = 2, tp = 4>
func.func @collective_axis_twice(%x: tensor<8xf32>) {
  // expected-error @+1 {{axis 'tp' is listed twice}}
  %0 = loom.all_reduce sum %x {mesh = @m, axes = ["tp", "tp"]} : tensor<8xf32>
  return
}

// -----

// A collective spans at least one axis.
loom.mesh @m <dp = 2, tp = 4>
func.func @collective_no_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{needs at least one mesh axis}}
  %0 = loom.all_reduce sum %x {mesh = @m, axes = []} : tensor<8xf32>
  return
}

// -----

// all_gather grows gather_dim by the group size.
loom.mesh @m <dp = 2, tp = 4>
func.func @all_gather_size(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{gather_dim 1 must grow from 8 to 32 (group size 4), got 16}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x8xf32> -> tensor<2x16xf32>
  return
}

// -----

// all_gather's gather_dim is in range.
loom.mesh @m <tp = 4>
func.func @all_gather_dim(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{gather_dim 2 is out of range for rank 2}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["tp"], gather_dim = 2 : i64} : tensor<2x8xf32> -> tensor<2x8xf32>
  return
}

// -----

// all_gather keeps the other dimensions.
loom.mesh @m <tp = 4>
func.func @all_gather_other(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{dimension 0 changes from 2 to 4}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x8xf32> -> tensor<4x32xf32>
  return
}

// -----

// Collectives keep the rank.
loom.mesh @m <tp = 4>
func.func @all_gather_rank(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{rank changes from 2 to 3}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x8xf32> -> tensor<2x32x1xf32>
  return
}

// -----

// Collectives keep the element type.
loom.mesh @m <tp = 4>
func.func @all_gather_type(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{element type changes from 'f32' to 'bf16'}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["tp"], gather_dim = 1 : i64} : tensor<2x8xf32> -> tensor<2x32xbf16>
  return
}

// -----

// reduce_scatter needs a dimension that divides.
loom.mesh @m <tp = 4>
func.func @reduce_scatter_divide(%x: tensor<2x6xf32>) {
  // expected-error @+1 {{scatter_dim 1 of size 6 does not divide by the group size 4}}
  %0 = loom.reduce_scatter sum %x {mesh = @m, axes = ["tp"], scatter_dim = 1 : i64} : tensor<2x6xf32> -> tensor<2x1xf32>
  return
}

// -----

// reduce_scatter shrinks scatter_dim by the group size.
loom.mesh @m <dp = 2, tp = 4>
func.func @reduce_scatter_size(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{scatter_dim 1 must shrink from 8 to 1 (group size 8), got 2}}
  %0 = loom.reduce_scatter sum %x {mesh = @m, axes = ["dp", "tp"], scatter_dim = 1 : i64} : tensor<2x8xf32> -> tensor<2x2xf32>
  return
}

// -----

// reduce_scatter's scatter_dim is in range.
loom.mesh @m <tp = 4>
func.func @reduce_scatter_dim(%x: tensor<2x8xf32>) {
  // expected-error @+1 {{scatter_dim -1 is out of range for rank 2}}
  %0 = loom.reduce_scatter sum %x {mesh = @m, axes = ["tp"], scatter_dim = -1 : i64} : tensor<2x8xf32> -> tensor<2x2xf32>
  return
}

// -----

// all_to_all splits a dimension that divides.
loom.mesh @m <ep = 4>
func.func @all_to_all_divide(%x: tensor<6x8xf32>) {
  // expected-error @+1 {{split_dim 0 of size 6 does not divide by the group size 4}}
  %0 = loom.all_to_all %x {mesh = @m, axes = ["ep"], split_dim = 0 : i64, concat_dim = 1 : i64} : tensor<6x8xf32> -> tensor<1x32xf32>
  return
}

// -----

// all_to_all's result follows from split_dim and concat_dim.
loom.mesh @m <ep = 4>
func.func @all_to_all_result(%x: tensor<8x8xf32>) {
  // expected-error @+1 {{result shape must be 'tensor<2x32xf32>' for group size 4, got 'tensor<32x2xf32>'}}
  %0 = loom.all_to_all %x {mesh = @m, axes = ["ep"], split_dim = 0 : i64, concat_dim = 1 : i64} : tensor<8x8xf32> -> tensor<32x2xf32>
  return
}

// -----

// all_to_all's dims are in range.
loom.mesh @m <ep = 4>
func.func @all_to_all_dim(%x: tensor<8x8xf32>) {
  // expected-error @+1 {{concat_dim 2 is out of range for rank 2}}
  %0 = loom.all_to_all %x {mesh = @m, axes = ["ep"], split_dim = 0 : i64, concat_dim = 2 : i64} : tensor<8x8xf32> -> tensor<2x32xf32>
  return
}

// -----

// send needs a peer other than itself.
loom.mesh @m <pp = 4>
func.func @send_self(%x: tensor<8xf32>) {
  // expected-error @+1 {{peer_shift must not be 0}}
  loom.send %x {mesh = @m, axes = ["pp"], peer_shift = 0 : i64} : tensor<8xf32>
  return
}

// -----

// recv needs a peer other than itself.
loom.mesh @m <pp = 4>
func.func @recv_self() {
  // expected-error @+1 {{peer_shift must not be 0}}
  %0 = loom.recv {mesh = @m, axes = ["pp"], peer_shift = 0 : i64} : tensor<8xf32>
  return
}

// -----

// collective_permute axes belong to the mesh.
loom.mesh @m <cp = 4>
func.func @permute_axis(%x: tensor<8xf32>) {
  // expected-error @+1 {{axis 'tp' is not an axis of mesh @m #loom.mesh<cp = 4>}}
  %0 = loom.collective_permute %x {mesh = @m, axes = ["tp"], shift = 1 : i64} : tensor<8xf32>
  return
}

// -----

// Mesh axes are unique.
// expected-error @+1 {{mesh axis 'tp' appears twice}}
loom.mesh @m <tp = 2, tp = 4>

// -----

// Mesh axes have positive sizes.
// expected-error @+1 {{mesh axis 'dp' has size 0; sizes must be >= 1}}
loom.mesh @m <dp = 0>

// -----

// A mesh's rank count fits the runtime's (and does not overflow).
// expected-error @+1 {{mesh has more than 2^31 ranks}}
loom.mesh @m <a = 4294967296, b = 4294967296>

// -----

// A mesh is declared at the top of a module.
func.func @mesh_in_function() {
  // expected-error @+1 {{'loom.mesh' op expects parent op 'builtin.module'}}
  "loom.mesh"() <{sym_name = "m", shape = #loom.mesh<tp = 2>}> : () -> ()
  return
}

// -----

// Mesh names are unique.
loom.mesh @m <tp = 2>
// expected-error @+2 {{redefinition of symbol named 'm'}}
// expected-note @-2 {{see existing symbol definition here}}
loom.mesh @m <dp = 2>

// -----

// A collective names a declared mesh.
func.func @collective_unknown_mesh(%x: tensor<8xf32>) {
  // expected-error @+1 {{uses mesh @nowhere, which no 'loom.mesh' of the module declares}}
  %0 = loom.all_reduce sum %x {mesh = @nowhere, axes = ["tp"]} : tensor<8xf32>
  return
}

// -----

// A sharding uses each axis once.
// expected-error @+1 {{mesh axis 'tp' is used twice in one sharding}}
func.func @sharding_twice(%x: tensor<8x8xf32> {loom.sharding = #loom.sharding<@m, [{"tp"}, {"tp"}]>}) {
  return
}

// -----

// A sharding has one entry per tensor dimension.
loom.mesh @m <tp = 2>
// expected-error @+1 {{argument #0 'loom.sharding' sharding has 1 dimensions but the tensor has rank 2}}
func.func @sharding_rank(%x: tensor<8x8xf32> {loom.sharding = #loom.sharding<@m, [{"tp"}]>}) {
  return
}

// -----

// A sharding names axes of its mesh.
loom.mesh @m <tp = 2>
// expected-error @+1 {{sharding names axis 'cp', which mesh @m #loom.mesh<tp = 2> does not have}}
func.func @sharding_axis(%x: tensor<8xf32> {loom.sharding = #loom.sharding<@m, [{"cp"}]>}) {
  return
}

// -----

// Unreduced axes belong to the mesh too.
loom.mesh @m <tp = 2>
// expected-error @+1 {{sharding names axis 'dp', which mesh @m #loom.mesh<tp = 2> does not have}}
func.func @sharding_unreduced(%x: tensor<8xf32> {loom.sharding = #loom.sharding<@m, [{}], unreduced = {"dp"}>}) {
  return
}

// -----

// Sharded dimensions divide by the axes' sizes.
loom.mesh @m <dp = 2, tp = 2>
// expected-error @+1 {{dimension 0 of size 6 does not divide into 4 shards over the mesh axes}}
func.func @sharding_divide(%x: tensor<6xf32> {loom.sharding = #loom.sharding<@m, [{"dp", "tp"}]>}) {
  return
}

// -----

// A sharding names a declared mesh.
// expected-error @+1 {{argument #0 'loom.sharding' names mesh @nowhere, which no 'loom.mesh' of the module declares}}
func.func @sharding_unknown_mesh(%x: tensor<8xf32> {loom.sharding = #loom.sharding<@nowhere, [{"tp"}]>}) {
  return
}

// -----

// loom.sharding holds a sharding.
// expected-error @+1 {{'loom.sharding' must be a #loom.sharding}}
func.func @sharding_kind(%x: tensor<8xf32> {loom.sharding = 3 : i64}) {
  return
}

// -----

// An op result's sharding fits the result.
loom.mesh @m <tp = 2>
func.func @result_sharding_rank(%x: tensor<8x4xf32>) {
  // expected-error @+1 {{'loom.sharding' sharding has 1 dimensions but the tensor has rank 2}}
  %0 = loom.silu %x {loom.sharding = #loom.sharding<@m, [{"tp"}]>} : tensor<8x4xf32>
  return
}

// -----

// An op with several results has one sharding per result.
loom.mesh @m <tp = 2>
func.func @result_sharding_count(%x: tensor<8x4xf32>) {
  // expected-error @+1 {{'loom.sharding' must be an array of one #loom.sharding per result for an op with 2 results}}
  %w, %i = loom.router %x {top_k = 1 : i64, loom.sharding = #loom.sharding<@m, [{"tp"}, {}]>} : tensor<8x4xf32> -> tensor<8x1xf32>, tensor<8x1xi32>
  return
}

// -----

// The layer of an op is a non-negative integer.
func.func @layer_negative(%x: tensor<8xf32>) {
  // expected-error @+1 {{'loom.layer' must be a non-negative integer}}
  %0 = loom.silu %x {loom.layer = -1 : i64} : tensor<8xf32>
  return
}

// -----

// The phase of an op is one of three.
func.func @phase_unknown(%x: tensor<8xf32>) {
  // expected-error @+1 {{unknown phase 'bwd'; expected "fwd", "bwd-input" or "bwd-weight"}}
  %0 = loom.silu %x {loom.phase = #loom.phase<"bwd">} : tensor<8xf32>
  return
}

// -----

// loom.phase holds a phase.
func.func @phase_kind(%x: tensor<8xf32>) {
  // expected-error @+1 {{'loom.phase' must be a #loom.phase ("fwd", "bwd-input" or "bwd-weight")}}
  %0 = loom.silu %x {loom.phase = "fwd"} : tensor<8xf32>
  return
}

// -----

// Attributes of function arguments stay on arguments.
// expected-error @+1 {{argument #0 'loom.layer' cannot appear on a function argument}}
func.func @layer_on_argument(%x: tensor<8xf32> {loom.layer = 1 : i64}) {
  return
}

// -----

// Parameter names are strings.
// expected-error @+1 {{'loom.param' must be a non-empty string naming the value}}
func.func @param_name(%x: tensor<8xf32> {loom.param = 1 : i64}) {
  return
}

// -----

// Unknown loom argument attributes are rejected.
// expected-error @+1 {{argument #0 has unknown loom attribute 'loom.weird'}}
func.func @unknown_arg_attr(%x: tensor<8xf32> {loom.weird}) {
  return
}

// -----

// loom.model holds a name.
// expected-error @+1 {{'loom.model' must be a string}}
module attributes {loom.model = 2 : i64} {
}

// -----

// Unknown loom operation attributes are rejected.
// expected-error @+1 {{has unknown loom attribute 'loom.weird'}}
func.func @unknown_op_attr() attributes {loom.weird} {
  return
}

// -----

// The AdamW learning rate is a scalar f32 tensor.
func.func @adamw_lr_type(%p: tensor<8xf32>, %t: tensor<i32>, %lr: tensor<1xf32>) {
  // expected-error @+1 {{operand #5 must be 0D tensor of 32-bit float values}}
  %a, %b, %c = loom.adamw %p, %p, %p, %p, %t, %lr : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<i32>, tensor<1xf32>
  return
}

// -----

// A conversion keeps the shape.
func.func @convert_shape(%x: tensor<2x3xf32>) {
  // expected-error @+1 {{result shape [3, 2] differs from input shape [2, 3]}}
  %y = loom.convert %x : tensor<2x3xf32> -> tensor<3x2xbf16>
  return
}

// -----

// A constant's value has the result's type.
func.func @constant_type() {
  // expected-error @+1 {{failed to verify that all of {value, result} have same type}}
  %c = "loom.constant"() {value = dense<1.0> : tensor<2xf32>} : () -> tensor<3xf32>
  return
}

// -----

// Tensors stay within the sizes a program can hold, so that shape and byte
// arithmetic cannot overflow.
func.func @huge_tensor(%x: tensor<4294967296x4294967296xf32>) {
  // expected-error @+1 {{operand #0 'tensor<4294967296x4294967296xf32>' exceeds the sizes a program can hold (dimensions up to 2^40, at most 2^50 elements)}}
  %0 = loom.silu %x : tensor<4294967296x4294967296xf32>
  return
}

// -----

// Gathering over a large group cannot overflow the gathered dimension.
loom.mesh @m <a = 1048576, b = 2>
func.func @all_gather_overflow(%x: tensor<2097152xf32>) {
  // expected-error @+1 {{gather_dim 0 of size 2097152 times the group size 2097152 exceeds the largest dimension a program holds (2^40)}}
  %0 = loom.all_gather %x {mesh = @m, axes = ["a", "b"], gather_dim = 0 : i64} : tensor<2097152xf32> -> tensor<8xf32>
  return
}

// -----

// Output names are file names, never paths.
// expected-error @+1 {{result #0 'loom.output' '../../x' must not be '.', '..' or contain '/', '\' or NUL: it names a file}}
func.func @output_path(%x: tensor<4xf32>) -> (tensor<4xf32> {loom.output = "../../x"}) {
  return %x : tensor<4xf32>
}

// -----

// So are parameter names.
// expected-error @+1 {{argument #0 'loom.param' '..' must not be '.', '..' or contain '/', '\' or NUL: it names a file}}
func.func @param_path(%x: tensor<4xf32> {loom.param = ".."}) {
  return
}

// -----

// An expert-parallel dispatch's block lies within all the experts.
func.func @dispatch_expert_block(%x: tensor<32x8xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{experts 6 .. 7 (expert_start + the experts held) lie outside the 6 experts (total_experts)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 2 : i64, capacity = 16 : i64, expert_start = 6 : i64, total_experts = 6 : i64} : tensor<32x8xf32>, tensor<32x2xi32> -> tensor<2x16x8xf32>
  return
}

// -----

func.func @combine_expert_block(%y: tensor<4x16x8xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{experts 0 .. 3 (expert_start + the experts held) lie outside the 3 experts (total_experts)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.combine %y, %w, %i {total_experts = 3 : i64} : tensor<4x16x8xf32>, tensor<32x2xf32>, tensor<32x2xi32> -> tensor<32x8xf32>
  return
}

// -----

func.func @combine_grad_expert_block(%y: tensor<4x16x8xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>, %d: tensor<32x8xf32>) {
  // expected-error @+1 {{experts -2 .. 1 (expert_start + the experts held) lie outside the 8 experts (total_experts)}}
  %0:2 = loom.combine_grad %y, %w, %i, %d {expert_start = -2 : i64, total_experts = 8 : i64} : tensor<4x16x8xf32>, tensor<32x2xf32>, tensor<32x2xi32>, tensor<32x8xf32>
  return
}

// -----

// Token groups divide the tokens and each expert's slots.
func.func @dispatch_token_groups(%x: tensor<32x8xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{token_groups (3) must be >= 1 and divide the 32 tokens and the 16 slots of each expert (capacity)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.dispatch %x, %i {num_experts = 4 : i64, capacity = 16 : i64, token_groups = 3 : i64} : tensor<32x8xf32>, tensor<32x2xi32> -> tensor<4x16x8xf32>
  return
}

// -----

func.func @combine_token_groups(%y: tensor<4x6x8xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>) {
  // expected-error @+2 {{token_groups (4) must be >= 1 and divide the 32 tokens and the 6 slots of each expert (capacity)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0 = loom.combine %y, %w, %i {token_groups = 4 : i64} : tensor<4x6x8xf32>, tensor<32x2xf32>, tensor<32x2xi32> -> tensor<32x8xf32>
  return
}

// -----

func.func @combine_grad_token_groups(%y: tensor<4x16x8xf32>, %w: tensor<32x2xf32>, %i: tensor<32x2xi32>, %d: tensor<32x8xf32>) {
  // expected-error @+1 {{token_groups (0) must be >= 1 and divide the 32 tokens and the 16 slots of each expert (capacity)}}
  %0:2 = loom.combine_grad %y, %w, %i, %d {token_groups = 0 : i64} : tensor<4x16x8xf32>, tensor<32x2xf32>, tensor<32x2xi32>, tensor<32x8xf32>
  return
}

// -----

// A ring attention block's log-sum-exp is f32, one per query row and head.
func.func @attention_block_grad_lse(%q: tensor<2x4x4x16xf32>, %k: tensor<2x4x2x16xf32>, %lse: tensor<2x4x2xf32>) {
  // expected-error @+1 {{logsumexp must be f32 [2, 4, 4] (the query's shape without the head dim), got 'tensor<2x4x2xf32>'}}
  %0:3 = loom.attention_block_grad %q, %k, %k, %q, %q, %lse {causal} : tensor<2x4x4x16xf32>, tensor<2x4x2x16xf32>, tensor<2x4x2x16xf32>, tensor<2x4x2xf32>
  return
}

// -----

func.func @attention_block_heads(%q: tensor<2x4x3x16xf32>, %k: tensor<2x4x2x16xf32>) {
  // expected-error @+2 {{query heads (3) must be a multiple of key/value heads (2)}}
  // expected-error @+1 {{failed to infer returned types}}
  %0:2 = loom.attention_block %q, %k, %k {causal} : tensor<2x4x3x16xf32>, tensor<2x4x2x16xf32>, tensor<2x4x2x16xf32> -> tensor<2x4x3x16xf32>, tensor<2x4x3xf32>
  return
}
