//===- CpuModel.cpp - CPU embedding, loss and mixture-of-experts kernels --===//
//
// embedding, cross_entropy, router, dispatch and combine. Out-of-range ids,
// targets and expert indices raise KernelError (the first in order). Tokens
// are split across threads; the experts' slots are assigned in token order
// first, and cross-entropy's mean adds its rows' losses in position order.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "CpuParallel.h"
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
  // A vocab-parallel piece holds rows [start, start + v); other ids are
  // other ranks' (a zero row here).
  const LoomAttrValue &piece = attrOf(c, attr::Embedding::vocab_start);
  int64_t start = piece.present ? piece.i : 0;
  for (int64_t i = 0; i < ids.numel; ++i) {
    int64_t id = loadIndex(ids, i);
    if (id < 0 || (!piece.present && id >= v))
      outOfRange("embedding id", id, i, v);
  }
  size_t row = table.shape[1] * dtypeSize(table.dtype);
  const char *src = static_cast<const char *>(table.data);
  char *dst = static_cast<char *>(y.data);
  parallelFor(ids.numel, static_cast<int64_t>(row / 4), [&](int64_t i) {
    int64_t r = loadIndex(ids, i) - start;
    if (r >= 0 && r < v)
      std::memcpy(dst + i * row, src + r * row, row);
    else
      std::memset(dst + i * row, 0, row);
  });
}

/// math::crossEntropyRow of rows [b, e) of n f32 logits into loss.
LOOM_CPU_CLONES void crossEntropyRowsF32(const float *logits,
                                         const TensorRef &targets, float *loss,
                                         int64_t b, int64_t e, int64_t n) {
  for (int64_t r = b; r < e; ++r)
    loss[r] = math::crossEntropyRow(logits + r * n, n, loadIndex(targets, r));
}

template <typename T> void crossEntropyK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &logits = c.in[0], &targets = c.in[1];
  int64_t v = logits.dim(-1), n = targets.numel;
  const T *l = logits.as<const T>();
  // The vocab-parallel form: these are columns [start, start + v) and the
  // log-sum-exp over all of them is given.
  bool piece = c.in.size() > 2;
  int64_t start = attrOf(c, attr::CrossEntropy::vocab_start).present
                      ? attrOf(c, attr::CrossEntropy::vocab_start).i
                      : 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = loadIndex(targets, i);
    if (t < 0 || (!piece && t >= v))
      outOfRange("cross_entropy target", t, i, v);
  }
  // Each row's loss on its own, then their mean in position order.
  float *loss = static_cast<float *>(ctx.scratch);
  if (piece) {
    const float *lse = c.in[2].as<const float>();
    parallelFor(n, 2, [&](int64_t i) {
      loss[i] = math::crossEntropyPieceRow(
          l + i * v, v, loadIndex(targets, i) - start, lse[i]);
    });
  } else if constexpr (std::is_same_v<T, float>)
    parallelRanges(n, 3 * v, [&](int64_t b, int64_t e) {
      crossEntropyRowsF32(l, targets, loss, b, e, v);
    });
  else
    parallelFor(n, 3 * v, [&](int64_t i) {
      loss[i] = math::crossEntropyRow(l + i * v, v, loadIndex(targets, i));
    });
  double sum = 0;
  for (int64_t i = 0; i < n; ++i)
    sum += loss[i];
  // The mean over `count` positions when given (a rank's share of a mean
  // over the positions of all ranks), else over these.
  const LoomAttrValue &count = c.attrs.values[attr::CrossEntropy::count];
  double denominator = count.present ? static_cast<double>(count.i) : n;
  *c.out[0].as<float>() = static_cast<float>(sum / denominator);
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
  // A work area of e floats per thread.
  size_t slot = (e * sizeof(float) + 63) / 64 * 64;
  parallelFor(
      tokens, 8 * e * (k + 1),
      [&](int64_t t) {
        float *scratch = reinterpret_cast<float *>(
            static_cast<char *>(ctx.scratch) + threadIndex() * slot);
        math::routerRow(l + t * e, e, k, softmaxFirst, normalize, scratch,
                        w + t * k, idx + t * k);
      },
      threadSlots(ctx.scratchBytes, slot));
}

void dispatchK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &x = c.in[0], &ids = c.in[1], &y = c.out[0];
  int64_t cap = y.shape[1];
  int64_t k = ids.shape[1];
  ExpertBlock block = expertBlock(c, attr::Dispatch::expert_start,
                                  attr::Dispatch::total_experts,
                                  attr::Dispatch::token_groups, y.shape[0]);
  size_t row = x.shape[1] * dtypeSize(x.dtype);
  int64_t *count = static_cast<int64_t *>(ctx.scratch),
          *slots = count + block.total;
  assignSlots(ids, block, cap, count, slots, "dispatch expert index");
  // Slots no token fills stay zero.
  char *dst = static_cast<char *>(y.data);
  parallelRanges(static_cast<int64_t>(y.bytes), 1, [&](int64_t b, int64_t end) {
    std::memset(dst + b, 0, end - b);
  });
  const char *src = static_cast<const char *>(x.data);
  parallelFor(ids.numel, static_cast<int64_t>(row / 4), [&](int64_t i) {
    if (slots[i] >= 0)
      std::memcpy(dst + slots[i] * row, src + i / k * row, row);
  });
}

