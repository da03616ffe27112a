//===- KernelMath.h - Element-wise and row math shared by backends -*- C++ -*-//
//
// The math of docs/OpSemantics.md as inline host/device functions (LOOM_HD),
// shared by the CPU kernels and the CUDA backend so that CPU tests cover it.
// Element types are the storage types of DType.h (float, bf16_t, f16_t,
// int32_t, int64_t); everything computes in f32 and rounds on store, except
// where noted (RoPE angles and AdamW bias corrections use double).
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_RUNTIME_KERNELMATH_H
#define LOOM_RUNTIME_KERNELMATH_H

#include "loom/runtime/BackendPlugin.h"
#include "loom/runtime/DType.h"
#include "loom/runtime/Opcode.h"

#include <cmath>
#include <cstdint>
#include <type_traits>

namespace loom::runtime::math {

//===----------------------------------------------------------------------===//
// Exponential
//===----------------------------------------------------------------------===//

/// e^x in f32 after Cephes' expf: range reduction by ln 2 in two parts and a
/// degree-6 polynomial, relative error below 2^-22. Branch-free (selects
/// only), so loops over it vectorize where libm's expf would be a call per
/// element. Inputs below -87.3 give 2^-126 rather than 0; NaN stays NaN.
LOOM_HD inline float fastExp(float x) {
  float c = x < -87.3f ? -87.3f : x;
  c = c > 88.3f ? 88.3f : c;
  float fx = c * 1.44269504088896341f + 0.5f;
  float t = static_cast<float>(static_cast<int32_t>(fx));
  float n = t > fx ? t - 1.0f : t; // floor
  float r = c - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  float scale =
      bitsToFloat(static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23);
  float y = p * scale;
  return x != x ? x : y;
}

/// tanh through fastExp: 1 - 2 / (e^{2x} + 1); absolute error ~1e-7.
LOOM_HD inline float fastTanh(float x) {
  return 1.0f - 2.0f / (fastExp(2.0f * x) + 1.0f);
}

/// Number of independent partial sums in row reductions: a fixed order (so
/// results are deterministic) that still lets the compiler vectorize.
constexpr int kReduceLanes = 8;

/// max over n elements `stride` apart.
template <typename T>
LOOM_HD inline float rowMax(const T *x, int64_t n, int64_t stride) {
  float lanes[kReduceLanes];
  for (int j = 0; j < kReduceLanes; ++j)
    lanes[j] = -INFINITY;
  int64_t i = 0;
#if !defined(__CUDACC__) && defined(__GNUC__)
  // Contiguous f32 on the host: the same lanes as one vector (the compilers
  // turn the select of 8 scalars into scalar code or branches; a row of
  // logits then takes as long as a pass of exponentials). Same bits.
  if constexpr (std::is_same_v<T, float>) {
    if (stride == 1) {
      typedef float Lanes __attribute__((vector_size(4 * kReduceLanes)));
      Lanes acc;
      for (int j = 0; j < kReduceLanes; ++j)
        acc[j] = -INFINITY;
      for (; i + kReduceLanes <= n; i += kReduceLanes) {
        Lanes v;
        __builtin_memcpy(&v, x + i, sizeof v);
        acc = v > acc ? v : acc;
      }
      for (int j = 0; j < kReduceLanes; ++j)
        lanes[j] = acc[j];
    }
  }
#endif
  // The contiguous case is its own loop: a strided index does not vectorize.
  if (stride == 1) {
    for (; i + kReduceLanes <= n; i += kReduceLanes)
      for (int j = 0; j < kReduceLanes; ++j) {
        float v = toF32(x[i + j]);
        lanes[j] = v > lanes[j] ? v : lanes[j];
      }
  } else {
    for (; i + kReduceLanes <= n; i += kReduceLanes)
      for (int j = 0; j < kReduceLanes; ++j) {
        float v = toF32(x[(i + j) * stride]);
        lanes[j] = v > lanes[j] ? v : lanes[j];
      }
  }
  float mx = -INFINITY;
  for (; i < n; ++i)
    mx = fmaxf(mx, toF32(x[i * stride]));
  for (int j = 0; j < kReduceLanes; ++j)
    mx = fmaxf(mx, lanes[j]);
  return mx;
}

/// Σ x_i over n contiguous f32 elements.
LOOM_HD inline float rowSum(const float *x, int64_t n) {
  float lanes[kReduceLanes] = {};
  int64_t i = 0;
  for (; i + kReduceLanes <= n; i += kReduceLanes)
    for (int j = 0; j < kReduceLanes; ++j)
      lanes[j] += x[i + j];
  float sum = 0.0f;
  for (; i < n; ++i)
    sum += x[i];
  for (int j = 0; j < kReduceLanes; ++j)
    sum += lanes[j];
  return sum;
}

/// Σ e^(x_i - shift) over n elements `stride` apart.
template <typename T>
LOOM_HD inline float rowSumExp(const T *x, int64_t n, int64_t stride,
                               float shift) {
  float lanes[kReduceLanes] = {};
  int64_t i = 0;
  if (stride == 1) {
    for (; i + kReduceLanes <= n; i += kReduceLanes)
      for (int j = 0; j < kReduceLanes; ++j)
        lanes[j] += fastExp(toF32(x[i + j]) - shift);
  } else {
    for (; i + kReduceLanes <= n; i += kReduceLanes)
      for (int j = 0; j < kReduceLanes; ++j)
        lanes[j] += fastExp(toF32(x[(i + j) * stride]) - shift);
  }
  float sum = 0.0f;
  for (; i < n; ++i)
    sum += fastExp(toF32(x[i * stride]) - shift);
  for (int j = 0; j < kReduceLanes; ++j)
    sum += lanes[j];
  return sum;
}

//===----------------------------------------------------------------------===//
// Matmul dimensions
//===----------------------------------------------------------------------===//

/// C[batch][m, n] = op(A)[m, k] · op(B)[k, n] for a loom matmul of A (rank
/// ra) and B (rank rb); B of rank 2 is one weight shared by the batch.
struct MatmulDims {
  int64_t batch, m, n, k;
};

LOOM_HD inline MatmulDims matmulDims(const int64_t *aShape, int ra,
                                     const int64_t *bShape, int rb,
                                     bool transposeA, bool transposeB) {
  MatmulDims d;
  d.m = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  d.k = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  d.n = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  d.batch = 1;
  for (int i = 0; i < ra - 2; ++i)
    d.batch *= aShape[i];
  return d;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

/// The softmax scale of an attention instruction: its `scale`, or
/// 1/sqrt(head dim) when it has none.
LOOM_HD inline float attentionScale(const LoomKernelAttrs &a, int64_t headDim) {
  const LoomAttrValue &scale = a.values[attr::Attention::scale];
  return scale.present
             ? static_cast<float>(scale.f)
             : static_cast<float>(1.0 / ::sqrt(static_cast<double>(headDim)));
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

LOOM_HD inline float sigmoid(float x) { return 1.0f / (1.0f + fastExp(-x)); }

/// gelu, approximate = none: 0.5 x (1 + erf(x / sqrt 2)).
LOOM_HD inline float geluErf(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/// gelu, approximate = tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
LOOM_HD inline float geluTanh(float x) {
  float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + fastTanh(inner));
}

/// x * sigmoid(x).
LOOM_HD inline float silu(float x) { return x / (1.0f + fastExp(-x)); }

/// silu(gate) * up.
LOOM_HD inline float swiglu(float gate, float up) { return silu(gate) * up; }

//===----------------------------------------------------------------------===//
// Element-wise ops
//
// One function per element-wise op of the op table (its TableGen's
// `Loom_LowersElementwise<opcode, "name">`), computing one element from f32
// inputs and the instruction's attributes. The CPU and CUDA backends build
// their kernels from these and nothing else.
//===----------------------------------------------------------------------===//

using KernelAttrs = LoomKernelAttrs;

LOOM_HD inline float add(float x, float y, const KernelAttrs &) {
  return x + y;
}
LOOM_HD inline float sub(float x, float y, const KernelAttrs &) {
  return x - y;
}
LOOM_HD inline float mul(float x, float y, const KernelAttrs &) {
  return x * y;
}
LOOM_HD inline float div(float x, float y, const KernelAttrs &) {
  return x / y;
}
LOOM_HD inline float swiglu(float gate, float up, const KernelAttrs &) {
  return swiglu(gate, up);
}
LOOM_HD inline float scale(float x, const KernelAttrs &a) {
  return x * static_cast<float>(a.values[attr::Scale::factor].f);
}
LOOM_HD inline float gelu(float x, const KernelAttrs &a) {
  bool tanhForm = a.values[attr::Gelu::approximate].i ==
                  static_cast<int64_t>(attr::GeluApproximation::tanh);
  return tanhForm ? geluTanh(x) : geluErf(x);
}
LOOM_HD inline float silu(float x, const KernelAttrs &) { return silu(x); }
LOOM_HD inline float neg(float x, const KernelAttrs &) { return -x; }
LOOM_HD inline float sqrt(float x, const KernelAttrs &) { return sqrtf(x); }
LOOM_HD inline float exp(float x, const KernelAttrs &) { return expf(x); }
LOOM_HD inline float log(float x, const KernelAttrs &) { return logf(x); }

/// d/dx gelu(x) · dy, in the form the forward used.
LOOM_HD inline float gelu_grad(float x, float dy, const KernelAttrs &a) {
  bool tanhForm = a.values[attr::GeluGrad::approximate].i ==
                  static_cast<int64_t>(attr::GeluApproximation::tanh);
  if (tanhForm) {
    constexpr float k = 0.79788456080286536f; // sqrt(2/pi)
    float t = fastTanh(k * (x + 0.044715f * x * x * x));
    float dInner = k * (1.0f + 3.0f * 0.044715f * x * x);
    return dy * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * dInner);
  }
  // 0.5 (1 + erf(x/sqrt 2)) + x · phi(x), phi the standard normal density.
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  float pdf = 0.39894228040143268f * fastExp(-0.5f * x * x);
  return dy * (cdf + x * pdf);
}

/// d/dx silu(x) · dy = s (1 + x (1 - s)) · dy with s = sigmoid(x).
LOOM_HD inline float silu_grad(float x, float dy, const KernelAttrs &) {
  float s = sigmoid(x);
  return dy * s * (1.0f + x * (1.0f - s));
}

//===----------------------------------------------------------------------===//
// Rows: normalization, softmax, loss
//===----------------------------------------------------------------------===//

/// y = x / sqrt(mean(x^2) + eps) * w over one row of n elements. y may be x.
template <typename T, typename W>
LOOM_HD inline void rmsnormRow(const T *x, const W *w, T *y, int64_t n,
                               float eps) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = toF32(x[i]);
    ss += v * v;
  }
  float r = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i)
    y[i] = fromF32<T>(toF32(x[i]) * r * toF32(w[i]));
}

