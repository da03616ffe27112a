//===- CudaLinalg.cpp - cuBLAS / cuBLASLt matmul and attention ------------===//
//
// Row-major C[m, n] = op(A) op(B) is the column-major C^T = op(B)^T op(A)^T,
// so every call swaps the operands and passes (n, m, k). f32 uses cuBLAS
// sgemm (strided batched), with exact f32 math (no TF32). bf16 and f16 use
// cuBLASLt with f32 compute when its heuristic finds an algorithm, else
// cublasGemmStridedBatchedEx with f32 compute. Operands of mixed types are
// converted to f32 in scratch first, as the CPU backend does. Attention is
// two batched GEMMs per (batch, key/value head) around a masked softmax,
// in f32; attention_grad recomputes it block by block of query rows, as the
// CPU kernel does, with five GEMMs per block. Ring attention's
// attention_block and attention_block_grad are the same code with the keys
// at key_offset, the softmax also giving each row's log-sum-exp, and the
// backward's P taken from the whole attention's log-sum-exp.
//
//===----------------------------------------------------------------------===//

#include "CudaPlugin.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <vector>

using namespace loom::runtime;
using namespace loom::runtime::cuda;

#define TRY(expr)                                                              \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ != LOOM_OK)                                                        \
      return rc_;                                                              \
  } while (0)

namespace {

struct Gemm {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  const void *a = nullptr;
  int64_t lda = 0, strideA = 0;
  const void *b = nullptr;
  int64_t ldb = 0, strideB = 0;
  void *c = nullptr;
  int64_t ldc = 0, strideC = 0;
  int64_t batch = 1;
  float alpha = 1.0f;
  float beta = 0.0f;    ///< C = alpha op(A) op(B) + beta C
  int dtype = LOOM_F32; ///< of a, b and c
};

/// Releases cuBLASLt descriptors on scope exit.
struct LtObjects {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtObjects() {
    if (pref)
      cublasLtMatmulPreferenceDestroy(pref);
    if (lc)
      cublasLtMatrixLayoutDestroy(lc);
    if (lb)
      cublasLtMatrixLayoutDestroy(lb);
    if (la)
      cublasLtMatrixLayoutDestroy(la);
    if (op)
      cublasLtMatmulDescDestroy(op);
  }
};

/// Largest power of two (up to 256) that divides the address.
uint32_t alignmentOf(const void *p) {
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align)
    align /= 2;
  return align;
}

