//===- CpuElementwise.cpp - CPU element-wise and row kernels --------------===//
//
// fill, copy/convert, the element-wise ops of the op table (one kernel
// template over their KernelMath.h function), rmsnorm, layernorm, softmax,
// rope and adamw. Loops over the storage type compute in f32 through
// KernelMath.h; for f32 storage they vectorize. Elements and rows are split
// across threads (CpuParallel.h).
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "CpuParallel.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

namespace loom::runtime::cpu {

void copyBytes(void *dst, const void *src, size_t bytes) {
  char *d = static_cast<char *>(dst);
  const char *s = static_cast<const char *>(src);
  if (d == s || bytes == 0)
    return;
  if (d < s + bytes && s < d + bytes) {
    std::memmove(d, s, bytes);
    return;
  }
  constexpr int64_t kLine = 64;
  int64_t lines = static_cast<int64_t>((bytes + kLine - 1) / kLine);
  parallelRanges(lines, kLine / 4, [&](int64_t b, int64_t e) {
    size_t from = b * kLine, to = std::min<size_t>(e * kLine, bytes);
    std::memcpy(d + from, s + from, to - from);
  });
}

void toF32Buffer(const void *src, DType t, float *dst, int64_t n) {
  const uint16_t *s = static_cast<const uint16_t *>(src);
  switch (t) {
  case DType::F32:
    copyBytes(dst, src, n * sizeof(float));
    return;
  case DType::BF16:
    parallelRanges(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        dst[i] = bf16ToF32(s[i]);
    });
    return;
  case DType::F16:
    parallelRanges(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        dst[i] = f16ToF32(s[i]);
    });
    return;
  default:
    return;
  }
}

void fromF32Buffer(const float *src, DType t, void *dst, int64_t n) {
  uint16_t *d = static_cast<uint16_t *>(dst);
  switch (t) {
  case DType::F32:
    copyBytes(dst, src, n * sizeof(float));
    return;
  case DType::BF16:
    parallelRanges(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        d[i] = f32ToBf16(src[i]);
    });
    return;
  case DType::F16:
    parallelRanges(n, 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        d[i] = f32ToF16(src[i]);
    });
    return;
  default:
    return;
  }
}

namespace {

//===- fill / copy --------------------------------------------------------===//

template <typename T> void fillK(const OpCall &c, KernelContext &) {
  double value = attrOf(c, attr::Fill::value).f;
  T v;
  if constexpr (std::is_integral_v<T>)
    v = static_cast<T>(value);
  else
    v = fromF32<T>(static_cast<float>(value));
  T *y = c.out[0].as<T>();
  parallelRanges(c.out[0].numel, 1,
                 [&](int64_t b, int64_t e) { std::fill(y + b, y + e, v); });
}

void memcpyK(const OpCall &c, KernelContext &) {
  copyBytes(c.out[0].data, c.in[0].data, c.out[0].bytes);
}

template <typename B, typename A> B convertElem(A a) {
  constexpr bool aInt = std::is_integral_v<A>, bInt = std::is_integral_v<B>;
  if constexpr (aInt && bInt)
    return static_cast<B>(a);
  else if constexpr (aInt)
    return fromF32<B>(static_cast<float>(a));
  else if constexpr (bInt)
    return static_cast<B>(toF32(a));
  else
    return fromF32<B>(toF32(a));
}

template <typename A, typename B>
void convertK(const OpCall &c, KernelContext &) {
  const A *x = c.in[0].as<const A>();
  B *y = c.out[0].as<B>();
  parallelRanges(c.out[0].numel, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      y[i] = convertElem<B>(x[i]);
  });
}

template <typename A> KernelFn pickConvertTo(DType b) {
  switch (b) {
  case DType::F32:
    return &convertK<A, float>;
  case DType::BF16:
    return &convertK<A, bf16_t>;
  case DType::F16:
    return &convertK<A, f16_t>;
  case DType::I32:
    return &convertK<A, int32_t>;
  case DType::I64:
    return &convertK<A, int64_t>;
  }
  return nullptr;
}

KernelFn pickConvert(DType a, DType b) {
  switch (a) {
  case DType::F32:
    return pickConvertTo<float>(b);
  case DType::BF16:
    return pickConvertTo<bf16_t>(b);
  case DType::F16:
    return pickConvertTo<f16_t>(b);
  case DType::I32:
    return pickConvertTo<int32_t>(b);
  case DType::I64:
    return pickConvertTo<int64_t>(b);
  }
  return nullptr;
}

//===- element-wise ops ---------------------------------------------------===//

