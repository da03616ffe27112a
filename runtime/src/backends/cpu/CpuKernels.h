//===- CpuKernels.h - CPU kernel selection ----------------------*- C++ -*-===//
//
// Each select* function picks the kernel for a decoded instruction of its
// family (by opcode and dtypes) and sizes its scratch; they return false for
// opcodes outside their family.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUKERNELS_H
#define LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUKERNELS_H

#include "loom/runtime/Backend.h"

namespace loom::runtime::cpu {

bool selectElementwise(
    OpCall &call); // fill, copy, add..swiglu, norms, softmax, rope, adamw
bool selectLinalg(OpCall &call); // matmul, grouped_matmul, attention
bool selectShape(
    OpCall &call); // reshape, transpose, slice, concat, broadcast, reduce
bool selectModel(
    OpCall &call); // embedding, cross_entropy, router, dispatch, combine
bool selectGradient(OpCall &call); // the *_grad ops but attention_grad

/// Compiles a function twice, for AVX2 and for the baseline x86-64, and
/// calls the one the CPU runs (chosen once, at load time: GCC's and Clang's
/// function multiversioning). For the f32 loops whose math is more than a
/// load and a store (exponentials, divisions): twice the vector width, the
/// same bits, since the backend is compiled without contraction into FMA
/// (-ffp-contract=off) or reassociation. Not AVX-512: its copies keep values
/// in zmm16-31, which no vzeroupper clears, so each call into libm's SSE code
/// (fmaxf in math::rowMax) stalls; a cross-entropy of 32 rows took 36 µs
/// instead of 5, for a gain of 1% on the mid-size training step.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LOOM_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LOOM_CPU_CLONES
#endif

/// Picks FN<float>, FN<bf16_t> or FN<f16_t> by a floating dtype.
#define LOOM_PICK_FLOAT(FN, DT)                                                \
  ((DT) == DType::F32    ? static_cast<KernelFn>(&FN<float>)                   \
   : (DT) == DType::BF16 ? static_cast<KernelFn>(&FN<bf16_t>)                  \
                         : static_cast<KernelFn>(&FN<f16_t>))

/// Reads element i of an integer tensor (i32 or i64) as int64.
inline int64_t loadIndex(const TensorRef &t, int64_t i) {
  return t.dtype == DType::I32 ? static_cast<const int32_t *>(t.data)[i]
                               : static_cast<const int64_t *>(t.data)[i];
}

/// The experts a dispatch, combine or combine_grad holds: `size` experts
/// from `start` of `total` (all of them but under expert parallelism), and
/// the token groups that count capacity apart.
struct ExpertBlock {
  int64_t start = 0, size = 0, total = 0, groups = 1;
};
/// The block of `c`, whose experts dimension is `size`, from its
/// expert_start, total_experts and token_groups attributes (slots
/// `startAttr`, `totalAttr`, `groupsAttr`).
ExpertBlock expertBlock(const OpCall &c, int startAttr, int totalAttr,
                        int groupsAttr, int64_t size);
/// The slot of each (token, choice) among the block's experts' `cap` rows
/// (row index in [size·cap]): token order, then choice order, counted over
/// all experts within each token group as dispatch and combine define it;
/// -1 past the group's capacity or for an expert outside the block. `count`
/// holds block.total counters; an index outside [0, total) is an error naming
/// `what`.
void assignSlots(const TensorRef &ids, const ExpertBlock &block, int64_t cap,
                 int64_t *count, int64_t *slots, const char *what);

/// Copies `bytes` bytes (on several threads unless the ranges overlap).
void copyBytes(void *dst, const void *src, size_t bytes);
/// Converts n elements of any float type to f32 (dst may not alias src).
void toF32Buffer(const void *src, DType t, float *dst, int64_t n);
/// Converts n f32 values to a float type.
void fromF32Buffer(const float *src, DType t, void *dst, int64_t n);

} // namespace loom::runtime::cpu

#endif // LOOM_RUNTIME_SRC_BACKENDS_CPU_CPUKERNELS_H