/// y = (x - mean) / sqrt(var + eps) * w (+ b) over one row (biased variance).
/// `b` may be null. y may be x.
template <typename T, typename W>
LOOM_HD inline void layernormRow(const T *x, const W *w, const W *b, T *y,
                                 int64_t n, float eps) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    sum += toF32(x[i]);
  float mean = sum / static_cast<float>(n);
  float var = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float d = toF32(x[i]) - mean;
    var += d * d;
  }
  var /= static_cast<float>(n);
  float r = 1.0f / sqrtf(var + eps);
  for (int64_t i = 0; i < n; ++i) {
    float v = (toF32(x[i]) - mean) * r * toF32(w[i]);
    if (b)
      v += toF32(b[i]);
    y[i] = fromF32<T>(v);
  }
}

/// Max-subtracted softmax over n elements `stride` apart. y may be x.
template <typename T>
LOOM_HD inline void softmaxRow(const T *x, T *y, int64_t n, int64_t stride) {
  float mx = rowMax(x, n, stride);
  float inv = 1.0f / rowSumExp(x, n, stride, mx);
  for (int64_t i = 0; i < n; ++i)
    y[i * stride] = fromF32<T>(fastExp(toF32(x[i * stride]) - mx) * inv);
}

/// In-place softmax of f32 scores; entries past `valid` are set to 0 (the
/// causal mask). valid must be >= 1.
LOOM_HD inline void softmaxRowMasked(float *s, int64_t n, int64_t valid) {
  float mx = rowMax(s, valid, 1);
  for (int64_t i = 0; i < valid; ++i)
    s[i] = fastExp(s[i] - mx);
  float inv = 1.0f / rowSum(s, valid);
  for (int64_t i = 0; i < valid; ++i)
    s[i] *= inv;
  for (int64_t i = valid; i < n; ++i)
    s[i] = 0.0f;
}

