//===- CpuGradients.cpp - CPU kernels of the backward-pass ops ------------===//
//
// rmsnorm_grad, layernorm_grad, softmax_grad, cross_entropy_grad,
// embedding_grad, router_grad and combine_grad (attention_grad is with the
// other BLAS kernels in CpuLinalg.cpp; the element-wise gradients come from
// the op table). Row math is KernelMath.h's, shared with CUDA. Rows are
// split across threads; sums over rows accumulate in f32 in an order that
// no thread count changes: the norms' weight gradients by chunks of
// kRowChunk rows, their partial sums added in chunk order; embedding rows
// in position order, each thread adding its own columns.
//
//===----------------------------------------------------------------------===//

#include "CpuKernels.h"
#include "CpuParallel.h"
#include "loom/runtime/KernelMath.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

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

/// Chunks of kRowChunk rows in `rows` rows.
int64_t rowChunks(int64_t rows) { return (rows + kRowChunk - 1) / kRowChunk; }

/// Adds the `chunks` partial sums of h columns (chunk-major in `partial`,
/// `stride` floats apart) in chunk order into the first, and stores them in
/// `out` (h elements of type t).
void sumChunks(float *partial, int64_t chunks, int64_t stride, int64_t h,
               DType t, void *out) {
  if (chunks == 0)
    std::fill(partial, partial + h, 0.0f);
  parallelRanges(h, chunks, [&](int64_t b, int64_t e) {
    for (int64_t ch = 1; ch < chunks; ++ch) {
      const float *p = partial + ch * stride;
      for (int64_t j = b; j < e; ++j)
        partial[j] += p[j];
    }
  });
  fromF32Buffer(partial, t, out, h);
}

template <typename T> void rmsnormGradK(const OpCall &c, KernelContext &ctx) {
  int64_t h = c.in[0].dim(-1), rows = rowsOf(c.in[0], h);
  const T *x = c.in[0].as<const T>(), *w = c.in[1].as<const T>();
  const T *dy = c.in[2].as<const T>();
  T *dx = c.out[0].as<T>();
  // One f32 partial sum of dw per chunk of rows.
  float *partial = static_cast<float *>(ctx.scratch);
  int64_t chunks = rowChunks(rows);
  float eps = static_cast<float>(attrOf(c, attr::RmsNormGrad::epsilon).f);
  parallelFor(chunks, 4 * kRowChunk * h, [&](int64_t ch) {
    float *dw = partial + ch * h;
    std::fill(dw, dw + h, 0.0f);
    for (int64_t r = ch * kRowChunk; r < std::min(rows, (ch + 1) * kRowChunk);
         ++r)
      math::rmsnormGradRow(x + r * h, w, dy + r * h, dx + r * h, dw, h, eps);
  });
  sumChunks(partial, chunks, h, h, c.out[1].dtype, c.out[1].data);
}

template <typename T> void layernormGradK(const OpCall &c, KernelContext &ctx) {
  int64_t h = c.in[0].dim(-1), rows = rowsOf(c.in[0], h);
  const T *x = c.in[0].as<const T>(), *w = c.in[1].as<const T>();
  const T *dy = c.in[2].as<const T>();
  T *dx = c.out[0].as<T>();
  // Per chunk of rows, f32 partial sums of dw and db side by side.
  float *partial = static_cast<float *>(ctx.scratch);
  int64_t chunks = rowChunks(rows);
  float eps = static_cast<float>(attrOf(c, attr::LayerNormGrad::epsilon).f);
  parallelFor(chunks, 6 * kRowChunk * h, [&](int64_t ch) {
    float *dw = partial + ch * 2 * h, *db = dw + h;
    std::fill(dw, dw + 2 * h, 0.0f);
    for (int64_t r = ch * kRowChunk; r < std::min(rows, (ch + 1) * kRowChunk);
         ++r)
      math::layernormGradRow(x + r * h, w, dy + r * h, dx + r * h, dw, db, h,
                             eps);
  });
  sumChunks(partial, chunks, 2 * h, h, c.out[1].dtype, c.out[1].data);
  sumChunks(partial + h, chunks, 2 * h, h, c.out[2].dtype, c.out[2].data);
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
  parallelFor(outer * inner, 3 * n, [&](int64_t r) {
    int64_t base = r / inner * n * inner + r % inner;
    math::softmaxGradRow(y + base, dy + base, dx + base, n, inner);
  });
}

/// math::crossEntropyGradRow for f32 with each exponential computed once:
/// e^(x_i - max) is stored in the gradient row, summed in rowSumExp's order
/// (math::rowSum), then scaled, so the result is the same bit for bit.
/// grad may be logits. Rows [b, e) of n logits each.
LOOM_CPU_CLONES void crossEntropyGradRowsF32(const float *logits, float *grad,
                                             const TensorRef &targets,
                                             int64_t b, int64_t e, int64_t n,
                                             float scale) {
  for (int64_t r = b; r < e; ++r) {
    const float *l = logits + r * n;
    float *g = grad + r * n;
    int64_t target = loadIndex(targets, r);
    float mx = math::rowMax(l, n, 1);
    for (int64_t i = 0; i < n; ++i)
      g[i] = math::fastExp(l[i] - mx);
    float inv = 1.0f / math::rowSum(g, n);
    for (int64_t i = 0; i < n; ++i)
      g[i] = (g[i] * inv - (i == target ? 1.0f : 0.0f)) * scale;
  }
}