/// y = Math(x[, z], attrs) over n elements. Stores to y (float or 16-bit
/// storage) cannot alias the attributes' doubles and integers, so the
/// compiler hoists their reads out of the loop.
template <typename T, typename Math, int Arity>
inline __attribute__((always_inline)) void
elementwiseLoop(const T *x, const T *z, T *y, int64_t n,
                const LoomKernelAttrs &attrs) {
  if constexpr (Arity == 1) {
    for (int64_t i = 0; i < n; ++i)
      y[i] = fromF32<T>(Math::apply(toF32(x[i]), attrs));
  } else {
    for (int64_t i = 0; i < n; ++i)
      y[i] = fromF32<T>(Math::apply(toF32(x[i]), toF32(z[i]), attrs));
  }
}

/// The loop over every element, split across threads; f32 through F32, the
/// loop compiled for each vector width.
template <typename T, typename Math, int Arity,
          void (*F32)(const float *, const float *, float *, int64_t,
                      const LoomKernelAttrs &)>
void elementwiseK(const OpCall &c, KernelContext &) {
  const LoomKernelAttrs &attrs = c.attrs;
  const T *x = c.in[0].as<const T>();
  const T *z = Arity == 1 ? nullptr : c.in[1].as<const T>();
  T *y = c.out[0].as<T>();
  parallelRanges(c.out[0].numel, 1, [&](int64_t b, int64_t e) {
    if constexpr (std::is_same_v<T, float>)
      F32(x + b, z ? z + b : nullptr, y + b, e - b, attrs);
    else
      elementwiseLoop<T, Math, Arity>(x + b, z ? z + b : nullptr, y + b, e - b,
                                      attrs);
  });
}

// One functor per element-wise op of the table, calling its math.
#define LOOM_ELEMENTWISE_OP(NAME, ARITY, FN)                                   \
  struct NAME##Math {                                                          \
    template <typename... Args> static float apply(Args... args) {             \
      return math::FN(args...);                                                \
    }                                                                          \
  };                                                                           \
  LOOM_CPU_CLONES void NAME##F32(const float *x, const float *z, float *y,     \
                                 int64_t n, const LoomKernelAttrs &attrs) {    \
    elementwiseLoop<float, NAME##Math, ARITY>(x, z, y, n, attrs);              \
  }                                                                            \
  template <typename T> void NAME##K(const OpCall &c, KernelContext &k) {      \
    elementwiseK<T, NAME##Math, ARITY, &NAME##F32>(c, k);                      \
  }
#include "loom/runtime/OpTable.inc"

//===- rows ---------------------------------------------------------------===//

template <typename T> void rmsnormK(const OpCall &c, KernelContext &) {
  int64_t h = c.in[0].dim(-1);
  int64_t rows = h ? c.in[0].numel / h : 0;
  const T *x = c.in[0].as<const T>();
  const T *w = c.in[1].as<const T>();
  T *y = c.out[0].as<T>();
  float eps = static_cast<float>(attrOf(c, attr::RmsNorm::epsilon).f);
  parallelFor(rows, 3 * h, [&](int64_t r) {
    math::rmsnormRow(x + r * h, w, y + r * h, h, eps);
  });
}

template <typename T> void layernormK(const OpCall &c, KernelContext &) {
  int64_t h = c.in[0].dim(-1);
  int64_t rows = h ? c.in[0].numel / h : 0;
  const T *x = c.in[0].as<const T>();
  const T *w = c.in[1].as<const T>();
  const T *b = c.in.size() > 2 ? c.in[2].as<const T>() : nullptr;
  T *y = c.out[0].as<T>();
  float eps = static_cast<float>(attrOf(c, attr::LayerNorm::epsilon).f);
  parallelFor(rows, 4 * h, [&](int64_t r) {
    math::layernormRow(x + r * h, w, b, y + r * h, h, eps);
  });
}

/// math::softmaxRow over `rows` rows of n contiguous f32.
LOOM_CPU_CLONES void softmaxRowsF32(const float *x, float *y, int64_t rows,
                                    int64_t n) {
  for (int64_t r = 0; r < rows; ++r)
    math::softmaxRow(x + r * n, y + r * n, n, int64_t(1));
}

template <typename T> void softmaxK(const OpCall &c, KernelContext &) {
  const TensorRef &t = c.in[0];
  int a = static_cast<int>(attrOf(c, attr::Softmax::axis).i);
  int64_t outer = 1, inner = 1, n = t.shape[a];
  for (int i = 0; i < a; ++i)
    outer *= t.shape[i];
  for (int i = a + 1; i < t.rank; ++i)
    inner *= t.shape[i];
  if (n == 0)
    return;
  const T *x = t.as<const T>();
  T *y = c.out[0].as<T>();
  if constexpr (std::is_same_v<T, float>) {
    if (inner == 1) {
      parallelRanges(outer, 4 * n, [&](int64_t b, int64_t e) {
        softmaxRowsF32(x + b * n, y + b * n, e - b, n);
      });
      return;
    }
  }
  parallelFor(outer * inner, 4 * n, [&](int64_t r) {
    int64_t base = r / inner * n * inner + r % inner;
    math::softmaxRow(x + base, y + base, n, inner);
  });
}

