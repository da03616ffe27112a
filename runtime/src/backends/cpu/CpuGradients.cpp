//===- CpuGradients.cpp - CPU kernels of the backward-pass ops ------------===//
//
// rmsnorm_grad, layernorm_grad, softmax_grad, cross_entropy_grad,
// embedding_grad, router_grad and combine_grad (attention_grad is with the
// other BLAS kernels in CpuLinalg.cpp; the element-wise gradients come from
// the op table). Row math is KernelMath.h's, shared with CUDA. Sums over
// rows (weight gradients, embedding rows) accumulate in f32 in a fixed
// order, so results are deterministic.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cstring>

namespace loom::runtime::cpu {
namespace {

[[noreturn]] void outOfRange(const char *what, int64_t v, int64_t pos,
                             int64_t limit) {
  throw KernelError(std::string(what) + " " + std::to_string(v) +
                    " at position " + std::to_string(pos) + " is outside [0, " +
                    std::to_string(limit) + ")");
}

/// Rows of `h` elements in a tensor.
int64_t rowsOf(const TensorRef &t, int64_t h) { return h ? t.numel / h : 0; }

template <typename T> void rmsnormGradK(const OpCall &c, KernelContext &ctx) {
  int64_t h = c.in[0].dim(-1), rows = rowsOf(c.in[0], h);
  const T *x = c.in[0].as<const T>(), *w = c.in[1].as<const T>();
  const T *dy = c.in[2].as<const T>();
  T *dx = c.out[0].as<T>();
  float *dw = static_cast<float *>(ctx.scratch);
  std::fill(dw, dw + h, 0.0f);
  float eps = static_cast<float>(attrOf(c, attr::RmsNormGrad::epsilon).f);
  for (int64_t r = 0; r < rows; ++r)
    math::rmsnormGradRow(x + r * h, w, dy + r * h, dx + r * h, dw, h, eps);
  fromF32Buffer(dw, c.out[1].dtype, c.out[1].data, h);
}

template <typename T> void layernormGradK(const OpCall &c, KernelContext &ctx) {
  int64_t h = c.in[0].dim(-1), rows = rowsOf(c.in[0], h);
  const T *x = c.in[0].as<const T>(), *w = c.in[1].as<const T>();
  const T *dy = c.in[2].as<const T>();
  T *dx = c.out[0].as<T>();
  float *dw = static_cast<float *>(ctx.scratch), *db = dw + h;
  std::fill(dw, dw + 2 * h, 0.0f);
  float eps = static_cast<float>(attrOf(c, attr::LayerNormGrad::epsilon).f);
  for (int64_t r = 0; r < rows; ++r)
    math::layernormGradRow(x + r * h, w, dy + r * h, dx + r * h, dw, db, h,
                           eps);
  fromF32Buffer(dw, c.out[1].dtype, c.out[1].data, h);
  fromF32Buffer(db, c.out[2].dtype, c.out[2].data, h);
}

template <typename T> void softmaxGradK(const OpCall &c, KernelContext &) {
  const TensorRef &t = c.in[0];
  int a = static_cast<int>(attrOf(c, attr::SoftmaxGrad::axis).i);
  int64_t outer = 1, inner = 1, n = t.shape[a];
  for (int i = 0; i < a; ++i)
    outer *= t.shape[i];
  for (int i = a + 1; i < t.rank; ++i)
    inner *= t.shape[i];
  const T *y = t.as<const T>(), *dy = c.in[1].as<const T>();
  T *dx = c.out[0].as<T>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      int64_t base = o * n * inner + j;
      math::softmaxGradRow(y + base, dy + base, dx + base, n, inner);
    }
}

template <typename T> void crossEntropyGradK(const OpCall &c, KernelContext &) {
  const TensorRef &logits = c.in[0], &targets = c.in[1];
  int64_t v = logits.dim(-1), n = targets.numel;
  // The mean over n positions: each row's cotangent is dL/n.
  float scale = n ? *c.in[2].as<const float>() / static_cast<float>(n) : 0.0f;
  const T *l = logits.as<const T>();
  T *g = c.out[0].as<T>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = loadIndex(targets, i);
    if (t < 0 || t >= v)
      outOfRange("cross_entropy target", t, i, v);
    math::crossEntropyGradRow(l + i * v, g + i * v, v, t, scale);
  }
}

void embeddingGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &dy = c.in[0], &ids = c.in[1], &table = c.out[0];
  int64_t vocab = table.shape[0], h = table.shape[1];
  // f32 rows summed in position order, then stored in the table's type.
  float *acc = static_cast<float *>(ctx.scratch);
  float *row = acc + table.numel;
  std::fill(acc, acc + table.numel, 0.0f);
  size_t rowBytes = h * dtypeSize(dy.dtype);
  const char *src = static_cast<const char *>(dy.data);
  for (int64_t i = 0; i < ids.numel; ++i) {
    int64_t id = loadIndex(ids, i);
    if (id < 0 || id >= vocab)
      outOfRange("embedding id", id, i, vocab);
    toF32Buffer(src + i * rowBytes, dy.dtype, row, h);
    float *dst = acc + id * h;
    for (int64_t j = 0; j < h; ++j)
      dst[j] += row[j];
  }
  fromF32Buffer(acc, table.dtype, table.data, table.numel);
}

template <typename T> void routerGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &logits = c.in[0], &ids = c.in[1];
  int64_t tokens = logits.shape[0], e = logits.shape[1], k = ids.shape[1];
  bool softmaxFirst = attrOf(c, attr::RouterGrad::softmax_before_topk).i;
  bool normalize = attrOf(c, attr::RouterGrad::normalize).i;
  const T *l = logits.as<const T>(), *dw = c.in[2].as<const T>();
  T *dl = c.out[0].as<T>();
  float *scratch = static_cast<float *>(ctx.scratch);
  int32_t *chosen = reinterpret_cast<int32_t *>(scratch + e);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < k; ++j) {
      int64_t ex = loadIndex(ids, t * k + j);
      if (ex < 0 || ex >= e)
        outOfRange("router_grad expert index", ex, t * k + j, e);
      chosen[j] = static_cast<int32_t>(ex);
    }
    math::routerGradRow(l + t * e, chosen, dw + t * k, dl + t * e, e, k,
                        softmaxFirst, normalize, scratch);
  }
}

template <typename T> void combineGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &y = c.in[0], &w = c.in[1], &ids = c.in[2], &dout = c.in[3];
  int64_t e = y.shape[0], cap = y.shape[1], h = y.shape[2];
  int64_t tokens = w.shape[0], k = w.shape[1];
  const T *yv = y.as<const T>(), *wv = w.as<const T>();
  const T *dv = dout.as<const T>();
  T *dy = c.out[0].as<T>(), *dw = c.out[1].as<T>();
  std::fill(dy, dy + c.out[0].numel, fromF32<T>(0.0f));
  int64_t *count = static_cast<int64_t *>(ctx.scratch);
  std::fill(count, count + e, 0);
  // The slots of combine (and dispatch): token order, then choice order.
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t ex = loadIndex(ids, t * k + j);
      if (ex < 0 || ex >= e)
        outOfRange("combine_grad expert index", ex, t * k + j, e);
      int64_t slot = count[ex]++;
      if (slot >= cap) {
        dw[t * k + j] = fromF32<T>(0.0f);
        continue;
      }
      float wt = toF32(wv[t * k + j]), dot = 0.0f;
      const T *row = yv + (ex * cap + slot) * h;
      const T *grad = dv + t * h;
      T *slotGrad = dy + (ex * cap + slot) * h;
      for (int64_t i = 0; i < h; ++i) {
        float g = toF32(grad[i]);
        dot += g * toF32(row[i]);
        slotGrad[i] = fromF32<T>(wt * g);
      }
      dw[t * k + j] = fromF32<T>(dot);
    }
}

} // namespace

bool selectGradient(OpCall &c) {
  DType t = c.in.empty() ? DType::F32 : c.in[0].dtype;
  switch (c.op) {
  case Opcode::RmsNormGrad:
    c.kernel = LOOM_PICK_FLOAT(rmsnormGradK, t);
    c.scratchBytes = c.in[0].dim(-1) * sizeof(float);
    return true;
  case Opcode::LayerNormGrad:
    c.kernel = LOOM_PICK_FLOAT(layernormGradK, t);
    c.scratchBytes = 2 * c.in[0].dim(-1) * sizeof(float);
    return true;
  case Opcode::SoftmaxGrad:
    c.kernel = LOOM_PICK_FLOAT(softmaxGradK, t);
    return true;
  case Opcode::CrossEntropyGrad:
    c.kernel = LOOM_PICK_FLOAT(crossEntropyGradK, t);
    return true;
  case Opcode::EmbeddingGrad:
    c.kernel = &embeddingGradK;
    c.scratchBytes = (c.out[0].numel + c.out[0].shape[1]) * sizeof(float);
    return true;
  case Opcode::RouterGrad:
    c.kernel = LOOM_PICK_FLOAT(routerGradK, t);
    c.scratchBytes =
        c.in[0].shape[1] * sizeof(float) + c.in[1].shape[1] * sizeof(int32_t);
    return true;
  case Opcode::CombineGrad:
    c.kernel = LOOM_PICK_FLOAT(combineGradK, t);
    c.scratchBytes = c.in[0].shape[0] * sizeof(int64_t);
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