/// The keys of a block that a query at position `query` sees (ring
/// attention's attention_block): all `keys`, or when causal those at
/// positions up to its own, the block's first key standing at `keyOffset`.
LOOM_HD inline int64_t visibleKeys(int64_t query, int64_t keyOffset,
                                   int64_t keys, bool causal) {
  if (!causal)
    return keys;
  int64_t v = query - keyOffset + 1;
  return v < 0 ? 0 : v > keys ? keys : v;
}

/// In-place softmax of a row of f32 scores against a block of n keys of
/// which the first `valid` are visible (the rest set to 0), returning the
/// row's log-sum-exp; a row that sees no key (valid == 0) becomes zeros and
/// gives −∞. The sum of exponentials runs in key order.
LOOM_HD inline float softmaxRowLse(float *s, int64_t n, int64_t valid) {
  if (valid <= 0) {
    for (int64_t j = 0; j < n; ++j)
      s[j] = 0.0f;
    return -INFINITY;
  }
  float mx = rowMax(s, valid, 1);
  float sum = 0.0f;
  for (int64_t j = 0; j < valid; ++j)
    sum += (s[j] = fastExp(s[j] - mx));
  float inv = 1.0f / sum;
  for (int64_t j = 0; j < valid; ++j)
    s[j] *= inv;
  for (int64_t j = valid; j < n; ++j)
    s[j] = 0.0f;
  return mx + logf(sum);
}

