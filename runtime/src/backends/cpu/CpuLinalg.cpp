//===- CpuLinalg.cpp - CPU matmul, grouped matmul, attention and its grad -===//
//
// All through OpenBLAS cblas_sgemm. f32 operands are used in place; bf16/f16
// operands are converted to f32 scratch and the result rounded back.
// Matmuls use OpenBLAS's threads; attention splits its (batch, head, block
// of queries) and attention_grad its (batch, kv head) across threads, each
// running single-threaded sgemms (OpenBLAS runs on one thread inside an
// OpenMP parallel region) on a work area of its own.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "CpuParallel.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <cstring>

namespace loom::runtime::cpu {
namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

/// Operand pointers as f32: the tensor itself, or a converted copy carved
/// from scratch.
struct F32View {
  char *next;
  const float *load(const TensorRef &t) {
    if (t.dtype == DType::F32)
      return t.as<const float>();
    float *p = reinterpret_cast<float *>(next);
    next += align64(t.numel * sizeof(float));
    toF32Buffer(t.data, t.dtype, p, t.numel);
    return p;
  }
  float *result(const TensorRef &t) {
    if (t.dtype == DType::F32)
      return t.as<float>();
    float *p = reinterpret_cast<float *>(next);
    next += align64(t.numel * sizeof(float));
    return p;
  }
  static void store(const TensorRef &t, const float *p) {
    if (t.dtype != DType::F32)
      fromF32Buffer(p, t.dtype, t.data, t.numel);
  }
};

size_t f32ScratchBytes(const OpCall &c) {
  size_t n = 0;
  for (const TensorRef &t : c.in)
    if (t.dtype != DType::F32)
      n += align64(t.numel * sizeof(float));
  for (const TensorRef &t : c.out)
    if (t.dtype != DType::F32)
      n += align64(t.numel * sizeof(float));
  return n;
}

/// C[m, n] = alpha·A·B + beta·C (row-major), A is [m, k] or [k, m] when
/// ta, B is [k, n] or [n, k] when tb.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
          int64_t ldc, float beta = 0.0f) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j)
        c[i * ldc + j] *= beta;
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(std::max<int64_t>(lda, 1)), b,
              static_cast<int>(std::max<int64_t>(ldb, 1)), beta, c,
              static_cast<int>(std::max<int64_t>(ldc, 1)));
}

void matmulK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &A = c.in[0], &B = c.in[1], &C = c.out[0];
  bool ta = attrOf(c, attr::Matmul::transpose_lhs).i;
  bool tb = attrOf(c, attr::Matmul::transpose_rhs).i;
  int rb = B.rank;
  auto [batch, m, n, k] =
      math::matmulDims(A.shape, A.rank, B.shape, rb, ta, tb);
  F32View v{static_cast<char *>(ctx.scratch)};
  const float *a = v.load(A), *b = v.load(B);
  float *out = v.result(C);
  int64_t lda = ta ? m : k, ldb = tb ? k : n;
  if (rb == 2 && !ta) {
    // A shared weight: fold the batch into the rows.
    gemm(false, tb, batch * m, n, k, 1.0f, a, lda, b, ldb, out, n);
  } else {
    int64_t bStride = rb == 2 ? 0 : k * n;
    for (int64_t i = 0; i < batch; ++i)
      gemm(ta, tb, m, n, k, 1.0f, a + i * m * k, lda, b + i * bStride, ldb,
           out + i * m * n, n);
  }
  F32View::store(C, out);
}

void groupedMatmulK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &X = c.in[0], &W = c.in[1], &Y = c.out[0];
  bool tw = attrOf(c, attr::GroupedMatmul::transpose_weight).i;
  int64_t e = X.shape[0], rows = X.shape[1], k = X.shape[2];
  int64_t n = Y.shape[2];
  F32View v{static_cast<char *>(ctx.scratch)};
  const float *x = v.load(X), *w = v.load(W);
  float *y = v.result(Y);
  for (int64_t i = 0; i < e; ++i)
    gemm(false, tw, rows, n, k, 1.0f, x + i * rows * k, k, w + i * k * n,
         tw ? k : n, y + i * rows * n, n);
  F32View::store(Y, y);
}

/// Query rows per block of attention: large enough for BLAS to run near its
/// peak, small enough that little of a causal mask's triangle is computed
/// (each block meets only the keys it may see).
constexpr int64_t kCausalBlock = 64;