/// math::ropeHead with the angles of its position precomputed (cs[i] and
/// sn[i] for pair i): the same values, computed once per position instead of
/// once per head.
template <typename T>
void ropeHeadCached(const T *x, T *y, int64_t d, const float *cs,
                    const float *sn, bool inverse) {
  int64_t h = d / 2;
  for (int64_t i = 0; i < h; ++i) {
    float co = cs[i], si = inverse ? -sn[i] : sn[i];
    float x1 = toF32(x[i]), x2 = toF32(x[i + h]);
    y[i] = fromF32<T>(x1 * co - x2 * si);
    y[i + h] = fromF32<T>(x2 * co + x1 * si);
  }
}

/// cos and sin of every (position, pair) from math::ropeAngle (pow, cos
/// and sin in double: 16 K of each for 512 positions of 64-wide heads).
/// Every rope of a step (q and k, forward and backward, every layer) has
/// the same table, so each executor thread keeps the last one it computed.
struct RopeTable {
  int64_t s = -1, d = -1, offset = 0;
  double theta = 0.0;
  std::vector<float> cs, sn;
};

const RopeTable &ropeTable(int64_t s, int64_t d, int64_t offset, double theta) {
  thread_local RopeTable t;
  if (t.s == s && t.d == d && t.offset == offset && t.theta == theta)
    return t;
  int64_t half = d / 2;
  t.s = -1;
  t.cs.resize(s * half);
  t.sn.resize(s * half);
  float *cs = t.cs.data(), *sn = t.sn.data();
  parallelFor(s, 16 * half, [&](int64_t is) {
    for (int64_t i = 0; i < half; ++i)
      math::ropeAngle(is + offset, i, d, theta, cs[is * half + i],
                      sn[is * half + i]);
  });
  t.s = s;
  t.d = d;
  t.offset = offset;
  t.theta = theta;
  return t;
}

template <typename T> void ropeK(const OpCall &c, KernelContext &) {
  const TensorRef &t = c.in[0];
  int64_t b = t.shape[0], s = t.shape[1], nh = t.shape[2], d = t.shape[3];
  int64_t half = d / 2;
  const T *x = t.as<const T>();
  T *y = c.out[0].as<T>();
  int64_t offset = attrOf(c, attr::Rope::position_offset).i;
  double theta = attrOf(c, attr::Rope::theta).f;
  bool inverse = attrOf(c, attr::Rope::inverse).i;
  const RopeTable &table = ropeTable(s, d, offset, theta);
  const float *cs = table.cs.data(), *sn = table.sn.data();
  parallelFor(b * s, nh * d, [&](int64_t row) {
    int64_t is = row % s;
    for (int64_t ih = 0; ih < nh; ++ih) {
      int64_t off = (row * nh + ih) * d;
      ropeHeadCached(x + off, y + off, d, cs + is * half, sn + is * half,
                     inverse);
    }
  });
}

//===- adamw --------------------------------------------------------------===//

/// math::adamwUpdate over n f32 elements in place: p, m and v are read and
/// written, g only read; no two of them share any byte.
LOOM_CPU_CLONES void adamwInPlaceF32(float *__restrict p,
                                     const float *__restrict g,
                                     float *__restrict m, float *__restrict v,
                                     int64_t n, math::AdamWParams a) {
  for (int64_t i = 0; i < n; ++i)
    math::adamwUpdate(p[i], g[i], m[i], v[i], a);
}

/// Whether [a, a + bytes) and [b, b + bytes) share a byte.
bool overlap(const void *a, const void *b, size_t bytes) {
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return x < y + bytes && y < x + bytes;
}