/// The probabilities of a row of f32 scores against a block of n keys from
/// the whole attention's log-sum-exp `lse` (attention_block_grad's P), in
/// place: e^(s_j − lse) for the first `valid` keys, 0 for the rest.
LOOM_HD inline void probRowFromLse(float *s, int64_t n, int64_t valid,
                                   float lse) {
  for (int64_t j = 0; j < valid; ++j)
    s[j] = fastExp(s[j] - lse);
  for (int64_t j = valid < 0 ? 0 : valid; j < n; ++j)
    s[j] = 0.0f;
}

/// The backward of rmsnormRow over one row: dx (may be dy), and x·r·dy
/// added to the f32 accumulator dw.
template <typename T, typename W>
LOOM_HD inline void rmsnormGradRow(const T *x, const W *w, const T *dy, T *dx,
                                   float *dw, int64_t n, float eps) {
  float ss = 0.0f, dot = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = toF32(x[i]);
    ss += v * v;
    dot += v * toF32(w[i]) * toF32(dy[i]);
  }
  float r = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  float c = r * r * r * dot / static_cast<float>(n);
  for (int64_t i = 0; i < n; ++i) {
    float v = toF32(x[i]), g = toF32(dy[i]);
    dw[i] += v * r * g;
    dx[i] = fromF32<T>(r * toF32(w[i]) * g - v * c);
  }
}