/// cuBLASLt for 16-bit operands; *done = false when no algorithm fits (the
/// caller then uses cublasGemmStridedBatchedEx).
int ltGemm(PluginState &st, const Gemm &g, cudaStream_t s, void *workspace,
           bool *done) {
  *done = false;
  cudaDataType_t t = g.dtype == LOOM_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  LtObjects o;
  TRY(checkCublas(
      cublasLtMatmulDescCreate(&o.op, CUBLAS_COMPUTE_32F, CUDA_R_32F),
      "cublasLtMatmulDescCreate"));
  cublasOperation_t opA = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  TRY(checkCublas(cublasLtMatmulDescSetAttribute(
                      o.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)),
                  "cublasLtMatmulDescSetAttribute"));
  TRY(checkCublas(cublasLtMatmulDescSetAttribute(
                      o.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)),
                  "cublasLtMatmulDescSetAttribute"));
  // Column-major views of the operands as stored (see the file comment).
  TRY(checkCublas(cublasLtMatrixLayoutCreate(&o.la, t, g.tb ? g.k : g.n,
                                             g.tb ? g.n : g.k, g.ldb),
                  "cublasLtMatrixLayoutCreate"));
  TRY(checkCublas(cublasLtMatrixLayoutCreate(&o.lb, t, g.ta ? g.m : g.k,
                                             g.ta ? g.k : g.m, g.lda),
                  "cublasLtMatrixLayoutCreate"));
  TRY(checkCublas(cublasLtMatrixLayoutCreate(&o.lc, t, g.n, g.m, g.ldc),
                  "cublasLtMatrixLayoutCreate"));
  if (g.batch > 1) {
    int32_t count = static_cast<int32_t>(g.batch);
    struct {
      cublasLtMatrixLayout_t layout;
      int64_t stride;
    } views[] = {{o.la, g.strideB}, {o.lb, g.strideA}, {o.lc, g.strideC}};
    for (auto &v : views) {
      TRY(checkCublas(cublasLtMatrixLayoutSetAttribute(
                          v.layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                          sizeof(count)),
                      "cublasLtMatrixLayoutSetAttribute"));
      TRY(checkCublas(cublasLtMatrixLayoutSetAttribute(
                          v.layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                          &v.stride, sizeof(v.stride)),
                      "cublasLtMatrixLayoutSetAttribute"));
    }
  }
  TRY(checkCublas(cublasLtMatmulPreferenceCreate(&o.pref),
                  "cublasLtMatmulPreferenceCreate"));
  uint64_t ws = st.workspaceBytes;
  TRY(checkCublas(
      cublasLtMatmulPreferenceSetAttribute(
          o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
      "cublasLtMatmulPreferenceSetAttribute"));
  // Tell the heuristic how the operands are aligned (arena offsets need
  // not be 16-byte multiples). A' is g.b, B' is g.a (see the file comment).
  struct {
    cublasLtMatmulPreferenceAttributes_t attr;
    const void *ptr;
  } aligns[] = {{CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, g.b},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, g.a},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, g.c},
                {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, g.c}};
  for (auto &al : aligns) {
    uint32_t bytes = alignmentOf(al.ptr);
    TRY(checkCublas(cublasLtMatmulPreferenceSetAttribute(o.pref, al.attr,
                                                         &bytes, sizeof(bytes)),
                    "cublasLtMatmulPreferenceSetAttribute"));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(
      st.lt, o.op, o.la, o.lb, o.lc, o.lc, o.pref, 1, &result, &found);
  if (hs != CUBLAS_STATUS_SUCCESS || found == 0)
    return LOOM_OK; // let cublasGemmEx try
  float alpha = g.alpha, beta = g.beta;
  cublasStatus_t ms = cublasLtMatmul(st.lt, o.op, &alpha, g.b, o.la, g.a, o.lb,
                                     &beta, g.c, o.lc, g.c, o.lc, &result.algo,
                                     workspace, st.workspaceBytes, s);
  if (ms == CUBLAS_STATUS_NOT_SUPPORTED)
    return LOOM_OK; // let cublasGemmEx try
  TRY(checkCublas(ms, "cublasLtMatmul"));
  *done = true;
  return LOOM_OK;
}

int gemm(PluginState &st, const Gemm &g, cudaStream_t s) {
  if (g.m == 0 || g.n == 0 || g.batch == 0)
    return LOOM_OK;
  StreamBlas *sb = nullptr;
  TRY(streamBlas(st, s, &sb));
  if (g.dtype != LOOM_F32) {
    bool done = false;
    TRY(ltGemm(st, g, s, sb->workspace, &done));
    if (done)
      return LOOM_OK;
  }
  cublasOperation_t opA = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opB = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  float alpha = g.alpha, beta = g.beta;
  if (g.dtype == LOOM_F32)
    return checkCublas(cublasSgemmStridedBatched_64(
                           sb->blas, opA, opB, g.n, g.m, g.k, &alpha,
                           static_cast<const float *>(g.b), g.ldb, g.strideB,
                           static_cast<const float *>(g.a), g.lda, g.strideA,
                           &beta, static_cast<float *>(g.c), g.ldc, g.strideC,
                           g.batch),
                       "cublasSgemmStridedBatched");
  cudaDataType_t t = g.dtype == LOOM_BF16 ? CUDA_R_16BF : CUDA_R_16F;
  return checkCublas(cublasGemmStridedBatchedEx_64(
                         sb->blas, opA, opB, g.n, g.m, g.k, &alpha, g.b, t,
                         g.ldb, g.strideB, g.a, t, g.lda, g.strideA, &beta, g.c,
                         t, g.ldc, g.strideC, g.batch, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT),
                     "cublasGemmStridedBatchedEx");
}