/// The bytes of one thread's scores: a block of query rows against every key.
size_t attentionSlotBytes(const OpCall &c) {
  return align64(std::min(kCausalBlock, c.in[0].shape[1]) * c.in[1].shape[1] *
                 sizeof(float));
}

/// The masked softmax of a block of `rows` query rows from q0 against
/// `keys` keys (in place, scores `keys` apart).
LOOM_CPU_CLONES void softmaxBlock(float *scores, int64_t rows, int64_t keys,
                                  int64_t q0, bool causal) {
  for (int64_t i = 0; i < rows; ++i)
    math::softmaxRowMasked(scores + i * keys, keys,
                           causal ? std::min(q0 + i + 1, keys) : keys);
}

/// dS = P·(dP − D) of a block of the attention backward, in dp, with
/// D = rowsum(do·o) of each query row (do and o `stride` apart).
LOOM_CPU_CLONES void scoreGradBlock(const float *p, float *dp,
                                    const float *dout, const float *o,
                                    int64_t rows, int64_t keys, int64_t d,
                                    int64_t stride) {
  for (int64_t i = 0; i < rows; ++i) {
    const float *doRow = dout + i * stride, *oRow = o + i * stride;
    float delta = 0.0f;
    for (int64_t j = 0; j < d; ++j)
      delta += doRow[j] * oRow[j];
    const float *pRow = p + i * keys;
    float *dpRow = dp + i * keys;
    for (int64_t j = 0; j < keys; ++j)
      dpRow[j] = pRow[j] * (dpRow[j] - delta); // now dS
  }
}

using math::visibleKeys;

/// The masked softmax of `rows` score rows against a block of keys, in
/// place, with each row's log-sum-exp (`lse`, `lseStride` apart): row i's
/// query stands at position query0 + i; a row that sees no key gives zeros
/// and −∞.
LOOM_CPU_CLONES void softmaxBlockLse(float *scores, int64_t rows, int64_t keys,
                                     int64_t query0, int64_t keyOffset,
                                     bool causal, float *lse,
                                     int64_t lseStride) {
  for (int64_t i = 0; i < rows; ++i)
    lse[i * lseStride] =
        math::softmaxRowLse(scores + i * keys, keys,
                            visibleKeys(query0 + i, keyOffset, keys, causal));
}

/// The attention forward, one task per (batch, head, block of query rows),
/// each block's rows computed alone: attention (`lse` null, the keys the
/// whole sequence, keyOffset 0) and attention_block (a block of the keys
/// at keyOffset; each row's log-sum-exp written to `lse`). Query row i
/// stands at position queryOffset + i.
void attentionForward(const OpCall &c, KernelContext &ctx, bool causal,
                      int64_t queryOffset, int64_t keyOffset, float *lse) {
  const TensorRef &Q = c.in[0], &K = c.in[1], &V = c.in[2], &O = c.out[0];
  int64_t nb = Q.shape[0], sq = Q.shape[1], hq = Q.shape[2], d = Q.shape[3];
  int64_t sk = K.shape[1], hkv = K.shape[2];
  F32View v{static_cast<char *>(ctx.scratch)};
  const float *q = v.load(Q), *k = v.load(K), *val = v.load(V);
  float *o = v.result(O);
  float scale = math::attentionScale(c.attrs, d);
  int64_t group = hq / hkv;
  size_t slot = attentionSlotBytes(c);
  size_t before =
      static_cast<size_t>(v.next - static_cast<char *>(ctx.scratch));
  int64_t blocks = (sq + kCausalBlock - 1) / kCausalBlock;
  parallelFor(
      nb * hq * blocks, 2 * kCausalBlock * sk * d,
      [&](int64_t task) {
        int64_t b = task / (hq * blocks), h = task / blocks % hq;
        int64_t q0 = task % blocks * kCausalBlock, kh = h / group;
        int64_t rows = std::min(kCausalBlock, sq - q0);
        float *ob = o + (b * sq * hq + h) * d;
        float *lseb = lse ? lse + b * sq * hq + h : nullptr;
        // The keys the block's last row sees (the most of any row).
        int64_t keys =
            visibleKeys(queryOffset + q0 + rows - 1, keyOffset, sk, causal);
        if (keys == 0 || d == 0) {
          for (int64_t i = q0; i < q0 + rows; ++i) {
            std::fill(ob + i * hq * d, ob + i * hq * d + d, 0.0f);
            if (lseb)
              lseb[i * hq] =
                  keys == 0 ? -std::numeric_limits<float>::infinity() : 0.0f;
          }
          return;
        }
        float *scores =
            reinterpret_cast<float *>(v.next + threadIndex() * slot);
        const float *qb = q + (b * sq * hq + h) * d;
        const float *kb = k + (b * sk * hkv + kh) * d;
        const float *vb = val + (b * sk * hkv + kh) * d;
        gemm(false, true, rows, keys, d, scale, qb + q0 * hq * d, hq * d, kb,
             hkv * d, scores, keys);
        if (lseb)
          softmaxBlockLse(scores, rows, keys, queryOffset + q0, keyOffset,
                          causal, lseb + q0 * hq, hq);
        else
          softmaxBlock(scores, rows, keys, queryOffset + q0, causal);
        gemm(false, false, rows, d, keys, 1.0f, scores, keys, vb, hkv * d,
             ob + q0 * hq * d, hq * d);
      },
      threadSlots(ctx.scratchBytes, slot, before));
  F32View::store(O, o);
}

