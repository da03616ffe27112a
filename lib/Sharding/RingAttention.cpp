//===- RingAttention.cpp - Context parallelism's ring (p2p) form ----------===//
//
// Rewrites the all-gather form of context parallelism that partitioning
// gives (keys and values all-gathered over cp before attention; in the
// backward gathered again, their gradients reduce-scattered) into ring
// attention: the key/value blocks travel around the cp ranks with
// collective_permute, each step's attention_block is merged into the
// rank's output by log-sum-exp, and the backward passes each block's
// gradients along with it (see the pass description in Passes.td).
//
//===----------------------------------------------------------------------===//

#include "loom/Dialect/Loom/IR/LoomOps.h"
#include "loom/Sharding/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace loom {
#define GEN_PASS_DEF_LOOMRINGATTENTIONPASS
#include "loom/Sharding/Passes.h.inc"
} // namespace loom

using namespace mlir;
using namespace loom;

namespace {

/// The ring of one mesh axis: its P ranks pass blocks to the next. A rank's
/// sequence is one contiguous piece (chunks = 1) or, in Megatron's
/// load-balanced order (loom.cp_chunks), chunks r and 2·P − 1 − r of 2·P.
struct Ring {
  FlatSymbolRefAttr mesh;
  StringAttr axis;
  int64_t size = 0;
  int64_t chunks = 1;
};

/// Where piece `piece` of the sequence rank `owner` holds starts, for
/// `length` positions per piece: `base` + `coeff` · owner.
struct PieceStart {
  int64_t base, coeff;
};
PieceStart pieceStart(const Ring &ring, int64_t piece, int64_t length) {
  if (ring.chunks == 1)
    return {0, length};
  if (piece == 0)
    return {0, length};
  return {(2 * ring.size - 1) * length, -length};
}

/// Where a piece of keys starts: base + coeff · ((r + shift) mod P) on
/// rank r; coeff 0 for a piece every rank holds at the same place.
struct KeyStart {
  int64_t base = 0, coeff = 0, shift = 0;
};

/// A piece of the keys and values that attention blocks read.
struct KeyPiece {
  Value key, value;
  KeyStart start;
};

/// `v` as an all-gather of sequence pieces (dimension 1) over one axis.
AllGatherOp gatheredSequence(Value v) {
  auto gather = v.getDefiningOp<AllGatherOp>();
  if (!gather || gather.getAxes().size() != 1 || gather.getGatherDim() != 1)
    return {};
  return gather;
}

/// The ring the keys and values of an attention (or its gradient) are
/// gathered over, when both are and the queries' offset is the rank's
/// piece along the same axis.
std::optional<Ring> ringOf(Operation *op, Value key, Value value,
                           ModuleOp module) {
  AllGatherOp k = gatheredSequence(key), v = gatheredSequence(value);
  if (!k || !v || k.getAxes() != v.getAxes() || k.getMesh() != v.getMesh())
    return std::nullopt;
  auto terms =
      op->getAttrOfType<DictionaryAttr>(LoomDialect::kRankTermsAttrName);
  auto offset = terms ? terms.getAs<ArrayAttr>("query_offset") : ArrayAttr();
  if (!offset || offset.size() != 1)
    return std::nullopt;
  auto term = dyn_cast<RankTermAttr>(offset[0]);
  StringAttr axis = cast<StringAttr>(k.getAxes()[0]);
  int64_t local = cast<RankedTensorType>(k.getInput().getType()).getDimSize(1);
  if (!term || term.getAxis() != axis || term.getShift() != 0 ||
      term.getCoeffs() != ArrayRef<int64_t>{local} ||
      cast<RankedTensorType>(op->getOperand(0).getType()).getDimSize(1) !=
          local)
    return std::nullopt;
  auto meshOp = module.lookupSymbol<MeshOp>(k.getMeshAttr());
  if (!meshOp)
    return std::nullopt;
  std::optional<int64_t> size = meshOp.getShape().getAxisSize(axis);
  if (!size)
    return std::nullopt;
  auto func = op->getParentOfType<func::FuncOp>();
  auto chunks =
      func->getAttrOfType<IntegerAttr>(LoomDialect::kCpChunksAttrName);
  bool balanced = chunks && chunks.getInt() == *size && local % 2 == 0;
  return Ring{k.getMeshAttr(), axis, *size, balanced ? 2 : 1};
}

class RingBuilder {
public:
  RingBuilder(Operation *like, const Ring &ring)
      : like(like), ring(ring), b(like) {}