template <typename T> void crossEntropyGradK(const OpCall &c, KernelContext &) {
  const TensorRef &logits = c.in[0], &targets = c.in[1];
  int64_t v = logits.dim(-1), n = targets.numel;
  // The mean over n positions: each row's cotangent is dL/n.
  const LoomAttrValue &count = c.attrs.values[attr::CrossEntropyGrad::count];
  int64_t positions = count.present ? count.i : n;
  float scale = positions
                    ? *c.in[2].as<const float>() / static_cast<float>(positions)
                    : 0.0f;
  const T *l = logits.as<const T>();
  T *g = c.out[0].as<T>();
  // The vocab-parallel form, as the loss's.
  bool piece = c.in.size() > 3;
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = loadIndex(targets, i);
    if (t < 0 || (!piece && t >= v))
      outOfRange("cross_entropy target", t, i, v);
  }
  if (piece) {
    const float *lse = c.in[3].as<const float>();
    const LoomAttrValue &start = attrOf(c, attr::CrossEntropyGrad::vocab_start);
    parallelFor(n, 4 * v, [&](int64_t i) {
      math::crossEntropyGradPieceRow(
          l + i * v, g + i * v, v,
          loadIndex(targets, i) - (start.present ? start.i : 0), lse[i], scale);
    });
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    parallelRanges(n, 4 * v, [&](int64_t b, int64_t e) {
      crossEntropyGradRowsF32(l, g, targets, b, e, v, scale);
    });
    return;
  }
  parallelFor(n, 4 * v, [&](int64_t i) {
    math::crossEntropyGradRow(l + i * v, g + i * v, v, loadIndex(targets, i),
                              scale);
  });
}

/// Adds dy's rows into the f32 table `acc` at their ids, in position order:
/// each thread adds its own range of columns.
template <typename T>
void addRowsAt(const TensorRef &dy, const TensorRef &ids, float *acc, int64_t h,
               int64_t start, int64_t vocab) {
  const T *src = dy.as<const T>();
  parallelRanges(h, ids.numel, [&](int64_t b, int64_t e) {
    for (int64_t i = 0; i < ids.numel; ++i) {
      int64_t r = loadIndex(ids, i) - start;
      if (r < 0 || r >= vocab)
        continue; // another rank's row (vocab-parallel)
      float *dst = acc + r * h;
      const T *row = src + i * h;
      for (int64_t j = b; j < e; ++j)
        dst[j] += toF32(row[j]);
    }
  });
}

void embeddingGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &dy = c.in[0], &ids = c.in[1], &table = c.out[0];
  int64_t vocab = table.shape[0], h = table.shape[1];
  // A vocab-parallel piece: rows [start, start + vocab) of the table.
  const LoomAttrValue &piece = attrOf(c, attr::EmbeddingGrad::vocab_start);
  int64_t start = piece.present ? piece.i : 0;
  for (int64_t i = 0; i < ids.numel; ++i) {
    int64_t id = loadIndex(ids, i);
    if (id < 0 || (!piece.present && id >= vocab))
      outOfRange("embedding id", id, i, vocab);
  }
  // f32 rows summed in position order (in the table itself when it is f32),
  // then stored in the table's type.
  bool direct = table.dtype == DType::F32;
  float *acc = direct ? table.as<float>() : static_cast<float *>(ctx.scratch);
  parallelRanges(table.numel, 1, [&](int64_t b, int64_t e) {
    std::fill(acc + b, acc + e, 0.0f);
  });
  switch (dy.dtype) {
  case DType::BF16:
    addRowsAt<bf16_t>(dy, ids, acc, h, start, vocab);
    break;
  case DType::F16:
    addRowsAt<f16_t>(dy, ids, acc, h, start, vocab);
    break;
  default:
    addRowsAt<float>(dy, ids, acc, h, start, vocab);
  }
  if (!direct)
    fromF32Buffer(acc, table.dtype, table.data, table.numel);
}