void attentionK(const OpCall &c, KernelContext &ctx) {
  attentionForward(c, ctx, attrOf(c, attr::Attention::causal).i,
                   attrOf(c, attr::Attention::query_offset).i, 0, nullptr);
}

/// Attention of the queries against one block of keys (ring attention's
/// step), with each query's log-sum-exp.
void attentionBlockK(const OpCall &c, KernelContext &ctx) {
  attentionForward(c, ctx, attrOf(c, attr::AttentionBlock::causal).i,
                   attrOf(c, attr::AttentionBlock::query_offset).i,
                   attrOf(c, attr::AttentionBlock::key_offset).i,
                   static_cast<float *>(c.out[1].data));
}

/// Query rows per block of the attention backward: two [rows, keys] blocks
/// (P and dP) are as large as the forward's one.
constexpr int64_t kGradBlock = kCausalBlock / 2;

/// The attention backward, recomputing P block by block (FlashAttention's
/// backward without tiling the keys): for each block of query rows,
/// S = scale·q·kᵀ, P (masked), dP = do·vᵀ, D = rowsum(do·o),
/// dS = P·(dP − D); dq = scale·dS·k, dk += scale·dSᵀ·q, dv += Pᵀ·do.
/// attention_grad (`lse` null): P = softmax(S) over the whole sequence of
/// keys. attention_block_grad: the keys are a block at keyOffset and
/// P = exp(S − lse) from the whole attention's log-sum-exp, so the block's
/// terms of dq, dk and dv come out.
void attentionBackward(const OpCall &c, KernelContext &ctx, bool causal,
                       int64_t queryOffset, int64_t keyOffset,
                       const float *lse) {
  const TensorRef &Q = c.in[0], &K = c.in[1], &V = c.in[2], &O = c.in[3],
                  &DO = c.in[4];
  int64_t nb = Q.shape[0], sq = Q.shape[1], hq = Q.shape[2], d = Q.shape[3];
  int64_t sk = K.shape[1], hkv = K.shape[2];
  F32View view{static_cast<char *>(ctx.scratch)};
  const float *q = view.load(Q), *k = view.load(K), *v = view.load(V),
              *o = view.load(O), *dout = view.load(DO);
  float *dq = view.result(c.out[0]), *dk = view.result(c.out[1]),
        *dv = view.result(c.out[2]);
  for (int r = 0; r < 3; ++r) {
    float *out = r == 0 ? dq : r == 1 ? dk : dv;
    parallelRanges(c.out[r].numel, 1, [&](int64_t b, int64_t e) {
      std::fill(out + b, out + e, 0.0f);
    });
  }
  float scale = math::attentionScale(c.attrs, d);
  if (sk && sq && d) {
    int64_t group = hq / hkv, qs = hq * d, ks = hkv * d;
    size_t slot = 2 * align64(kGradBlock * sk * sizeof(float));
    size_t before =
        static_cast<size_t>(view.next - static_cast<char *>(ctx.scratch));
    // One task per (batch, kv head): dk and dv add its query heads' blocks
    // in the order of a serial loop.
    parallelFor(
        nb * hkv, 5 * sq * sk * d * group,
        [&](int64_t task) {
          int64_t b = task / hkv, kh = task % hkv;
          float *p =
              reinterpret_cast<float *>(view.next + threadIndex() * slot);
          float *dp =
              p + align64(kGradBlock * sk * sizeof(float)) / sizeof(float);
          for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
            const float *qb = q + b * sq * qs + h * d;
            const float *ob = o + b * sq * qs + h * d;
            const float *dob = dout + b * sq * qs + h * d;
            const float *lseb = lse ? lse + b * sq * hq + h : nullptr;
            float *dqb = dq + b * sq * qs + h * d;
            const float *kb = k + b * sk * ks + kh * d;
            const float *vb = v + b * sk * ks + kh * d;
            float *dkb = dk + b * sk * ks + kh * d;
            float *dvb = dv + b * sk * ks + kh * d;
            for (int64_t q0 = 0; q0 < sq; q0 += kGradBlock) {
              int64_t rows = std::min(kGradBlock, sq - q0);
              int64_t keys = visibleKeys(queryOffset + q0 + rows - 1, keyOffset,
                                         sk, causal);
              if (keys == 0)
                continue;
              gemm(false, true, rows, keys, d, scale, qb + q0 * qs, qs, kb, ks,
                   p, keys);
              if (lseb)
                for (int64_t i = 0; i < rows; ++i)
                  math::probRowFromLse(p + i * keys, keys,
                                       visibleKeys(queryOffset + q0 + i,
                                                   keyOffset, keys, causal),
                                       lseb[(q0 + i) * hq]);
              else
                softmaxBlock(p, rows, keys, queryOffset + q0, causal);
              gemm(false, true, rows, keys, d, 1.0f, dob + q0 * qs, qs, vb, ks,
                   dp, keys);
              scoreGradBlock(p, dp, dob + q0 * qs, ob + q0 * qs, rows, keys, d,
                             qs);
              gemm(false, false, rows, d, keys, scale, dp, keys, kb, ks,
                   dqb + q0 * qs, qs);
              gemm(true, false, keys, d, rows, scale, dp, keys, qb + q0 * qs,
                   qs, dkb, ks, 1.0f);
              gemm(true, false, keys, d, rows, 1.0f, p, keys, dob + q0 * qs, qs,
                   dvb, ks, 1.0f);
            }
          }
        },
        threadSlots(ctx.scratchBytes, slot, before));
  }
  F32View::store(c.out[0], dq);
  F32View::store(c.out[1], dk);
  F32View::store(c.out[2], dv);
}