  /// Starts passing `v` to the next rank (and receiving the previous
  /// rank's): an asynchronous collective on the comm stream, so the
  /// transfer runs while the block before it is computed; `arrived` waits
  /// for it right before its first use.
  Value pass(Value v) {
    auto permute = CollectivePermuteOp::create(
        b, loc(), v.getType(), v, ring.mesh, b.getStrArrayAttr({ring.axis}),
        b.getI64IntegerAttr(1));
    permute->setAttr(LoomDialect::kAsyncAttrName, b.getUnitAttr());
    return tag(permute);
  }
  Value arrived(Value passed) { return tag(WaitOp::create(b, loc(), passed)); }

  /// query_offset (piece `queryPiece` of the rank's sequence, `length`
  /// positions per piece) and key_offset (`key`), each a base and, where
  /// it depends on the rank, a rank term.
  void setOffsets(Operation *op, int64_t queryPiece, int64_t length,
                  const KeyStart &key) {
    PieceStart query = pieceStart(ring, queryPiece, length);
    auto term = [&](int64_t coeff, int64_t shift) {
      return b.getArrayAttr({RankTermAttr::get(b.getContext(), ring.mesh,
                                               ring.axis, {coeff}, shift)});
    };
    op->setAttr("query_offset", b.getI64IntegerAttr(query.base));
    op->setAttr("key_offset", b.getI64IntegerAttr(key.base));
    SmallVector<NamedAttribute> terms = {
        b.getNamedAttr("query_offset", term(query.coeff, 0))};
    if (key.coeff != 0)
      terms.push_back(b.getNamedAttr("key_offset", term(key.coeff, key.shift)));
    op->setAttr(LoomDialect::kRankTermsAttrName, b.getDictionaryAttr(terms));
  }

  /// The rank's pieces of `x` along the sequence (dimension 1).
  SmallVector<Value> pieces(Value x) {
    if (ring.chunks == 1)
      return {x};
    auto type = cast<RankedTensorType>(x.getType());
    int64_t length = type.getDimSize(1) / ring.chunks;
    SmallVector<Value> result;
    for (int64_t piece = 0; piece < ring.chunks; ++piece) {
      SmallVector<int64_t> offsets(type.getRank(), 0), sizes(type.getShape());
      offsets[1] = piece * length;
      sizes[1] = length;
      result.push_back(
          tag(SliceOp::create(b, loc(), type.clone(sizes), x, offsets, sizes)));
    }
    return result;
  }
  /// The pieces put back together.
  Value joined(ArrayRef<Value> parts) {
    if (parts.size() == 1)
      return parts.front();
    auto type = cast<RankedTensorType>(parts.front().getType());
    SmallVector<int64_t> shape(type.getShape());
    shape[1] *= static_cast<int64_t>(parts.size());
    return tag(ConcatOp::create(b, loc(), type.clone(shape), parts,
                                b.getI64IntegerAttr(1)));
  }

