//===- CudaKernels.h - Launchers of the CUDA plugin's kernels ---*- C++ -*-===//
//
// Host-side launchers of the kernels in CudaKernels.cu, called by the plugin
// (CudaPlugin.cpp) with the operands of one LoomKernelCall. Every launcher
// enqueues on `stream` and returns the launch status. Kernels that can meet
// a data error (an id out of range) record it in `err` (device memory, see
// DeviceError), which the plugin reads back after the launch.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAKERNELS_H
#define LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAKERNELS_H

#include "loom/runtime/BackendPlugin.h"

#include <cuda_runtime_api.h>

#include <cstdint>

namespace loom::runtime::cuda {

/// A data error found by a kernel: the first one wins (code 0 = none).
struct DeviceError {
  int32_t code; ///< which check failed (kernel specific, 1-based)
  int32_t pad;
  int64_t position;
  int64_t value;
  int64_t limit;
};

constexpr int kErrEmbeddingId = 1;
constexpr int kErrCrossEntropyTarget = 2;
constexpr int kErrExpertIndex = 3;
constexpr int kErrAdamWStep = 4;

/// Strided gather: out[i] = in[base + sum_d idx_d(i) * srcStride[d]] over
/// the row-major multi-index of i in `shape` (rank <= 8); `elemBytes` is
/// 1, 2, 4 or 8. Transpose, slice and broadcast are instances.
struct GatherPlan {
  int32_t rank;
  int64_t shape[LOOM_PLUGIN_MAX_RANK];
  int64_t srcStride[LOOM_PLUGIN_MAX_RANK];
  int64_t base;
  int64_t count;
};
cudaError_t launchGather(const void *in, void *out, const GatherPlan &plan,
                         int elemBytes, cudaStream_t s);

cudaError_t launchFill(void *out, int dtype, int64_t n, float value,
                       cudaStream_t s);
/// Element type conversion (any dtype to any dtype).
cudaError_t launchConvert(const void *in, int inType, void *out, int outType,
                          int64_t n, cudaStream_t s);

/// True for the element-wise opcodes of the op table.
bool isElementwise(int opcode);
/// An element-wise op of the op table (its KernelMath.h function) over n
/// elements of a float type; `y` is the second operand of binary ops.
cudaError_t launchElementwise(int opcode, const void *x, const void *y,
                              void *out, int dtype, int64_t n,
                              const LoomKernelAttrs &a, cudaStream_t s);

cudaError_t launchRmsNorm(const void *x, const void *w, void *y, int dtype,
                          int64_t rows, int64_t h, float eps, cudaStream_t s);
cudaError_t launchLayerNorm(const void *x, const void *w, const void *b,
                            void *y, int dtype, int64_t rows, int64_t h,
                            float eps, cudaStream_t s);
/// Softmax over n elements `inner` apart, for outer * inner rows.
cudaError_t launchSoftmax(const void *x, void *y, int dtype, int64_t outer,
                          int64_t n, int64_t inner, cudaStream_t s);
/// x[B, S, N, D] -> rotated, positions s + offset.
cudaError_t launchRope(const void *x, void *y, int dtype, int64_t b, int64_t sq,
                       int64_t heads, int64_t d, int64_t positionOffset,
                       double theta, bool inverse, cudaStream_t s);
/// Causal-masked softmax of f32 score rows [rows, sk] where row r is query
/// qOffset + (r % sq) (valid keys: min(q + 1, sk)); unmasked when !causal.
cudaError_t launchMaskedSoftmax(float *scores, int64_t rows, int64_t sq,
                                int64_t sk, bool causal, cudaStream_t s,
                                int64_t qOffset = 0);

/// AdamW over n elements; every tensor has its own dtype; the step is read
/// from device memory (i32 or i64).
struct AdamWArgs {
  const void *p, *g, *m, *v;
  void *po, *mo, *vo;
  int pt, gt, mt, vt, pot, mot, vot;
  const void *step;
  int stepType;
  const float *lr;       ///< device memory: the instruction's lr operand
  const float *gradNorm; ///< device memory, or null: no clipping
  double beta1, beta2, eps, weightDecay, maxGradNorm;
  int64_t n;
};
cudaError_t launchAdamW(const AdamWArgs &a, DeviceError *err, cudaStream_t s);

/// A vocab-parallel piece (Megatron's vocab-parallel embedding and loss):
/// the table rows or logit columns are vocabulary entries start .. start +
/// V - 1 (`present`); the loss's log-sum-exp over the whole vocabulary per
/// position (device memory, null when not the vocab-parallel form).
struct VocabPiece {
  bool present = false;
  int64_t start = 0;
  const float *logsumexp = nullptr;
};

cudaError_t launchEmbedding(const void *table, int64_t vocab, int64_t rowBytes,
                            const void *ids, int idType, int64_t n,
                            VocabPiece piece, void *out, DeviceError *err,
                            cudaStream_t s);
/// The sum over rows of logsumexp - logit[target] divided by `count` (the
/// rows when 0) into *out (f32). `scratch`: rows floats.
cudaError_t launchCrossEntropy(const void *logits, int dtype, int64_t rows,
                               int64_t v, const void *targets, int tgtType,
                               int64_t count, VocabPiece piece, float *out,
                               float *scratch, DeviceError *err,
                               cudaStream_t s);
/// Reduce sum/max/mean (LoomReduce) over the dims flagged in `reduced`.
/// kind: LOOM_REDUCE_SUM, _MAX or _AVG; with square, Σ x² (kind SUM).
cudaError_t launchReduce(const void *x, void *y, int dtype, int rank,
                         const int64_t *shape, const bool *reduced, int kind,
                         bool square, cudaStream_t s);

/// Mixture of experts. `scratch` layouts are documented in CudaKernels.cu.
///
/// The experts a dispatch, combine or combine_grad holds: `size` experts
/// (its experts dimension) from `start` of `total` (all of them but under
/// expert parallelism). Slots are the whole op's, counted over all `total`
/// experts (KernelMath's expertSlot); a choice of an expert outside the
/// block gets none. Expert indices outside [0, total) are data errors.
/// Capacity is counted within each of `groups` token groups (token_groups).
struct ExpertBlock {
  int64_t start, size, total, groups;
};
cudaError_t launchRouter(const void *logits, int dtype, int64_t tokens,
                         int64_t e, int64_t k, bool softmaxBeforeTopk,
                         bool normalize, void *weights, int32_t *indices,
                         float *scratch, cudaStream_t s);
/// out[block.size, capacity, H] (zero where no token went); `scratch`:
/// block.total + tokens * k int64.
cudaError_t launchDispatch(const void *x, int64_t tokens, int64_t rowBytes,
                           const void *ids, int idType, int64_t k,
                           ExpertBlock block, int64_t capacity, void *out,
                           int64_t *scratch, DeviceError *err, cudaStream_t s);
/// out[T, H]: the block's part of the weighted sum; `scratch` as
/// launchDispatch's.
cudaError_t launchCombine(const void *y, const void *w, int dtype,
                          const void *ids, int idType, int64_t tokens,
                          int64_t k, ExpertBlock block, int64_t capacity,
                          int64_t h, void *out, int64_t *scratch,
                          DeviceError *err, cudaStream_t s);

//===- Gradients ------------------------------------------------------===//

/// Scratch bytes of launchRmsNormGrad (accumulators = 1) and
/// launchLayerNormGrad (accumulators = 2) for `rows` rows of h elements.
size_t normGradScratchBytes(int64_t rows, int64_t h, int accumulators);
/// dx row by row (KernelMath's rmsnormGradRow, one thread per row); dw as
/// f32 sums over the rows in row order, stored in the weight's type. x, w,
/// dy, dx and dw share `dtype`.
cudaError_t launchRmsNormGrad(const void *x, const void *w, const void *dy,
                              void *dx, void *dw, int dtype, int64_t rows,
                              int64_t h, float eps, void *scratch,
                              cudaStream_t s);
/// As launchRmsNormGrad, with layernormGradRow and the bias gradient db.
cudaError_t launchLayerNormGrad(const void *x, const void *w, const void *dy,
                                void *dx, void *dw, void *db, int dtype,
                                int64_t rows, int64_t h, float eps,
                                void *scratch, cudaStream_t s);
/// dx = y (dy - sum y dy) over n elements `inner` apart, for outer * inner
/// rows. dx may be y or dy.
cudaError_t launchSoftmaxGrad(const void *y, const void *dy, void *dx,
                              int dtype, int64_t outer, int64_t n,
                              int64_t inner, cudaStream_t s);
/// (softmax(row) - onehot(target)) * (*dloss / rows) per row of v logits;
/// `dloss` is device memory (one f32).
cudaError_t launchCrossEntropyGrad(const void *logits, int dtype, int64_t rows,
                                   int64_t v, const void *targets, int tgtType,
                                   const float *dloss, int64_t count,
                                   VocabPiece piece, void *grad,
                                   DeviceError *err, cudaStream_t s);
/// Scratch bytes of launchEmbeddingGrad for a table of `tableType`.
size_t embeddingGradScratchBytes(int64_t vocab, int64_t h, int tableType);
/// table[ids[i]] += dy[i] over the n positions in order, in f32, then
/// stored in the table's type (dy shares it).
cudaError_t launchEmbeddingGrad(const void *dy, const void *ids, int idType,
                                int64_t n, void *table, int tableType,
                                int64_t vocab, int64_t h, VocabPiece piece,
                                void *scratch, DeviceError *err,
                                cudaStream_t s);
/// Scratch bytes of launchRouterGrad.
size_t routerGradScratchBytes(int64_t tokens, int64_t e, int64_t k);
/// dlogits[T, E] from the cotangents dw[T, k] of the router's weights at the
/// chosen indices[T, k]: KernelMath's routerGradRow, one thread per token.
cudaError_t launchRouterGrad(const void *logits, int dtype, const void *ids,
                             int idType, const void *dw, void *dlogits,
                             int64_t tokens, int64_t e, int64_t k,
                             bool softmaxBeforeTopk, bool normalize,
                             void *scratch, DeviceError *err, cudaStream_t s);
/// combine's slots replayed (as launchCombine assigns them); dy[E, C, H]
/// of the block's experts (zero where no token went) and dw[T, k] (zero for
/// a choice without a slot). `scratch`: block.total + tokens * k int64, as
/// launchCombine's.
cudaError_t launchCombineGrad(const void *y, const void *w, int dtype,
                              const void *ids, int idType, const void *dout,
                              int64_t tokens, int64_t k, ExpertBlock block,
                              int64_t capacity, int64_t h, void *dy, void *dw,
                              int64_t *scratch, DeviceError *err,
                              cudaStream_t s);
/// The dS step of attention_grad over a block of f32 rows: with
/// delta = sum_j dout[i, j] o[i, j] (d elements, `ld` apart per row),
/// ds[i, c] = p[i, c] (ds[i, c] - delta) for c < keys. ds holds dP on entry.
cudaError_t launchAttentionDs(const float *p, float *ds, const float *dout,
                              const float *o, int64_t rows, int64_t keys,
                              int64_t d, int64_t ld, cudaStream_t s);
/// attention_block's masked softmax of f32 score rows [rows, sk], in place,
/// with each row's log-sum-exp (KernelMath's softmaxRowLse, one thread per
/// row): row r is query qOffset + (r % sq) of the (r / sq)-th head, key j
/// stands at kOffset + j (causal: visible when at or before the query); its
/// log-sum-exp goes to lse[(r / sq) * lseHead + (r % sq) * lseRow] (−∞ and a
/// zero row when it sees no key).
cudaError_t launchSoftmaxLse(float *scores, int64_t rows, int64_t sq,
                             int64_t sk, bool causal, int64_t qOffset,
                             int64_t kOffset, float *lse, int64_t lseRow,
                             int64_t lseHead, cudaStream_t s);
/// attention_block_grad's P over f32 score rows [rows, keys], in place:
/// e^(s − lse[r * lseRow]) for the keys row r (query qOffset + r) sees,
/// 0 for the others (KernelMath's probRowFromLse, one thread per row).
cudaError_t launchProbFromLse(float *p, int64_t rows, int64_t keys, bool causal,
                              int64_t qOffset, int64_t kOffset,
                              const float *lse, int64_t lseRow, cudaStream_t s);

} // namespace loom::runtime::cuda

#endif // LOOM_RUNTIME_SRC_BACKENDS_CUDA_CUDAKERNELS_H