void attentionGradK(const OpCall &c, KernelContext &ctx) {
  attentionBackward(c, ctx, attrOf(c, attr::AttentionGrad::causal).i,
                    attrOf(c, attr::AttentionGrad::query_offset).i, 0, nullptr);
}

/// One key block's part of the attention backward.
void attentionBlockGradK(const OpCall &c, KernelContext &ctx) {
  attentionBackward(c, ctx, attrOf(c, attr::AttentionBlockGrad::causal).i,
                    attrOf(c, attr::AttentionBlockGrad::query_offset).i,
                    attrOf(c, attr::AttentionBlockGrad::key_offset).i,
                    static_cast<const float *>(c.in[5].data));
}

} // namespace

bool selectLinalg(OpCall &c) {
  switch (c.op) {
  case Opcode::Matmul:
    c.kernel = &matmulK;
    c.scratchBytes = f32ScratchBytes(c);
    return true;
  case Opcode::GroupedMatmul:
    c.kernel = &groupedMatmulK;
    c.scratchBytes = f32ScratchBytes(c);
    return true;
  case Opcode::AttentionGrad:
  case Opcode::AttentionBlockGrad:
    c.kernel =
        c.op == Opcode::AttentionGrad ? &attentionGradK : &attentionBlockGradK;
    c.scratchBytes = threadSlotsBytes(
        2 * align64(kGradBlock * c.in[1].shape[1] * sizeof(float)),
        f32ScratchBytes(c));
    return true;
  case Opcode::Attention:
  case Opcode::AttentionBlock:
    c.kernel = c.op == Opcode::Attention ? &attentionK : &attentionBlockK;
    c.scratchBytes =
        threadSlotsBytes(attentionSlotBytes(c), f32ScratchBytes(c));
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