  /// `o`, `lse` with the block `oBlock`, `lseBlock` merged in: weights
  /// exp(lse_x − lse_new) with lse_new = m + log(Σ exp(lse_x − m)), m the
  /// larger (a block no query sees has lse −∞ and weight 0).
  std::pair<Value, Value> merge(Value o, Value lse, Value oBlock,
                                Value lseBlock) {
    auto rows = cast<RankedTensorType>(lse.getType());
    SmallVector<int64_t> one = {1}, two = {2};
    llvm::append_range(one, rows.getShape());
    llvm::append_range(two, rows.getShape());
    Value a = tag(ReshapeOp::create(b, loc(), rows.clone(one), lse));
    Value c = tag(ReshapeOp::create(b, loc(), rows.clone(one), lseBlock));
    Value both = tag(ConcatOp::create(
        b, loc(), rows.clone(two), ValueRange{a, c}, b.getI64IntegerAttr(0)));
    Value m = tag(ReduceOp::create(b, loc(), both, ReduceKind::max,
                                   b.getDenseI64ArrayAttr({0}), false));
    Value ea =
        tag(ExpOp::create(b, loc(), tag(SubOp::create(b, loc(), lse, m))));
    Value eb =
        tag(ExpOp::create(b, loc(), tag(SubOp::create(b, loc(), lseBlock, m))));
    Value sum = tag(AddOp::create(b, loc(), ea, eb));
    Value lseNew =
        tag(AddOp::create(b, loc(), m, tag(LogOp::create(b, loc(), sum))));
    auto weighted = [&](Value x, Value e) {
      auto type = cast<RankedTensorType>(x.getType());
      Value w = tag(DivOp::create(b, loc(), e, sum));
      Value wide =
          tag(BroadcastOp::create(b, loc(), type.clone(b.getF32Type()), w,
                                  b.getDenseI64ArrayAttr({0, 1, 2})));
      if (!type.getElementType().isF32())
        wide = tag(ConvertOp::create(b, loc(), type, wide));
      return tag(MulOp::create(b, loc(), x, wide));
    };
    Value oNew =
        tag(AddOp::create(b, loc(), weighted(o, ea), weighted(oBlock, eb)));
    return {oNew, lseNew};
  }