/// The backward of layernormRow over one row: dx (may be dy), and x̂·dy and
/// dy added to the f32 accumulators dw and db.
template <typename T, typename W>
LOOM_HD inline void layernormGradRow(const T *x, const W *w, const T *dy, T *dx,
                                     float *dw, float *db, int64_t n,
                                     float eps) {
  float fn = static_cast<float>(n);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    sum += toF32(x[i]);
  float mean = sum / fn, var = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float d = toF32(x[i]) - mean;
    var += d * d;
  }
  float r = 1.0f / sqrtf(var / fn + eps);
  float meanG = 0.0f, meanGx = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float g = toF32(w[i]) * toF32(dy[i]);
    meanG += g;
    meanGx += g * (toF32(x[i]) - mean) * r;
  }
  meanG /= fn;
  meanGx /= fn;
  for (int64_t i = 0; i < n; ++i) {
    float xhat = (toF32(x[i]) - mean) * r, d = toF32(dy[i]);
    dw[i] += xhat * d;
    db[i] += d;
    dx[i] = fromF32<T>(r * (toF32(w[i]) * d - meanG - xhat * meanGx));
  }
}

/// dx = y (dy - Σ y·dy) over n elements `stride` apart. dx may be y or dy.
template <typename T>
LOOM_HD inline void softmaxGradRow(const T *y, const T *dy, T *dx, int64_t n,
                                   int64_t stride) {
  float dot = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    dot += toF32(y[i * stride]) * toF32(dy[i * stride]);
  for (int64_t i = 0; i < n; ++i) {
    float v = toF32(y[i * stride]);
    dx[i * stride] = fromF32<T>(v * (toF32(dy[i * stride]) - dot));
  }
}

/// (softmax(row) - onehot(target)) · scale for one row of n logits.
template <typename T>
LOOM_HD inline void crossEntropyGradRow(const T *logits, T *grad, int64_t n,
                                        int64_t target, float scale) {
  float mx = rowMax(logits, n, 1);
  float inv = 1.0f / rowSumExp(logits, n, 1, mx);
  for (int64_t i = 0; i < n; ++i) {
    float p = fastExp(toF32(logits[i]) - mx) * inv;
    grad[i] = fromF32<T>((p - (i == target ? 1.0f : 0.0f)) * scale);
  }
}

/// The vocab-parallel row of cross_entropy: lse - row[t] when t (the target
/// less vocab_start) is one of these n columns, else 0 (another rank's).
template <typename T>
LOOM_HD inline float crossEntropyPieceRow(const T *logits, int64_t n, int64_t t,
                                          float lse) {
  return t >= 0 && t < n ? lse - toF32(logits[t]) : 0.0f;
}

/// The vocab-parallel row of cross_entropy_grad: (exp(row - lse) -
/// [i == t]) * scale, t the target less vocab_start (maybe not a column).
template <typename T>
LOOM_HD inline void crossEntropyGradPieceRow(const T *logits, T *grad,
                                             int64_t n, int64_t t, float lse,
                                             float scale) {
  for (int64_t i = 0; i < n; ++i) {
    float p = expf(toF32(logits[i]) - lse);
    grad[i] = fromF32<T>((p - (i == t ? 1.0f : 0.0f)) * scale);
  }
}

/// logsumexp(row) - row[target] for one row of n logits.
template <typename T>
LOOM_HD inline float crossEntropyRow(const T *logits, int64_t n,
                                     int64_t target) {
  float mx = rowMax(logits, n, 1);
  float sum = rowSumExp(logits, n, 1, mx);
  return logf(sum) + mx - toF32(logits[target]);
}

//===----------------------------------------------------------------------===//
// RoPE (rotate-half form)
//===----------------------------------------------------------------------===//

/// cos/sin of the angle (pos) * theta^(-2i/d) for pair i of a head of dim d.
LOOM_HD inline void ropeAngle(int64_t pos, int64_t i, int64_t d, double theta,
                              float &c, float &s) {
  double f = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(d));
  double a = static_cast<double>(pos) * f;
  c = static_cast<float>(cos(a));
  s = static_cast<float>(sin(a));
}

/// Rotates one head vector of d elements at position pos (by the opposite
/// angle when `inverse`). y may be x.
template <typename T>
LOOM_HD inline void ropeHead(const T *x, T *y, int64_t d, int64_t pos,
                             double theta, bool inverse = false) {
  int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    float c, s;
    ropeAngle(pos, i, d, theta, c, s);
    if (inverse)
      s = -s;
    float x1 = toF32(x[i]), x2 = toF32(x[i + h]);
    y[i] = fromF32<T>(x1 * c - x2 * s);
    y[i + h] = fromF32<T>(x2 * c + x1 * s);
  }
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