/// Operands as one element type: the tensors themselves when all share
/// f32, bf16 or f16; otherwise f32 copies carved from scratch.
struct Operands {
  int dtype = LOOM_F32;
  std::vector<const void *> in;
  std::vector<void *> out;
  bool converted = false;
};

size_t conversionBytes(const LoomKernelCall &c, bool allowSame16) {
  int t = c.in[0].dtype;
  bool same = true;
  for (int i = 0; i < c.numIn; ++i)
    same &= c.in[i].dtype == t;
  for (int i = 0; i < c.numOut; ++i)
    same &= c.out[i].dtype == t;
  if (same && (t == LOOM_F32 || allowSame16))
    return 0;
  size_t n = 0;
  for (int i = 0; i < c.numIn; ++i)
    if (c.in[i].dtype != LOOM_F32)
      n += align256(numel(c.in[i]) * sizeof(float));
  for (int i = 0; i < c.numOut; ++i)
    if (c.out[i].dtype != LOOM_F32)
      n += align256(numel(c.out[i]) * sizeof(float));
  return n;
}

int resolve(const LoomKernelCall &c, bool allowSame16, char *&scratch,
            Operands &ops, cudaStream_t s) {
  ops.in.clear();
  ops.out.clear();
  if (conversionBytes(c, allowSame16) == 0) {
    ops.dtype = c.in[0].dtype;
    for (int i = 0; i < c.numIn; ++i)
      ops.in.push_back(c.in[i].data);
    for (int i = 0; i < c.numOut; ++i)
      ops.out.push_back(c.out[i].data);
    return LOOM_OK;
  }
  ops.dtype = LOOM_F32;
  ops.converted = true;
  for (int i = 0; i < c.numIn; ++i) {
    const LoomTensor &t = c.in[i];
    if (t.dtype == LOOM_F32) {
      ops.in.push_back(t.data);
      continue;
    }
    TRY(checkCuda(
        launchConvert(t.data, t.dtype, scratch, LOOM_F32, numel(t), s),
        "convert to f32"));
    ops.in.push_back(scratch);
    scratch += align256(numel(t) * sizeof(float));
  }
  for (int i = 0; i < c.numOut; ++i) {
    const LoomTensor &t = c.out[i];
    if (t.dtype == LOOM_F32) {
      ops.out.push_back(t.data);
      continue;
    }
    ops.out.push_back(scratch);
    scratch += align256(numel(t) * sizeof(float));
  }
  return LOOM_OK;
}

/// Rounds f32 results computed in scratch back to their tensors.
int storeResults(const LoomKernelCall &c, const Operands &ops, cudaStream_t s) {
  for (int i = 0; i < c.numOut; ++i)
    if (ops.out[i] != c.out[i].data)
      TRY(checkCuda(launchConvert(ops.out[i], LOOM_F32, c.out[i].data,
                                  c.out[i].dtype, numel(c.out[i]), s),
                    "convert from f32"));
  return LOOM_OK;
}

bool floatType(int t) {
  return t == LOOM_F32 || t == LOOM_BF16 || t == LOOM_F16;
}

int unsupportedLinalg(const char *name, const std::string &why) {
  return fail(LOOM_UNSUPPORTED, std::string("cuda backend has no kernel for ") +
                                    name + ": " + why);
}