template <typename T> void combineK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &y = c.in[0], &w = c.in[1], &ids = c.in[2], &out = c.out[0];
  int64_t cap = y.shape[1], h = y.shape[2];
  int64_t tokens = w.shape[0], k = w.shape[1];
  ExpertBlock block =
      expertBlock(c, attr::Combine::expert_start, attr::Combine::total_experts,
                  attr::Combine::token_groups, y.shape[0]);
  int64_t *count = static_cast<int64_t *>(ctx.scratch),
          *slots = count + block.total;
  assignSlots(ids, block, cap, count, slots, "combine expert index");
  // A row of h f32 sums per thread, after the slots.
  char *areas = reinterpret_cast<char *>(slots + ids.numel);
  size_t slotBytes = (h * sizeof(float) + 63) / 64 * 64;
  size_t before = static_cast<size_t>(areas - static_cast<char *>(ctx.scratch));
  const T *yv = y.as<const T>(), *wv = w.as<const T>();
  T *o = out.as<T>();
  parallelFor(
      tokens, 2 * k * h,
      [&](int64_t t) {
        float *acc =
            reinterpret_cast<float *>(areas + threadIndex() * slotBytes);
        std::fill(acc, acc + h, 0.0f);
        for (int64_t j = 0; j < k; ++j) {
          int64_t slot = slots[t * k + j];
          if (slot < 0)
            continue;
          float wt = toF32(wv[t * k + j]);
          const T *row = yv + slot * h;
          for (int64_t i = 0; i < h; ++i)
            acc[i] += wt * toF32(row[i]);
        }
        for (int64_t i = 0; i < h; ++i)
          o[t * h + i] = fromF32<T>(acc[i]);
      },
      threadSlots(ctx.scratchBytes, slotBytes, before));
}

} // namespace

ExpertBlock expertBlock(const OpCall &c, int startAttr, int totalAttr,
                        int groupsAttr, int64_t size) {
  const LoomAttrValue &total = c.attrs.values[totalAttr];
  const LoomAttrValue &groups = c.attrs.values[groupsAttr];
  return {c.attrs.values[startAttr].i, size, total.present ? total.i : size,
          groups.present ? groups.i : 1};
}

void assignSlots(const TensorRef &ids, const ExpertBlock &block, int64_t cap,
                 int64_t *count, int64_t *slots, const char *what) {
  // The (token, choice) pairs of a group are contiguous: the verifier
  // checked that the groups divide the tokens.
  int64_t perGroup = ids.numel / block.groups;
  for (int64_t i = 0; i < ids.numel; ++i) {
    if (i % perGroup == 0)
      std::fill(count, count + block.total, 0);
    int64_t ex = loadIndex(ids, i);
    if (ex < 0 || ex >= block.total)
      outOfRange(what, ex, i, block.total);
    slots[i] = math::expertSlot(ex, count[ex]++, cap, block.groups,
                                i / perGroup, block.start, block.size);
  }
}

bool selectModel(OpCall &c) {
  switch (c.op) {
  case Opcode::Embedding:
    c.kernel = &embeddingK;
    return true;
  case Opcode::CrossEntropy:
    c.kernel = LOOM_PICK_FLOAT(crossEntropyK, c.in[0].dtype);
    c.scratchBytes = c.in[1].numel * sizeof(float);
    return true;
  case Opcode::Router:
    c.kernel = LOOM_PICK_FLOAT(routerK, c.in[0].dtype);
    c.scratchBytes =
        threadSlotsBytes((c.in[0].shape[1] * sizeof(float) + 63) / 64 * 64);
    return true;
  case Opcode::Dispatch: {
    c.kernel = &dispatchK;
    ExpertBlock block = expertBlock(
        c, attr::Dispatch::expert_start, attr::Dispatch::total_experts,
        attr::Dispatch::token_groups, c.out[0].shape[0]);
    c.scratchBytes = (block.total + c.in[1].numel) * sizeof(int64_t);
    return true;
  }
  case Opcode::Combine: {
    c.kernel = LOOM_PICK_FLOAT(combineK, c.in[0].dtype);
    ExpertBlock block = expertBlock(
        c, attr::Combine::expert_start, attr::Combine::total_experts,
        attr::Combine::token_groups, c.in[0].shape[0]);
    size_t slots = (block.total + c.in[2].numel) * sizeof(int64_t);
    c.scratchBytes = threadSlotsBytes(
        (c.in[0].shape[2] * sizeof(float) + 63) / 64 * 64, slots);
    return true;
  }
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