/// The per-step constants of one AdamW update, each computed in double from
/// the hyperparameters and rounded to f32 once, as PyTorch does with its
/// Python-float scalars (1 - beta2 computed from beta2 rounded to f32 would
/// be 1.3e-5 off for beta2 = 0.999).
struct AdamWParams {
  float beta1, beta2, oneMinusBeta1, oneMinusBeta2, eps;
  float decay;      ///< 1 - lr·weight_decay
  float stepSize;   ///< lr / (1 - beta1^t)
  float invSqrtBc2; ///< 1 / sqrt(1 - beta2^t)
  float gradScale;  ///< the clipping coefficient (1 without clipping)
};

/// Constants for step t >= 1; `gradNorm` < 0 means no clipping.
LOOM_HD inline AdamWParams adamwParams(double lr, double beta1, double beta2,
                                       double eps, double weightDecay,
                                       int64_t step, double maxGradNorm,
                                       double gradNorm) {
  double t = static_cast<double>(step);
  AdamWParams p;
  p.beta1 = static_cast<float>(beta1);
  p.beta2 = static_cast<float>(beta2);
  p.oneMinusBeta1 = static_cast<float>(1.0 - beta1);
  p.oneMinusBeta2 = static_cast<float>(1.0 - beta2);
  p.eps = static_cast<float>(eps);
  p.decay = static_cast<float>(1.0 - lr * weightDecay);
  p.stepSize = static_cast<float>(lr / (1.0 - pow(beta1, t)));
  p.invSqrtBc2 = static_cast<float>(1.0 / ::sqrt(1.0 - pow(beta2, t)));
  // PyTorch's clip_grad_norm_: max_norm / (norm + 1e-6), at most 1.
  double scale = 1.0;
  if (maxGradNorm > 0.0 && gradNorm >= 0.0)
    scale = maxGradNorm / (gradNorm + 1e-6);
  p.gradScale = static_cast<float>(scale < 1.0 ? scale : 1.0);
  return p;
}

/// PyTorch AdamW on one element: decoupled weight decay, then the moments,
/// then the bias-corrected step.
LOOM_HD inline void adamwUpdate(float &p, float g, float &m, float &v,
                                const AdamWParams &a) {
  g *= a.gradScale;
  p *= a.decay;
  m = a.beta1 * m + a.oneMinusBeta1 * g;
  v = a.beta2 * v + a.oneMinusBeta2 * g * g;
  p -= a.stepSize * m / (sqrtf(v) * a.invSqrtBc2 + a.eps);
}

//===----------------------------------------------------------------------===//
// Mixture of experts
//===----------------------------------------------------------------------===//

/// Router for one token: E logits -> k weights (descending) and indices.
/// `scratch` holds E floats. Ties pick the lower expert index first.
template <typename T>
LOOM_HD inline void routerRow(const T *logits, int64_t e, int64_t k,
                              bool softmaxBeforeTopk, bool normalize,
                              float *scratch, T *weights, int32_t *indices) {
  for (int64_t j = 0; j < e; ++j)
    scratch[j] = toF32(logits[j]);
  if (softmaxBeforeTopk)
    softmaxRow(scratch, scratch, e, 1);
  // Selection: k passes, each taking the largest remaining (first on ties).
  float picked[64];
  float *vals = k <= 64 ? picked : nullptr;
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    for (int64_t x = 0; x < e; ++x) {
      bool used = false;
      for (int64_t q = 0; q < j; ++q)
        used |= indices[q] == x;
      if (used)
        continue;
      if (best < 0 || scratch[x] > scratch[best])
        best = x;
    }
    indices[j] = static_cast<int32_t>(best);
    if (vals)
      vals[j] = scratch[best];
  }
  // Weights from the selected values.
  float sum = 0.0f, mx = -INFINITY;
  for (int64_t j = 0; j < k; ++j) {
    float v = vals ? vals[j] : scratch[indices[j]];
    mx = fmaxf(mx, v);
    sum += v;
  }
  if (softmaxBeforeTopk) {
    for (int64_t j = 0; j < k; ++j) {
      float v = vals ? vals[j] : scratch[indices[j]];
      weights[j] = fromF32<T>(normalize ? v / sum : v);
    }
  } else {
    float es = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      es += fastExp((vals ? vals[j] : scratch[indices[j]]) - mx);
    for (int64_t j = 0; j < k; ++j)
      weights[j] =
          fromF32<T>(fastExp((vals ? vals[j] : scratch[indices[j]]) - mx) / es);
  }
}