int runMatmul(PluginState &st, const LoomKernelCall &c, cudaStream_t s) {
  const LoomTensor &A = c.in[0], &B = c.in[1], &C = c.out[0];
  bool ta = c.attrs.values[attr::Matmul::transpose_lhs].i;
  bool tb = c.attrs.values[attr::Matmul::transpose_rhs].i;
  int rb = B.rank;
  auto [batch, m, n, k] =
      loom::runtime::math::matmulDims(A.shape, A.rank, B.shape, rb, ta, tb);
  if (m == 0 || n == 0 || batch == 0)
    return LOOM_OK;
  if (k == 0)
    return checkCuda(
        cudaMemsetAsync(C.data, 0, numel(C) * dtypeBytes(C.dtype), s),
        "matmul");
  char *scratch = static_cast<char *>(c.scratch);
  Operands ops;
  TRY(resolve(c, true, scratch, ops, s));
  Gemm g;
  g.dtype = ops.dtype;
  g.a = ops.in[0];
  g.b = ops.in[1];
  g.c = ops.out[0];
  g.k = k;
  g.n = n;
  g.lda = ta ? m : k;
  g.ldb = tb ? k : n;
  g.ldc = n;
  if (rb == 2 && !ta) {
    // A weight shared by the batch: fold the batch into the rows.
    g.tb = tb;
    g.m = batch * m;
  } else {
    g.ta = ta;
    g.tb = tb;
    g.m = m;
    g.batch = batch;
    g.strideA = m * k;
    g.strideB = rb == 2 ? 0 : k * n;
    g.strideC = m * n;
  }
  TRY(gemm(st, g, s));
  return storeResults(c, ops, s);
}

int runGroupedMatmul(PluginState &st, const LoomKernelCall &c, cudaStream_t s) {
  const LoomTensor &X = c.in[0], &Y = c.out[0];
  bool tw = c.attrs.values[attr::GroupedMatmul::transpose_weight].i;
  int64_t e = X.shape[0], rows = X.shape[1], k = X.shape[2], n = Y.shape[2];
  if (e == 0 || rows == 0 || n == 0)
    return LOOM_OK;
  if (k == 0)
    return checkCuda(
        cudaMemsetAsync(Y.data, 0, numel(Y) * dtypeBytes(Y.dtype), s),
        "grouped_matmul");
  char *scratch = static_cast<char *>(c.scratch);
  Operands ops;
  TRY(resolve(c, true, scratch, ops, s));
  Gemm g;
  g.dtype = ops.dtype;
  g.tb = tw;
  g.m = rows;
  g.n = n;
  g.k = k;
  g.a = ops.in[0];
  g.lda = k;
  g.strideA = rows * k;
  g.b = ops.in[1];
  g.ldb = tw ? k : n;
  g.strideB = k * n;
  g.c = ops.out[0];
  g.ldc = n;
  g.strideC = rows * n;
  g.batch = e;
  TRY(gemm(st, g, s));
  return storeResults(c, ops, s);
}

static_assert(static_cast<int>(attr::AttentionBlock::causal) ==
                  static_cast<int>(attr::Attention::causal) &&
              static_cast<int>(attr::AttentionBlock::scale) ==
                  static_cast<int>(attr::Attention::scale) &&
              static_cast<int>(attr::AttentionBlock::query_offset) ==
                  static_cast<int>(attr::Attention::query_offset));
static_assert(static_cast<int>(attr::AttentionBlockGrad::causal) ==
                  static_cast<int>(attr::AttentionGrad::causal) &&
              static_cast<int>(attr::AttentionBlockGrad::scale) ==
                  static_cast<int>(attr::AttentionGrad::scale) &&
              static_cast<int>(attr::AttentionBlockGrad::query_offset) ==
                  static_cast<int>(attr::AttentionGrad::query_offset));

