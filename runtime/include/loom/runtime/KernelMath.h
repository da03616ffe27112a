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

#include "loom/runtime/DType.h"

#include <cmath>
#include <cstdint>

namespace loom::runtime::math {

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

LOOM_HD inline float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/// gelu, approximate = none: 0.5 x (1 + erf(x / sqrt 2)).
LOOM_HD inline float geluErf(float x) {
  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/// gelu, approximate = tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
LOOM_HD inline float geluTanh(float x) {
  float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
  return 0.5f * x * (1.0f + tanhf(inner));
}

/// x * sigmoid(x).
LOOM_HD inline float silu(float x) { return x / (1.0f + expf(-x)); }

/// silu(gate) * up.
LOOM_HD inline float swiglu(float gate, float up) { return silu(gate) * up; }

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
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    mx = fmaxf(mx, toF32(x[i * stride]));
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    sum += expf(toF32(x[i * stride]) - mx);
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i)
    y[i * stride] = fromF32<T>(expf(toF32(x[i * stride]) - mx) * inv);
}

/// In-place softmax of f32 scores; entries past `valid` are set to 0 (the
/// causal mask). valid must be >= 1.
LOOM_HD inline void softmaxRowMasked(float *s, int64_t n, int64_t valid) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < valid; ++i)
    mx = fmaxf(mx, s[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < valid; ++i) {
    s[i] = expf(s[i] - mx);
    sum += s[i];
  }
  float inv = 1.0f / sum;
  for (int64_t i = 0; i < valid; ++i)
    s[i] *= inv;
  for (int64_t i = valid; i < n; ++i)
    s[i] = 0.0f;
}

/// logsumexp(row) - row[target] for one row of n logits.
template <typename T>
LOOM_HD inline float crossEntropyRow(const T *logits, int64_t n,
                                     int64_t target) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    mx = fmaxf(mx, toF32(logits[i]));
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i)
    sum += expf(toF32(logits[i]) - mx);
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

/// Rotates one head vector of d elements at position pos. y may be x.
template <typename T>
LOOM_HD inline void ropeHead(const T *x, T *y, int64_t d, int64_t pos,
                             double theta) {
  int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    float c, s;
    ropeAngle(pos, i, d, theta, c, s);
    float x1 = toF32(x[i]), x2 = toF32(x[i + h]);
    y[i] = fromF32<T>(x1 * c - x2 * s);
    y[i + h] = fromF32<T>(x2 * c + x1 * s);
  }
}

//===----------------------------------------------------------------------===//
// AdamW
//===----------------------------------------------------------------------===//

struct AdamWParams {
  float lr, beta1, beta2, eps, weightDecay;
  float bc1, bc2; ///< 1 - beta1^t, 1 - beta2^t
};

/// Bias corrections for step t >= 1, computed in double.
LOOM_HD inline AdamWParams adamwParams(float lr, float beta1, float beta2,
                                       float eps, float weightDecay,
                                       int64_t step) {
  AdamWParams p{lr, beta1, beta2, eps, weightDecay, 0, 0};
  p.bc1 = static_cast<float>(1.0 - pow(static_cast<double>(beta1),
                                       static_cast<double>(step)));
  p.bc2 = static_cast<float>(1.0 - pow(static_cast<double>(beta2),
                                       static_cast<double>(step)));
  return p;
}

/// PyTorch AdamW on one element: decoupled weight decay, then the moments,
/// then the bias-corrected step.
LOOM_HD inline void adamwUpdate(float &p, float g, float &m, float &v,
                                const AdamWParams &a) {
  p *= 1.0f - a.lr * a.weightDecay;
  m = a.beta1 * m + (1.0f - a.beta1) * g;
  v = a.beta2 * v + (1.0f - a.beta2) * g * g;
  p -= a.lr * (m / a.bc1) / (sqrtf(v / a.bc2) + a.eps);
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
      es += expf((vals ? vals[j] : scratch[indices[j]]) - mx);
    for (int64_t j = 0; j < k; ++j)
      weights[j] =
          fromF32<T>(expf((vals ? vals[j] : scratch[indices[j]]) - mx) / es);
  }
}

} // namespace loom::runtime::math

#endif // LOOM_RUNTIME_KERNELMATH_H