  template <typename OpT> Value tag(OpT op) {
    tagOp(op.getOperation());
    return op->getResult(0);
  }
  Operation *tagOp(Operation *op) {
    for (StringRef name :
         {LoomDialect::kPhaseAttrName, LoomDialect::kLayerAttrName,
          LoomDialect::kMicrobatchAttrName})
      if (Attribute a = like->getAttr(name))
        op->setAttr(name, a);
    return op;
  }
  Location loc() { return like->getLoc(); }
  OpBuilder &builder() { return b; }

private:
  Operation *like;
  Ring ring;
  OpBuilder b;
};

/// Erases `gather` once nothing reads it.
void eraseIfUnused(AllGatherOp gather) {
  if (gather && gather->use_empty())
    gather->erase();
}

/// The pieces of the key/value block that rank r − `step` sent around the
/// ring (its own at step 0).
SmallVector<KeyPiece> ringPieces(RingBuilder &r, const Ring &ring, Value k,
                                 Value v, int64_t step, int64_t length) {
  SmallVector<Value> keys = r.pieces(k), values = r.pieces(v);
  SmallVector<KeyPiece> result;
  for (auto [piece, key] : llvm::enumerate(keys)) {
    PieceStart start = pieceStart(ring, piece, length);
    result.push_back(
        {key,
         values[piece],
         {start.base, start.coeff, (ring.size - step) % ring.size}});
  }
  return result;
}

/// Each query piece against each key piece (attention_block), merged into
/// the query piece's output and log-sum-exp so far (`outs`, `lses`).
void forwardBlocks(RingBuilder &r, AttentionOp attention,
                   ArrayRef<Value> queries, ArrayRef<KeyPiece> keys,
                   int64_t length, MutableArrayRef<Value> outs,
                   MutableArrayRef<Value> lses) {
  OpBuilder &b = r.builder();
  for (auto [qi, query] : llvm::enumerate(queries))
    for (const KeyPiece &key : keys) {
      auto block = AttentionBlockOp::create(
          b, r.loc(), query, key.key, key.value, attention.getCausalAttr(),
          attention.getScaleAttr(), b.getI64IntegerAttr(0),
          b.getI64IntegerAttr(0));
      r.tagOp(block);
      r.setOffsets(block, qi, length, key.start);
      if (!outs[qi]) {
        outs[qi] = block.getResult();
        lses[qi] = block.getLogsumexp();
      } else {
        std::tie(outs[qi], lses[qi]) = r.merge(
            outs[qi], lses[qi], block.getResult(), block.getLogsumexp());
      }
    }
}

/// Each query piece's blocks of the gradient against each key piece
/// (attention_block_grad): their dq added to `dqs`, each key piece's dk
/// and dv to `dks` and `dvs` (one per key piece).
void backwardBlocks(RingBuilder &r, AttentionGradOp grad,
                    ArrayRef<Value> queries, ArrayRef<Value> outs,
                    ArrayRef<Value> outGrads, ArrayRef<Value> lses,
                    ArrayRef<KeyPiece> keys, int64_t length,
                    MutableArrayRef<Value> dqs, MutableArrayRef<Value> dks,
                    MutableArrayRef<Value> dvs) {
  OpBuilder &b = r.builder();
  auto add = [&](Value &sum, Value term) {
    sum = sum ? r.tag(AddOp::create(b, r.loc(), sum, term)) : term;
  };
  for (auto [qi, query] : llvm::enumerate(queries))
    for (auto [ki, key] : llvm::enumerate(keys)) {
      auto block = AttentionBlockGradOp::create(
          b, r.loc(), query.getType(), key.key.getType(), key.value.getType(),
          query, key.key, key.value, outs[qi], outGrads[qi], lses[qi],
          grad.getCausalAttr(), grad.getScaleAttr(), b.getI64IntegerAttr(0),
          b.getI64IntegerAttr(0));
      r.tagOp(block);
      r.setOffsets(block, qi, length, key.start);
      add(dqs[qi], block.getQueryGrad());
      add(dks[ki], block.getKeyGrad());
      add(dvs[ki], block.getValueGrad());
    }
}

/// The forward ring in place of `attention`; returns the merged output
/// and log-sum-exp.
std::pair<Value, Value> buildForwardRing(AttentionOp attention,
                                         const Ring &ring) {
  RingBuilder r(attention, ring);
  AllGatherOp keyGather = gatheredSequence(attention.getKey());
  AllGatherOp valueGather = gatheredSequence(attention.getValue());
  Value k = keyGather.getInput(), v = valueGather.getInput();
  int64_t length =
      cast<RankedTensorType>(k.getType()).getDimSize(1) / ring.chunks;
  SmallVector<Value> queries = r.pieces(attention.getQuery());
  // Each query piece's output and log-sum-exp so far. Its first block (its
  // own rank's first piece of keys) is never wholly masked: the diagonal,
  // or keys all before it.
  SmallVector<Value> outs(queries.size()), lses(queries.size());
  for (int64_t step = 0; step < ring.size; ++step) {
    // The next block is on its way while this one is computed.
    if (step > 0) {
      k = r.arrived(k);
      v = r.arrived(v);
    }
    Value nextK, nextV;
    if (step + 1 < ring.size) {
      nextK = r.pass(k);
      nextV = r.pass(v);
    }
    forwardBlocks(r, attention, queries,
                  ringPieces(r, ring, k, v, step, length), length, outs, lses);
    k = nextK;
    v = nextV;
  }
  Value o = r.joined(outs), lse = r.joined(lses);
  attention.getResult().replaceAllUsesWith(o);
  attention->erase();
  eraseIfUnused(keyGather);
  eraseIfUnused(valueGather);
  return {o, lse};
}

/// The reduce-scatter over `ring`'s axis of the sequence of `grad`, when it
/// is the gradient's one use.
ReduceScatterOp scatteredSequence(Value grad, const Ring &ring) {
  if (!grad.hasOneUse())
    return {};
  auto scatter = dyn_cast<ReduceScatterOp>(*grad.getUsers().begin());
  if (!scatter || scatter.getScatterDim() != 1 ||
      scatter.getAxes().size() != 1 || scatter.getAxes()[0] != ring.axis ||
      scatter.getReduction() != CollectiveReduction::sum)
    return {};
  return scatter;
}

/// The backward ring in place of `grad` and the reduce-scatters of its
/// key and value gradients; false (nothing changed) when they are not
/// the all-gather form's.
bool buildBackwardRing(AttentionGradOp grad, Value lse, const Ring &ring) {
  ReduceScatterOp keyScatter = scatteredSequence(grad.getKeyGrad(), ring);
  ReduceScatterOp valueScatter = scatteredSequence(grad.getValueGrad(), ring);
  if (!keyScatter || !valueScatter)
    return false;
  RingBuilder r(grad, ring);
  OpBuilder &b = r.builder();
  AllGatherOp keyGather = gatheredSequence(grad.getKey());
  AllGatherOp valueGather = gatheredSequence(grad.getValue());
  Value k = keyGather.getInput(), v = valueGather.getInput();
  int64_t length =
      cast<RankedTensorType>(k.getType()).getDimSize(1) / ring.chunks;
  SmallVector<Value> queries = r.pieces(grad.getQuery()),
                     outs = r.pieces(grad.getResult()),
                     outGrads = r.pieces(grad.getResultGrad()),
                     lses = r.pieces(lse);
  SmallVector<Value> dqs(queries.size());
  Value dk, dv;
  for (int64_t step = 0; step < ring.size; ++step) {
    // The next block, and this block's gradients so far (from the ranks
    // that held it before), travel while the block is computed.
    Value nextK, nextV, dkSoFar, dvSoFar;
    if (step > 0) {
      k = r.arrived(k);
      v = r.arrived(v);
      dkSoFar = r.pass(dk);
      dvSoFar = r.pass(dv);
    }
    if (step + 1 < ring.size) {
      nextK = r.pass(k);
      nextV = r.pass(v);
    }
    SmallVector<KeyPiece> keys = ringPieces(r, ring, k, v, step, length);
    SmallVector<Value> dks(keys.size()), dvs(keys.size());
    backwardBlocks(r, grad, queries, outs, outGrads, lses, keys, length, dqs,
                   dks, dvs);
    Value dkStep = r.joined(dks), dvStep = r.joined(dvs);
    if (step == 0) {
      dk = dkStep;
      dv = dvStep;
    } else {
      dk = r.tag(AddOp::create(b, r.loc(), r.arrived(dkSoFar), dkStep));
      dv = r.tag(AddOp::create(b, r.loc(), r.arrived(dvSoFar), dvStep));
    }
    k = nextK;
    v = nextV;
  }
  Value dq = r.joined(dqs);
  // Each rank now holds the whole gradients of the next rank's block.
  if (ring.size > 1) {
    dk = r.arrived(r.pass(dk));
    dv = r.arrived(r.pass(dv));
  }
  grad.getQueryGrad().replaceAllUsesWith(dq);
  keyScatter.getResult().replaceAllUsesWith(dk);
  valueScatter.getResult().replaceAllUsesWith(dv);
  keyScatter->erase();
  valueScatter->erase();
  grad->erase();
  eraseIfUnused(keyGather);
  eraseIfUnused(valueGather);
  return true;
}

/// In the load-balanced order a rank's sequence is two chunks, r and
/// 2·P − 1 − r: a rope whose positions partitioning set from the rank's
/// contiguous piece (position_offset = L · r, L its sequence) becomes one
/// rope per chunk, each at its chunk's first position.
void splitRopeIntoChunks(RopeOp rope, int64_t chunksAttr, ModuleOp module) {
  auto terms =
      rope->getAttrOfType<DictionaryAttr>(LoomDialect::kRankTermsAttrName);
  auto offset = terms ? terms.getAs<ArrayAttr>("position_offset") : ArrayAttr();
  auto type = cast<RankedTensorType>(rope.getType());
  int64_t local = type.getDimSize(1);
  if (!offset || offset.size() != 1 || rope.getPositionOffset() != 0 ||
      local % 2 != 0)
    return;
  auto term = dyn_cast<RankTermAttr>(offset[0]);
  auto meshOp = module.lookupSymbol<MeshOp>(term ? term.getMesh() : nullptr);
  if (!term || !meshOp || term.getShift() != 0 ||
      term.getCoeffs() != ArrayRef<int64_t>{local} ||
      meshOp.getShape().getAxisSize(term.getAxis()) != chunksAttr)
    return;
  Ring ring{term.getMesh(), term.getAxis(), chunksAttr, 2};
  RingBuilder r(rope, ring);
  OpBuilder &b = r.builder();
  SmallVector<Value> parts;
  for (auto [piece, x] : llvm::enumerate(r.pieces(rope.getInput()))) {
    PieceStart start = pieceStart(ring, piece, local / 2);
    auto part =
        RopeOp::create(b, rope.getLoc(), x.getType(), x, rope.getThetaAttr(),
                       b.getI64IntegerAttr(start.base), rope.getInverseAttr());
    r.tagOp(part);
    part->setAttr(
        LoomDialect::kRankTermsAttrName,
        b.getDictionaryAttr(b.getNamedAttr(
            "position_offset",
            b.getArrayAttr({RankTermAttr::get(b.getContext(), ring.mesh,
                                              ring.axis, {start.coeff}, 0)}))));
    parts.push_back(part);
  }
  rope.getResult().replaceAllUsesWith(r.joined(parts));
  rope->erase();
}

/// The all-gathered keys of the load-balanced order, as (piece, first
/// position): rank s's block holds chunks s and 2·P − 1 − s, at the same
/// place on every rank.
SmallVector<KeyPiece> gatheredChunks(RingBuilder &r, const Ring &ring,
                                     Value keys, Value values, int64_t length) {
  SmallVector<KeyPiece> chunks;
  auto chunk = [&](Value gathered, int64_t index) -> Value {
    auto type = cast<RankedTensorType>(gathered.getType());
    SmallVector<int64_t> offsets(type.getRank(), 0), sizes(type.getShape());
    offsets[1] = index * length;
    sizes[1] = length;
    return r.tag(SliceOp::create(r.builder(), r.loc(), type.clone(sizes),
                                 gathered, offsets, sizes));
  };
  for (int64_t rank = 0; rank < ring.size; ++rank)
    for (int64_t piece = 0; piece < 2; ++piece) {
      PieceStart start = pieceStart(ring, piece, length);
      chunks.push_back({chunk(keys, 2 * rank + piece),
                        Value(),
                        {start.base + start.coeff * rank}});
    }
  // The values' slices after all the keys', as before.
  for (auto [index, piece] : llvm::enumerate(chunks))
    piece.value = chunk(values, index);
  return chunks;
}

/// The all-gather form in the load-balanced order (cp_comm=all_gather
/// with loom.cp_chunks): the gathered keys are the ranks' chunk pairs, not
/// the sequence in order, so each of the rank's two query chunks runs
/// against each of the 2·P key chunks at its positions (attention_block),
/// merged by log-sum-exp. Returns the output and log-sum-exp.
std::pair<Value, Value> buildForwardGathered(AttentionOp attention,
                                             const Ring &ring) {
  RingBuilder r(attention, ring);
  int64_t length =
      cast<RankedTensorType>(attention.getQuery().getType()).getDimSize(1) / 2;
  SmallVector<KeyPiece> keys =
      gatheredChunks(r, ring, attention.getKey(), attention.getValue(), length);
  SmallVector<Value> queries = r.pieces(attention.getQuery());
  // Chunk 0 holds position 0, which every query sees: the first block
  // merged is never wholly masked.
  SmallVector<Value> outs(queries.size()), lses(queries.size());
  forwardBlocks(r, attention, queries, keys, length, outs, lses);
  Value o = r.joined(outs), lse = r.joined(lses);
  attention.getResult().replaceAllUsesWith(o);
  attention->erase();
  return {o, lse};
}

/// The gradient of buildForwardGathered's attention: each block's dq adds
/// to its query chunk's, its dk and dv are the key chunk's terms from this
/// rank's queries, put back in the gathered order for the reduce-scatters
/// partitioning made.
void buildBackwardGathered(AttentionGradOp grad, Value lse, const Ring &ring) {
  RingBuilder r(grad, ring);
  int64_t length =
      cast<RankedTensorType>(grad.getQuery().getType()).getDimSize(1) / 2;
  SmallVector<KeyPiece> keys =
      gatheredChunks(r, ring, grad.getKey(), grad.getValue(), length);
  SmallVector<Value> queries = r.pieces(grad.getQuery()),
                     outs = r.pieces(grad.getResult()),
                     outGrads = r.pieces(grad.getResultGrad()),
                     lses = r.pieces(lse);
  SmallVector<Value> dqs(queries.size()), dks(keys.size()), dvs(keys.size());
  backwardBlocks(r, grad, queries, outs, outGrads, lses, keys, length, dqs, dks,
                 dvs);
  grad.getQueryGrad().replaceAllUsesWith(r.joined(dqs));
  grad.getKeyGrad().replaceAllUsesWith(r.joined(dks));
  grad.getValueGrad().replaceAllUsesWith(r.joined(dvs));
  grad->erase();
}

struct LoomRingAttentionPass
    : public loom::impl::LoomRingAttentionPassBase<LoomRingAttentionPass> {
  using LoomRingAttentionPassBase::LoomRingAttentionPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    for (auto func : module.getOps<func::FuncOp>()) {
      if (auto chunks = func->getAttrOfType<IntegerAttr>(
              LoomDialect::kCpChunksAttrName)) {
        SmallVector<RopeOp> ropes;
        func.walk([&](RopeOp rope) { ropes.push_back(rope); });
        for (RopeOp rope : ropes)
          splitRopeIntoChunks(rope, chunks.getInt(), module);
      }
      // The forward before its gradient: the gradient needs the forward's
      // log-sum-exp, found through the output it reads.
      DenseMap<Value, Value> logSumExpOf;
      SmallVector<AttentionOp> attentions;
      func.walk([&](AttentionOp a) { attentions.push_back(a); });
      // With keepGather, only the load-balanced order needs a rewrite:
      // contiguous pieces are the all-gather form as partitioning made it.
      for (AttentionOp a : attentions) {
        std::optional<Ring> ring = ringOf(a, a.getKey(), a.getValue(), module);
        if (!ring || (keepGather && ring->chunks == 1))
          continue;
        auto [o, lse] = keepGather ? buildForwardGathered(a, *ring)
                                   : buildForwardRing(a, *ring);
        logSumExpOf[o] = lse;
      }
      SmallVector<AttentionGradOp> grads;
      func.walk([&](AttentionGradOp g) { grads.push_back(g); });
      for (AttentionGradOp g : grads) {
        Value lse = logSumExpOf.lookup(g.getResult());
        std::optional<Ring> ring = ringOf(g, g.getKey(), g.getValue(), module);
        if (!lse || !ring)
          continue;
        if (keepGather)
          buildBackwardGathered(g, lse, *ring);
        else
          buildBackwardRing(g, lse, *ring);
      }
    }
  }
};

} // namespace