/// attention, or attention_block: the keys stand at key_offset and the
/// softmax writes each query row's log-sum-exp to the second result.
int runAttention(PluginState &st, const LoomKernelCall &c, cudaStream_t s) {
  const LoomTensor &Q = c.in[0], &K = c.in[1], &O = c.out[0];
  int64_t nb = Q.shape[0], sq = Q.shape[1], hq = Q.shape[2], d = Q.shape[3];
  int64_t sk = K.shape[1], hkv = K.shape[2];
  bool block = c.opcode == kAttentionBlock;
  const char *name = block ? "attention_block" : "attention";
  bool causal = c.attrs.values[attr::Attention::causal].i;
  int64_t qo = c.attrs.values[attr::Attention::query_offset].i;
  int64_t ko = block ? c.attrs.values[attr::AttentionBlock::key_offset].i : 0;
  if (numel(O) == 0 && !(block && numel(c.out[1])))
    return LOOM_OK;
  if (sk == 0 || d == 0) {
    TRY(checkCuda(cudaMemsetAsync(O.data, 0, numel(O) * dtypeBytes(O.dtype), s),
                  name));
    // No keys: −∞; no head dimension: the CPU's 0.
    if (block)
      TRY(checkCuda(launchFill(c.out[1].data, c.out[1].dtype, numel(c.out[1]),
                               sk == 0 ? -INFINITY : 0.0f, s),
                    name));
    return LOOM_OK;
  }
  char *scratch = static_cast<char *>(c.scratch);
  Operands ops;
  TRY(resolve(c, false, scratch, ops, s));
  float *scores = reinterpret_cast<float *>(scratch);
  const float *q = static_cast<const float *>(ops.in[0]);
  const float *k = static_cast<const float *>(ops.in[1]);
  const float *v = static_cast<const float *>(ops.in[2]);
  float *o = static_cast<float *>(ops.out[0]);
  float *lse = block ? static_cast<float *>(ops.out[1]) : nullptr;
  int64_t group = hq / hkv;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t kh = 0; kh < hkv; ++kh) {
      // scores[g] = scale * Q[b, :, kh*group + g, :] K[b, :, kh, :]^T
      Gemm s1;
      s1.tb = true;
      s1.m = sq;
      s1.n = sk;
      s1.k = d;
      s1.alpha = math::attentionScale(c.attrs, d);
      s1.a = q + (b * sq * hq + kh * group) * d;
      s1.lda = hq * d;
      s1.strideA = d;
      s1.b = k + (b * sk * hkv + kh) * d;
      s1.ldb = hkv * d;
      s1.strideB = 0;
      s1.c = scores;
      s1.ldc = sk;
      s1.strideC = sq * sk;
      s1.batch = group;
      TRY(gemm(st, s1, s));
      if (block)
        TRY(checkCuda(launchSoftmaxLse(scores, group * sq, sq, sk, causal, qo,
                                       ko, lse + b * sq * hq + kh * group, hq,
                                       1, s),
                      "attention_block softmax"));
      else
        TRY(checkCuda(
            launchMaskedSoftmax(scores, group * sq, sq, sk, causal, s, qo),
            "attention softmax"));
      // O[b, :, kh*group + g, :] = P[g] V[b, :, kh, :]
      Gemm s2;
      s2.m = sq;
      s2.n = d;
      s2.k = sk;
      s2.a = scores;
      s2.lda = sk;
      s2.strideA = sq * sk;
      s2.b = v + (b * sk * hkv + kh) * d;
      s2.ldb = hkv * d;
      s2.strideB = 0;
      s2.c = o + (b * sq * hq + kh * group) * d;
      s2.ldc = hq * d;
      s2.strideC = d;
      s2.batch = group;
      TRY(gemm(st, s2, s));
    }
  return storeResults(c, ops, s);
}

/// Query rows per block of attention_grad, as the CPU kernel's kGradBlock:
/// P and dP of one block are two [rows, sk] f32 matrices in scratch.
constexpr int64_t kGradBlock = 32;

