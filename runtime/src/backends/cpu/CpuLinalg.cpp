//===- CpuLinalg.cpp - CPU matmul, grouped matmul and attention -----------===//
//
// All through OpenBLAS cblas_sgemm. f32 operands are used in place; bf16/f16
// operands are converted to f32 scratch and the result rounded back.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cblas.h>
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

/// C[m, n] = A · B (row-major), A is [m, k] or [k, m] when ta, B is [k, n]
/// or [n, k] when tb.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
          int64_t ldc) {
  if (m == 0 || n == 0)
    return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a,
              static_cast<int>(std::max<int64_t>(lda, 1)), b,
              static_cast<int>(std::max<int64_t>(ldb, 1)), 0.0f, c,
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

/// Query rows per block of causal attention: large enough for BLAS to run
/// near its peak, small enough that little of the masked triangle is computed.
constexpr int64_t kCausalBlock = 64;

void attentionK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &Q = c.in[0], &K = c.in[1], &V = c.in[2], &O = c.out[0];
  int64_t nb = Q.shape[0], sq = Q.shape[1], hq = Q.shape[2], d = Q.shape[3];
  int64_t sk = K.shape[1], hkv = K.shape[2];
  F32View v{static_cast<char *>(ctx.scratch)};
  const float *q = v.load(Q), *k = v.load(K), *val = v.load(V);
  float *o = v.result(O);
  float *scores = reinterpret_cast<float *>(v.next);
  bool causal = attrOf(c, attr::Attention::causal).i;
  float scale = math::attentionScale(c.attrs, d);
  if (sk == 0) {
    std::fill(o, o + O.numel, 0.0f);
  } else if (sq && d) {
    int64_t group = hq / hkv;
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t h = 0; h < hq; ++h) {
        int64_t kh = h / group;
        const float *qb = q + (b * sq * hq + h) * d;
        const float *kb = k + (b * sk * hkv + kh) * d;
        const float *vb = val + (b * sk * hkv + kh) * d;
        float *ob = o + (b * sq * hq + h) * d;
        // Causal attention works in blocks of query rows, each against the
        // keys it may see: the masked upper triangle is never computed.
        int64_t block = causal ? kCausalBlock : sq;
        for (int64_t q0 = 0; q0 < sq; q0 += block) {
          int64_t rows = std::min(block, sq - q0);
          int64_t keys = causal ? std::min(q0 + rows, sk) : sk;
          gemm(false, true, rows, keys, d, scale, qb + q0 * hq * d, hq * d, kb,
               hkv * d, scores, keys);
          for (int64_t i = 0; i < rows; ++i)
            math::softmaxRowMasked(scores + i * keys, keys,
                                   causal ? std::min(q0 + i + 1, keys) : keys);
          gemm(false, false, rows, d, keys, 1.0f, scores, keys, vb, hkv * d,
               ob + q0 * hq * d, hq * d);
        }
      }
  }
  F32View::store(O, o);
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
  case Opcode::Attention:
    c.kernel = &attentionK;
    c.scratchBytes =
        f32ScratchBytes(c) +
        align64(c.in[0].shape[1] * c.in[1].shape[1] * sizeof(float));
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