void adamwK(const OpCall &c, KernelContext &) {
  int64_t step = loadIndex(c.in[4], 0);
  if (step < 1)
    throw KernelError("adamw step must be >= 1, got " + std::to_string(step));
  // The optional seventh operand is the global gradient norm to clip by.
  double gradNorm = c.in.size() > 6 ? *c.in[6].as<const float>() : -1.0;
  math::AdamWParams a = math::adamwParams(
      *c.in[5].as<const float>(), attrOf(c, attr::AdamW::beta1).f,
      attrOf(c, attr::AdamW::beta2).f, attrOf(c, attr::AdamW::epsilon).f,
      attrOf(c, attr::AdamW::weight_decay).f, step,
      attrOf(c, attr::AdamW::max_grad_norm).f, gradNorm);
  int64_t n = c.in[0].numel;
  const TensorRef &p = c.in[0], &g = c.in[1], &m = c.in[2], &v = c.in[3];
  const TensorRef &po = c.out[0], &mo = c.out[1], &vo = c.out[2];
  bool allF32 = p.dtype == DType::F32 && g.dtype == DType::F32 &&
                m.dtype == DType::F32 && v.dtype == DType::F32;
  if (allF32) {
    const float *pi = p.as<const float>(), *gi = g.as<const float>(),
                *mi = m.as<const float>(), *vi = v.as<const float>();
    float *pw = po.as<float>(), *mw = mo.as<float>(), *vw = vo.as<float>();
    size_t bytes = n * sizeof(float);
    if (!overlap(gi, pw, bytes) && !overlap(gi, mw, bytes) &&
        !overlap(gi, vw, bytes)) {
      // The results are the state (in place) or do not overlap it.
      copyBytes(pw, pi, bytes);
      copyBytes(mw, mi, bytes);
      copyBytes(vw, vi, bytes);
      parallelRanges(n, 4, [&](int64_t b, int64_t e) {
        adamwInPlaceF32(pw + b, gi + b, mw + b, vw + b, e - b, a);
      });
      return;
    }
    parallelRanges(n, 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float pp = pi[i], mm = mi[i], vv = vi[i];
        math::adamwUpdate(pp, gi[i], mm, vv, a);
        pw[i] = pp;
        mw[i] = mm;
        vw[i] = vv;
      }
    });
    return;
  }
  constexpr int64_t kChunk = 512;
  parallelRanges(
      (n + kChunk - 1) / kChunk, 4 * kChunk, [&](int64_t b, int64_t e) {
        float bp[kChunk], bg[kChunk], bm[kChunk], bv[kChunk];
        for (int64_t s = b * kChunk; s < std::min(n, e * kChunk); s += kChunk) {
          int64_t len = std::min(kChunk, n - s);
          auto at = [s](const TensorRef &t) {
            return static_cast<const char *>(t.data) + s * dtypeSize(t.dtype);
          };
          auto atW = [s](const TensorRef &t) {
            return static_cast<char *>(t.data) + s * dtypeSize(t.dtype);
          };
          toF32Buffer(at(p), p.dtype, bp, len);
          toF32Buffer(at(g), g.dtype, bg, len);
          toF32Buffer(at(m), m.dtype, bm, len);
          toF32Buffer(at(v), v.dtype, bv, len);
          for (int64_t i = 0; i < len; ++i)
            math::adamwUpdate(bp[i], bg[i], bm[i], bv[i], a);
          fromF32Buffer(bp, po.dtype, atW(po), len);
          fromF32Buffer(bm, mo.dtype, atW(mo), len);
          fromF32Buffer(bv, vo.dtype, atW(vo), len);
        }
      });
}

} // namespace

bool selectElementwise(OpCall &c) {
  DType t = c.out.empty() ? DType::F32 : c.out[0].dtype;
  switch (c.op) {
  case Opcode::Fill:
    switch (t) {
    case DType::I32:
      c.kernel = &fillK<int32_t>;
      break;
    case DType::I64:
      c.kernel = &fillK<int64_t>;
      break;
    default:
      c.kernel = LOOM_PICK_FLOAT(fillK, t);
    }
    return true;
  case Opcode::Copy:
  case Opcode::Convert:
    c.kernel = c.in[0].dtype == t ? &memcpyK : pickConvert(c.in[0].dtype, t);
    return true;
#define LOOM_ELEMENTWISE_OP(NAME, ARITY, FN)                                   \
  case Opcode::NAME:                                                           \
    c.kernel = LOOM_PICK_FLOAT(NAME##K, t);                                    \
    return true;
#include "loom/runtime/OpTable.inc"
  case Opcode::RmsNorm:
    c.kernel = LOOM_PICK_FLOAT(rmsnormK, t);
    return true;
  case Opcode::LayerNorm:
    c.kernel = LOOM_PICK_FLOAT(layernormK, t);
    return true;
  case Opcode::Softmax:
    c.kernel = LOOM_PICK_FLOAT(softmaxK, t);
    return true;
  case Opcode::Rope:
    c.kernel = LOOM_PICK_FLOAT(ropeK, t);
    return true;
  case Opcode::AdamW:
    c.kernel = &adamwK;
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