template <typename T> void routerGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &logits = c.in[0], &ids = c.in[1];
  int64_t tokens = logits.shape[0], e = logits.shape[1], k = ids.shape[1];
  bool softmaxFirst = attrOf(c, attr::RouterGrad::softmax_before_topk).i;
  bool normalize = attrOf(c, attr::RouterGrad::normalize).i;
  const T *l = logits.as<const T>(), *dw = c.in[2].as<const T>();
  T *dl = c.out[0].as<T>();
  for (int64_t i = 0; i < tokens * k; ++i) {
    int64_t ex = loadIndex(ids, i);
    if (ex < 0 || ex >= e)
      outOfRange("router_grad expert index", ex, i, e);
  }
  // A work area per thread: e floats, then the k chosen indices.
  size_t slot = (e * sizeof(float) + k * sizeof(int32_t) + 63) / 64 * 64;
  parallelFor(
      tokens, 8 * e * k,
      [&](int64_t t) {
        float *scratch = reinterpret_cast<float *>(
            static_cast<char *>(ctx.scratch) + threadIndex() * slot);
        int32_t *chosen = reinterpret_cast<int32_t *>(scratch + e);
        for (int64_t j = 0; j < k; ++j)
          chosen[j] = static_cast<int32_t>(loadIndex(ids, t * k + j));
        math::routerGradRow(l + t * e, chosen, dw + t * k, dl + t * e, e, k,
                            softmaxFirst, normalize, scratch);
      },
      threadSlots(ctx.scratchBytes, slot));
}

template <typename T> void combineGradK(const OpCall &c, KernelContext &ctx) {
  const TensorRef &y = c.in[0], &w = c.in[1], &ids = c.in[2], &dout = c.in[3];
  int64_t cap = y.shape[1], h = y.shape[2];
  int64_t tokens = w.shape[0], k = w.shape[1];
  const T *yv = y.as<const T>(), *wv = w.as<const T>();
  const T *dv = dout.as<const T>();
  T *dy = c.out[0].as<T>(), *dw = c.out[1].as<T>();
  parallelRanges(c.out[0].numel, 1, [&](int64_t b, int64_t end) {
    std::fill(dy + b, dy + end, fromF32<T>(0.0f));
  });
  // The slots of combine (and dispatch) in the rank's block of experts.
  ExpertBlock block = expertBlock(c, attr::CombineGrad::expert_start,
                                  attr::CombineGrad::total_experts,
                                  attr::CombineGrad::token_groups, y.shape[0]);
  int64_t *count = static_cast<int64_t *>(ctx.scratch);
  int64_t *slots = count + block.total;
  assignSlots(ids, block, cap, count, slots, "combine_grad expert index");
  parallelFor(tokens, 3 * k * h, [&](int64_t t) {
    for (int64_t j = 0; j < k; ++j) {
      int64_t slot = slots[t * k + j];
      if (slot < 0) {
        dw[t * k + j] = fromF32<T>(0.0f);
        continue;
      }
      float wt = toF32(wv[t * k + j]), dot = 0.0f;
      const T *row = yv + slot * h;
      const T *grad = dv + t * h;
      T *slotGrad = dy + slot * h;
      for (int64_t i = 0; i < h; ++i) {
        float g = toF32(grad[i]);
        dot += g * toF32(row[i]);
        slotGrad[i] = fromF32<T>(wt * g);
      }
      dw[t * k + j] = fromF32<T>(dot);
    }
  });
}

} // namespace

bool selectGradient(OpCall &c) {
  DType t = c.in.empty() ? DType::F32 : c.in[0].dtype;
  switch (c.op) {
  case Opcode::RmsNormGrad:
  case Opcode::LayerNormGrad: {
    bool rms = c.op == Opcode::RmsNormGrad;
    c.kernel = rms ? LOOM_PICK_FLOAT(rmsnormGradK, t)
                   : LOOM_PICK_FLOAT(layernormGradK, t);
    int64_t h = c.in[0].dim(-1);
    int64_t chunks = h ? rowChunks(c.in[0].numel / h) : 0;
    c.scratchBytes =
        std::max<int64_t>(chunks, 1) * (rms ? 1 : 2) * h * sizeof(float);
    return true;
  }
  case Opcode::SoftmaxGrad:
    c.kernel = LOOM_PICK_FLOAT(softmaxGradK, t);
    return true;
  case Opcode::CrossEntropyGrad:
    c.kernel = LOOM_PICK_FLOAT(crossEntropyGradK, t);
    return true;
  case Opcode::EmbeddingGrad:
    c.kernel = &embeddingGradK;
    c.scratchBytes =
        c.out[0].dtype == DType::F32 ? 0 : c.out[0].numel * sizeof(float);
    return true;
  case Opcode::RouterGrad: {
    c.kernel = LOOM_PICK_FLOAT(routerGradK, t);
    size_t slot = (c.in[0].shape[1] * sizeof(float) +
                   c.in[1].shape[1] * sizeof(int32_t) + 63) /
                  64 * 64;
    c.scratchBytes = threadSlotsBytes(slot);
    return true;
  }
  case Opcode::CombineGrad:
    c.kernel = LOOM_PICK_FLOAT(combineGradK, t);
    c.scratchBytes =
        (expertBlock(c, attr::CombineGrad::expert_start,
                     attr::CombineGrad::total_experts,
                     attr::CombineGrad::token_groups, c.in[0].shape[0])
             .total +
         c.in[1].numel) *
        sizeof(int64_t);
    return true;
  default:
    return false;
  }
}

} // namespace loom::runtime::cpu
