//===- CpuModel.cpp - CPU embedding, loss and mixture-of-experts kernels --===//
//
// embedding, cross_entropy, router, dispatch and combine. Out-of-range ids,
// targets and expert indices raise KernelError.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "loom/runtime/KernelMath.h"

#include <cstring>
#include <vector>

namespace loom::runtime::cpu {
namespace {

[[noreturn]] void outOfRange(const char *what, int64_t v, int64_t pos,
                             int64_t limit) {
  throw KernelError(std::string(what) + " " + std::to_string(v) +
                    " at position " + std::to_string(pos) + " is outside [0, " +
                    std::to_string(limit) + ")");
}

void embeddingK(const OpCall &c, KernelContext &) {
  const TensorRef &table = c.in[0], &ids = c.in[1], &y = c.out[0];
  int64_t v = table.shape[0];
  size_t row = table.shape[1] * dtypeSize(table.dtype);
  const char *src = static_cast<const char *>(table.data);
  char *dst = static_cast<char *>(y.data);
  for (int64_t i = 0; i < ids.numel; ++i) {
    int64_t id = loadIndex(ids, i);
    if (id < 0 || id >= v)
      outOfRange("embedding id", id, i, v);
    std::memcpy(dst + i * row, src + id * row, row);
  }
}

template <typename T> void crossEntropyK(const OpCall &c, KernelContext &) {
  const TensorRef &logits = c.in[0], &targets = c.in[1];
  int64_t v = logits.dim(-1), n = targets.numel;
  const T *l = logits.as<const T>();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = loadIndex(targets, i);
    if (t < 0 || t >= v)
      outOfRange("cross_entropy target", t, i, v);
    sum += math::crossEntropyRow(l + i * v, v, t);
  }
  *c.out[0].as<float>() = static_cast<float>(sum / static_cast<double>(n));
}

template <typename T> void routerK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &logits = c.in[0];
  int64_t tokens = logits.shape[0], e = logits.shape[1];
  int64_t k = attrOf(c, attr::Router::top_k).i;
  bool softmaxFirst = attrOf(c, attr::Router::softmax_before_topk).i;
  bool normalize = attrOf(c, attr::Router::normalize).i;
  const T *l = logits.as<const T>();
  T *w = c.out[0].as<T>();
  int32_t *idx = c.out[1].as<int32_t>();
  float *scratch = static_cast<float *>(ctx.scratch);
  for (int64_t t = 0; t < tokens; ++t)
    math::routerRow(l + t * e, e, k, softmaxFirst, normalize, scratch,
                    w + t * k, idx + t * k);
}

void dispatchK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &x = c.in[0], &ids = c.in[1], &y = c.out[0];
  int64_t e = y.shape[0], cap = y.shape[1];
  int64_t k = ids.shape[1];
  size_t row = x.shape[1] * dtypeSize(x.dtype);
  std::memset(y.data, 0, y.bytes);
  int64_t *count = static_cast<int64_t *>(ctx.scratch);
  std::fill(count, count + e, 0);
  const char *src = static_cast<const char *>(x.data);
  char *dst = static_cast<char *>(y.data);
  for (int64_t t = 0; t < x.shape[0]; ++t)
    for (int64_t j = 0; j < k; ++j) {
      int64_t ex = loadIndex(ids, t * k + j);
      if (ex < 0 || ex >= e)
        outOfRange("dispatch expert index", ex, t * k + j, e);
      int64_t slot = count[ex]++;
      if (slot < cap)
        std::memcpy(dst + (ex * cap + slot) * row, src + t * row, row);
    }
}

template <typename T> void combineK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &y = c.in[0], &w = c.in[1], &ids = c.in[2], &out = c.out[0];
  int64_t e = y.shape[0], cap = y.shape[1], h = y.shape[2];
  int64_t tokens = w.shape[0], k = w.shape[1];
  int64_t *count = static_cast<int64_t *>(ctx.scratch);
  float *acc = reinterpret_cast<float *>(count + e);
  std::fill(count, count + e, 0);
  const T *yv = y.as<const T>(), *wv = w.as<const T>();
  T *o = out.as<T>();
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(acc, acc + h, 0.0f);
    for (int64_t j = 0; j < k; ++j) {
      int64_t ex = loadIndex(ids, t * k + j);
      if (ex < 0 || ex >= e)
        outOfRange("combine expert index", ex, t * k + j, e);
      int64_t slot = count[ex]++;
      if (slot >= cap)
        continue;
      float wt = toF32(wv[t * k + j]);
      const T *row = yv + (ex * cap + slot) * h;
      for (int64_t i = 0; i < h; ++i)
        acc[i] += wt * toF32(row[i]);
    }
    for (int64_t i = 0; i < h; ++i)
      o[t * h + i] = fromF32<T>(acc[i]);
  }
}

} // namespace

bool selectModel(OpCall &c) {
  switch (c.op) {
  case Opcode::Embedding:
    c.kernel = &embeddingK;
    return true;
  case Opcode::CrossEntropy:
    c.kernel = LOOM_PICK_FLOAT(crossEntropyK, c.in[0].dtype);
    return true;
  case Opcode::Router:
    c.kernel = LOOM_PICK_FLOAT(routerK, c.in[0].dtype);
    c.scratchBytes = c.in[0].shape[1] * sizeof(float);
    return true;
  case Opcode::Dispatch:
    c.kernel = &dispatchK;
    c.scratchBytes = c.out[0].shape[0] * sizeof(int64_t);
    return true;
  case Opcode::Combine:
    c.kernel = LOOM_PICK_FLOAT(combineK, c.in[0].dtype);
    c.scratchBytes =
        c.in[0].shape[0] * sizeof(int64_t) + c.in[0].shape[2] * sizeof(float);
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