/// The attention backward as the CPU's attentionGradK, block by block of
/// query rows for each (batch, query head): S = scale·q·kᵀ, P = masked
/// softmax(S), dP = do·vᵀ, dS = P∘(dP − rowsum(do∘o)); dq = scale·dS·k,
/// dk += scale·dSᵀ·q, dv += Pᵀ·do (beta = 1). The query heads of a group
/// add into their kv head in head order, then block order, all on one
/// stream: the sums are deterministic. attention_block_grad: the keys stand
/// at key_offset and P = e^(scale·q·kᵀ − lse) from the lse operand; blocks
/// of rows that see no key are skipped.
int runAttentionGrad(PluginState &st, const LoomKernelCall &c, cudaStream_t s) {
  const LoomTensor &Q = c.in[0], &K = c.in[1];
  int64_t nb = Q.shape[0], sq = Q.shape[1], hq = Q.shape[2], d = Q.shape[3];
  int64_t sk = K.shape[1], hkv = K.shape[2];
  char *scratch = static_cast<char *>(c.scratch);
  Operands ops;
  TRY(resolve(c, false, scratch, ops, s));
  const float *q = static_cast<const float *>(ops.in[0]);
  const float *k = static_cast<const float *>(ops.in[1]);
  const float *v = static_cast<const float *>(ops.in[2]);
  const float *o = static_cast<const float *>(ops.in[3]);
  const float *dout = static_cast<const float *>(ops.in[4]);
  bool block = c.opcode == kAttentionBlockGrad;
  const char *name = block ? "attention_block_grad" : "attention_grad";
  const float *lse = block ? static_cast<const float *>(ops.in[5]) : nullptr;
  float *grads[3];
  for (int i = 0; i < 3; ++i) {
    grads[i] = static_cast<float *>(ops.out[i]);
    TRY(checkCuda(
        cudaMemsetAsync(grads[i], 0, numel(c.out[i]) * sizeof(float), s),
        name));
  }
  float *dq = grads[0], *dk = grads[1], *dv = grads[2];
  float *p = reinterpret_cast<float *>(scratch);
  float *dp = reinterpret_cast<float *>(
      scratch + align256(kGradBlock * sk * sizeof(float)));
  bool causal = c.attrs.values[attr::AttentionGrad::causal].i;
  int64_t qo = c.attrs.values[attr::AttentionGrad::query_offset].i;
  int64_t ko =
      block ? c.attrs.values[attr::AttentionBlockGrad::key_offset].i : 0;
  static_assert(static_cast<int>(attr::AttentionGrad::scale) ==
                static_cast<int>(attr::Attention::scale));
  float scale = math::attentionScale(c.attrs, d);
  if (sk && sq && d) {
    int64_t group = hq / hkv, qs = hq * d, ks = hkv * d;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t h = 0; h < hq; ++h) {
        int64_t kh = h / group;
        const float *qb = q + b * sq * qs + h * d;
        const float *ob = o + b * sq * qs + h * d;
        const float *dob = dout + b * sq * qs + h * d;
        float *dqb = dq + b * sq * qs + h * d;
        const float *kb = k + b * sk * ks + kh * d;
        const float *vb = v + b * sk * ks + kh * d;
        float *dkb = dk + b * sk * ks + kh * d;
        float *dvb = dv + b * sk * ks + kh * d;
        for (int64_t q0 = 0; q0 < sq; q0 += kGradBlock) {
          int64_t rows = std::min(kGradBlock, sq - q0);
          // The keys the block's last row sees (the most of any row).
          int64_t keys = math::visibleKeys(qo + q0 + rows - 1, ko, sk, causal);
          if (keys == 0)
            continue;
          // P = softmax(scale · q kᵀ), masked (attention_block_grad:
          // e^(scale · q kᵀ − lse)): [rows, keys].
          Gemm g1;
          g1.tb = true;
          g1.m = rows;
          g1.n = keys;
          g1.k = d;
          g1.alpha = scale;
          g1.a = qb + q0 * qs;
          g1.lda = qs;
          g1.b = kb;
          g1.ldb = ks;
          g1.c = p;
          g1.ldc = keys;
          TRY(gemm(st, g1, s));
          if (block)
            TRY(checkCuda(launchProbFromLse(p, rows, keys, causal, qo + q0, ko,
                                            lse + (b * sq + q0) * hq + h, hq,
                                            s),
                          "attention_block_grad P"));
          else
            TRY(checkCuda(
                launchMaskedSoftmax(p, rows, rows, keys, causal, s, qo + q0),
                "attention_grad softmax"));
          // dP = do vᵀ, then dS = P (dP - rowsum(do o)) in place.
          Gemm g2 = g1;
          g2.alpha = 1.0f;
          g2.a = dob + q0 * qs;
          g2.b = vb;
          g2.c = dp;
          TRY(gemm(st, g2, s));
          TRY(checkCuda(launchAttentionDs(p, dp, dob + q0 * qs, ob + q0 * qs,
                                          rows, keys, d, qs, s),
                        name));
          // dq = scale · dS k: [rows, d].
          Gemm g3;
          g3.m = rows;
          g3.n = d;
          g3.k = keys;
          g3.alpha = scale;
          g3.a = dp;
          g3.lda = keys;
          g3.b = kb;
          g3.ldb = ks;
          g3.c = dqb + q0 * qs;
          g3.ldc = qs;
          TRY(gemm(st, g3, s));
          // dk += scale · dSᵀ q, dv += Pᵀ do: [keys, d].
          Gemm g4;
          g4.ta = true;
          g4.m = keys;
          g4.n = d;
          g4.k = rows;
          g4.alpha = scale;
          g4.beta = 1.0f;
          g4.a = dp;
          g4.lda = keys;
          g4.b = qb + q0 * qs;
          g4.ldb = qs;
          g4.c = dkb;
          g4.ldc = ks;
          TRY(gemm(st, g4, s));
          Gemm g5 = g4;
          g5.alpha = 1.0f;
          g5.a = p;
          g5.b = dob + q0 * qs;
          g5.c = dvb;
          TRY(gemm(st, g5, s));
        }
      }
  }
  return storeResults(c, ops, s);
}

} // namespace