/// The backward of routerRow for one token: dlogits (E values) from the
/// cotangents dw of its k weights at the chosen `indices`. `scratch` holds
/// E floats.
template <typename T>
LOOM_HD inline void routerGradRow(const T *logits, const int32_t *indices,
                                  const T *dw, T *dlogits, int64_t e, int64_t k,
                                  bool softmaxBeforeTopk, bool normalize,
                                  float *scratch) {
  for (int64_t j = 0; j < e; ++j) {
    scratch[j] = toF32(logits[j]);
    dlogits[j] = fromF32<T>(0.0f);
  }
  if (softmaxBeforeTopk) {
    softmaxRow(scratch, scratch, e, 1); // p
    float s = 0.0f, wdw = 0.0f;
    for (int64_t j = 0; j < k; ++j)
      s += scratch[indices[j]];
    // w_j = p_j (/ s): the cotangent of p at the chosen experts.
    if (normalize)
      for (int64_t j = 0; j < k; ++j)
        wdw += scratch[indices[j]] / s * toF32(dw[j]);
    float pdp = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      float dp = normalize ? (toF32(dw[j]) - wdw) / s : toF32(dw[j]);
      pdp += scratch[indices[j]] * dp;
    }
    // dlogits = p (dp - Σ p·dp), dp zero off the chosen experts.
    for (int64_t x = 0; x < e; ++x) {
      float dp = 0.0f;
      for (int64_t j = 0; j < k; ++j)
        if (indices[j] == x)
          dp = normalize ? (toF32(dw[j]) - wdw) / s : toF32(dw[j]);
      dlogits[x] = fromF32<T>(scratch[x] * (dp - pdp));
    }
    return;
  }
  // Softmax over the chosen logits: dlogit_j = w_j (dw_j - Σ w·dw).
  float mx = -INFINITY;
  for (int64_t j = 0; j < k; ++j)
    mx = fmaxf(mx, scratch[indices[j]]);
  float es = 0.0f;
  for (int64_t j = 0; j < k; ++j)
    es += fastExp(scratch[indices[j]] - mx);
  float wdw = 0.0f;
  for (int64_t j = 0; j < k; ++j)
    wdw += fastExp(scratch[indices[j]] - mx) / es * toF32(dw[j]);
  for (int64_t j = 0; j < k; ++j) {
    float w = fastExp(scratch[indices[j]] - mx) / es;
    dlogits[indices[j]] = fromF32<T>(w * (toF32(dw[j]) - wdw));
  }
}

/// The slot rule of dispatch, combine and combine_grad for one (token,
/// choice) of token group `group` (of `groups`) routed to `expert` (in
/// [0, total_experts)), the choice number `count` of that expert in token
/// order, then choice order, within its group: its row among the `size`
/// experts from `start` the op holds, `cap` rows each, of which the group
/// has cap / groups (local expert · cap + group · cap / groups + count),
/// or -1 past the group's capacity or for an expert outside the block.
LOOM_HD inline int64_t expertSlot(int64_t expert, int64_t count, int64_t cap,
                                  int64_t groups, int64_t group, int64_t start,
                                  int64_t size) {
  int64_t local = expert - start, groupCap = cap / groups;
  return count < groupCap && local >= 0 && local < size
             ? local * cap + group * groupCap + count
             : -1;
}

} // namespace loom::runtime::math

#endif // LOOM_RUNTIME_KERNELMATH_H