bool loom::runtime::cuda::isLinalg(uint16_t op) {
  return op == kMatmul || op == kGroupedMatmul || op == kAttention ||
         op == kAttentionGrad || op == kAttentionBlock ||
         op == kAttentionBlockGrad;
}

int loom::runtime::cuda::prepareLinalg(PluginState &, const LoomKernelCall &c,
                                       size_t *scratch) {
  const char *name = c.opcode == kMatmul           ? "matmul"
                     : c.opcode == kGroupedMatmul  ? "grouped_matmul"
                     : c.opcode == kAttention      ? "attention"
                     : c.opcode == kAttentionGrad  ? "attention_grad"
                     : c.opcode == kAttentionBlock ? "attention_block"
                                                   : "attention_block_grad";
  for (int i = 0; i < c.numIn; ++i)
    if (!floatType(c.in[i].dtype))
      return unsupportedLinalg(name, "operands must be f32, bf16 or f16");
  for (int i = 0; i < c.numOut; ++i)
    if (!floatType(c.out[i].dtype))
      return unsupportedLinalg(name, "results must be f32, bf16 or f16");
  if (c.opcode == kAttentionGrad || c.opcode == kAttentionBlockGrad) {
    int64_t hq = c.in[0].shape[2], sk = c.in[1].shape[1];
    int64_t hkv = c.in[1].shape[2];
    if (hkv == 0 || hq % hkv != 0)
      return unsupportedLinalg(name,
                               "query heads must be a multiple of kv heads");
    // f32 copies, then P and dP of one block of query rows.
    *scratch =
        conversionBytes(c, false) +
        2 * align256(std::max<int64_t>(kGradBlock * sk, 1) * sizeof(float));
    return LOOM_OK;
  }
  if (c.opcode == kAttention || c.opcode == kAttentionBlock) {
    int64_t sq = c.in[0].shape[1], hq = c.in[0].shape[2];
    int64_t sk = c.in[1].shape[1], hkv = c.in[1].shape[2];
    if (hkv == 0 || hq % hkv != 0)
      return unsupportedLinalg(name,
                               "query heads must be a multiple of kv heads");
    *scratch =
        conversionBytes(c, false) +
        align256(std::max<int64_t>(hq / hkv * sq * sk, 1) * sizeof(float));
    return LOOM_OK;
  }
  *scratch = conversionBytes(c, true);
  return LOOM_OK;
}

int loom::runtime::cuda::runLinalg(PluginState &st, const LoomKernelCall &c,
                                   cudaStream_t s) {
  switch (c.opcode) {
  case kMatmul:
    return runMatmul(st, c, s);
  case kGroupedMatmul:
    return runGroupedMatmul(st, c, s);
  case kAttentionGrad:
  case kAttentionBlockGrad:
    return runAttentionGrad(st, c, s);
  default:
    return runAttention(st, c, s);
  }
}
