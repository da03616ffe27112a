//===- TrainingStep.cpp - Pricing one training step of a transformer ------===//
//
// Per-layer costs from Megatron's FLOPs accounting and a roofline per
// kernel (MoE layers: the router, dispatch, the rank's experts' grouped
// matmuls, combine), tensor-, context- and expert-parallel collectives by
// the alpha-beta model,
// pipeline stages simulated with the schedule library, the gradient
// reduction and the optimizer after the pipeline, memory by Megatron's
// arithmetic.
// docs/CostModel.md states each formula and its source.
//
//===----------------------------------------------------------------------===//

#include "loom/CostModel/TrainingStep.h"

#include "llvm/ADT/Twine.h"

#include <algorithm>
#include <array>
#include <cmath>

using namespace loom::cost;
namespace sched = loom::schedule;

namespace {

constexpr double kBf16Bytes = 2;
constexpr double kFp32Bytes = 4;
/// Megatron's mixed precision (docs/source/api-guide/dist_optimizer.md):
/// bf16 parameters, fp32 gradients (bf16 training accumulates and reduces
/// gradients in fp32), and an fp32 master copy plus Adam's two moments.
constexpr double kParamBytes = 2;
constexpr double kGradBytes = 4;
constexpr double kOptimizerBytes = 12;
/// One Adam step per parameter reads the fp32 gradient, master weight and
/// two moments, writes the master and moments back and the bf16 weight.
constexpr double kAdamTrafficBytes = 4 * 4 + 3 * 4 + 2;

/// Collectives of one mesh axis: count, bus bytes and time.
struct CommTally {
  int64_t calls = 0;
  double busBytes = 0;
  double time = 0;

  /// Adds one collective and returns its time.
  double add(Collective kind, int64_t ranks, double bytes, const Link &link) {
    if (kind != Collective::SendRecv && ranks <= 1)
      return 0;
    double t = collectiveTime(kind, ranks, bytes, link);
    ++calls;
    busBytes += busBandwidthFactor(kind, ranks) * bytes;
    time += t;
    return t;
  }
  CommTally &operator+=(const CommTally &o) {
    calls += o.calls;
    busBytes += o.busBytes;
    time += o.time;
    return *this;
  }
  CommTally scaled(double times) const {
    return {int64_t(calls * times), busBytes * times, time * times};
  }
};

/// The tp, cp and dp collectives of one microbatch through some layers,
/// the MoE dispatcher's (allgather: over ep · tp and ep; alltoall: over
/// ep), and ZeRO-3's of the expert weights over their edp ranks when
/// those are not the dense weights' dp group. cp_comm=a2a+p2p: `cp` holds
/// the all-to-alls within a group, `cpRing` the ring between the groups.
struct StageComm {
  CommTally tp, cp, dp, ep, edp, cpRing;
  StageComm &operator+=(const StageComm &o) {
    tp += o.tp;
    cp += o.cp;
    dp += o.dp;
    ep += o.ep;
    edp += o.edp;
    cpRing += o.cpRing;
    return *this;
  }
  StageComm scaled(double times) const {
    return {tp.scaled(times), cp.scaled(times),  dp.scaled(times),
            ep.scaled(times), edp.scaled(times), cpRing.scaled(times)};
  }
};

/// Everything derived once from the model, the plan and the cluster.
struct Context {
  const TransformerShape &model;
  const TrainingPlan &plan;
  const Cluster &cluster;
  MeshDegrees degrees;
  const Link *tpLink = nullptr;
  /// The cp group's link; cp_comm=a2a+p2p: that of an all-to-all group
  /// (cpA2A consecutive cp ranks, tp apart), the ring's between the groups
  /// (cp / cpA2A of them, tp · cpA2A apart) being `cpRingLink`.
  const Link *cpLink = nullptr;
  const Link *cpRingLink = nullptr;
  /// The gradient group: dp · cp ranks (every rank of it holds a partial
  /// sum of each weight gradient) and its link.
  int64_t gradRanks = 1;
  const Link *dpLink = nullptr;
  /// Tokens of one microbatch on this rank (seq / cp positions), of its
  /// sequence-parallel shard, and of the whole sequence.
  double tokens = 0;
  double shardTokens = 0;
  double sequenceTokens = 0;
  double hidden = 0;
  /// Query and key/value widths on one tp rank (key/value heads are
  /// replicated when there are fewer than tp of them).
  double queryWidth = 0;
  double kvWidth = 0;
  double ffnWidth = 0;
  double gate = 1;
  double vocabWidth = 0;
  /// This rank's [tokens, hidden] activation in bf16: the size of every tp
  /// collective.
  double activationSize = 0;
  /// MoE: the tokens of one dispatch, each expert's capacity in it, the
  /// experts on this rank (E / ep) and the rows its grouped matmuls run
  /// (their capacity slots), and the dispatcher's group and link.
  /// With etp = tp the ep group is ep data ranks (ep divides dp; they are
  /// tp · cp = tp ranks apart), and edp = dp / ep of them hold copies of
  /// the same experts. allgather: the ep group's microbatch (mbs · seq ·
  /// ep, gathered over ep · tp; without ep the dp group's, over dp · tp),
  /// E / ep · capacity rows, the all-gathers' ep · tp ranks, the
  /// reduce-scatters' ep ranks. alltoall (with ep): the data rank's own
  /// tokens (mbs · seq, gathered over tp only), capacity counted per rank,
  /// E · capacity rows (the rank's E / ep experts' slots from the ep
  /// ranks), the all-to-alls' ep ranks.
  /// With etp = 1 (tp > 1) the experts are whole and ep covers the tp
  /// ranks (ep = tp, edp = dp) or tp and part or all of dp (ep = tp · d, d
  /// dividing dp, edp = dp / d): the
  /// dispatch then runs over the ep group alone. allgather: the ep group's
  /// tokens (mbs · seq · ep / tp) gathered over its ep ranks, combine's
  /// partial sums reduce-scattered back over them; alltoall: the rank's own
  /// sp shard (mbs · seq / tp), capacity counted per rank, the all-to-alls
  /// over the ep ranks. No tp collective of the experts either way. The
  /// router runs on the rank's sp shard.
  bool epOverTp = false;
  bool allToAll = false;
  /// Whether the ep group covers the cp ranks (the expert mesh folds over
  /// cp before dp). alltoall then gathers the data rank's tokens over the
  /// tp · cp block before dispatch and combine's output after it, each
  /// way (`cpGatherRanks` consecutive ranks, `cpGatherLink`); allgather's
  /// gather over the ep group covers cp already.
  bool epOverCp = false;
  int64_t cpGatherRanks = 1;
  const Link *cpGatherLink = nullptr;
  double routerTokens = 0;
  double dispatchTokens = 0;
  double capacity = 0;
  double localExperts = 0;
  double expertRows = 0;
  int64_t dispatchRanks = 1;
  const Link *dispatchLink = nullptr;
  /// etp = tp with ep: the ep group's data ranks (tp apart) and their link,
  /// over which allgather reduce-scatters and alltoall exchanges.
  const Link *epLink = nullptr;
  /// The expert data-parallel ranks, edp = tp · cp · dp / (ep · etp),
  /// holding copies of the same experts: their weight
  /// gradients are reduced over them, ZeRO shards them over them. Their
  /// group is every ep · etp-th rank of the stage, its link
  /// `expertGradLink`. When edp is the dense gradient group (no ep, or ep
  /// = tp with etp = 1) the experts ride the dense reduction (one bucket).
  int64_t expertDataRanks = 1;
  const Link *expertGradLink = nullptr;
};

double gemmTime(const Cluster &c, double m, double k, double n) {
  double flops = 2 * m * k * n;
  double bytes = kBf16Bytes * (m * k + k * n + m * n);
  return std::max(flops / c.matmulFlops(), bytes / c.hbmBandwidth);
}

double memoryTime(const Cluster &c, double bytes) {
  return bytes / c.hbmBandwidth;
}

/// Matmul weights of one layer over `tp` ranks (one GPU's share), without
/// norms and biases. A MoE layer's MLP is `experts` of them (none for a
/// dense model: one MLP).
double layerMatmulParams(const TransformerShape &m, double queryWidth,
                         double kvWidth, double ffnWidth, double experts = 0) {
  double gate = m.gatedMlp ? 2 : 1;
  double h = double(m.hidden);
  double attention = h * (queryWidth + 2 * kvWidth) + queryWidth * h;
  double mlp = gate * h * ffnWidth + ffnWidth * h;
  if (m.isMoE())
    return attention + experts * mlp + h * double(m.experts); // + router
  return attention + mlp;
}

/// The expert weights of one MoE layer on one GPU: E / ep experts' MLPs,
/// each split over etp (tp, or whole with etp = 1).
double expertParams(const Context &c) {
  return c.localExperts * (c.gate + 1) * c.hidden * c.ffnWidth;
}

/// All parameters of one layer on one GPU: matmuls (a MoE layer's router
/// and the rank's experts), two norms (replicated over tp), biases.
double layerParams(const Context &c) {
  double params = layerMatmulParams(c.model, c.queryWidth, c.kvWidth,
                                    c.ffnWidth, c.localExperts);
  double normWeights = c.model.linearBias ? 4 : 2; // LayerNorm has a bias
  params += normWeights * c.hidden;
  double mlpBias = c.model.isMoE() ? 0 : c.gate * c.ffnWidth + c.hidden;
  if (c.model.linearBias)
    params += c.queryWidth + 2 * c.kvWidth + mlpBias + c.hidden;
  return params;
}

/// The plan's etp (0 stands for tp).
int64_t expertTp(const TrainingPlan &p) { return p.etp == 0 ? p.tp : p.etp; }

/// Whether ep covers the tp ranks: etp = 1 with tp > 1 (ep = tp or tp · dp;
/// checkExperts).
bool expertsOverTp(const TrainingPlan &p) {
  return p.ep > 1 && p.tp > 1 && expertTp(p) == 1;
}

/// Whether the expert weights' gradients ride the dense weights' dp
/// reduction and ZeRO shards them with the dense weights: when their edp
/// ranks are the whole gradient group (no ep, or ep = tp with etp = 1).
/// Loom's -loom-shard-optimizer shards each tensor over the data axes it
/// is not split over and the gradient buckets reduce over them: an ep
/// inside dp splits the expert weights over its ep ranks, so they are
/// reduced and sharded over the edp ranks only (none when edp = 1: each
/// rank owns its experts), in a bucket of their own.
bool expertsWithDense(const Context &c) {
  return c.expertDataRanks == c.gradRanks;
}

/// What a MoE layer keeps for its backward per microbatch beyond the
/// dense part (the MLP's input is in the 10h): the router's fp32
/// probabilities, the gathered indices (i32) and weights, and on the
/// rank's expert rows the dispatched tokens, the up (and gate) outputs,
/// the activation and the experts' outputs (combine's backward).
double moeActivationBytes(const Context &c) {
  double rows = c.expertRows, h = c.hidden, f = c.ffnWidth;
  return kFp32Bytes * c.routerTokens * double(c.model.experts) +
         (4 + kBf16Bytes) * c.dispatchTokens * double(c.model.topK) +
         kBf16Bytes * rows * (2 * h + (c.gate + 1) * f);
}

/// Activation bytes one layer keeps for its backward per microbatch without
/// recompute:
/// Korthikanti et al. 2022 (Table 2) with flash attention (no score
/// matrices), generalized to grouped-query attention and any MLP width.
/// Replicated over tp unless sp: the inputs of the two norms, of the QKV
/// and of the MLP matmuls (2h each) and two dropout masks (h each): 10h
/// per token. Split over tp: Q, K, V, the attention output, the MLP's
/// first output(s) and its activation. GPT's shapes give 34·s·b·h with sp.
/// With cp every term is of the rank's seq / cp positions; Ulysses (a2a,
/// and a2a+p2p within its groups) keeps Q, K, V split by heads instead
/// (the same bytes) and the attention output twice: split by heads for the
/// attention backward and by positions for the output projection's.
double fullActivationBytes(const Context &c) {
  double replicated = 10 * c.hidden * c.shardTokens;
  if (c.model.isMoE())
    return replicated +
           (2 * (c.queryWidth + 2 * c.kvWidth) + 2 * c.queryWidth) * c.tokens +
           moeActivationBytes(c);
  double split = (2 * (c.queryWidth + 2 * c.kvWidth) + 2 * c.queryWidth +
                  2 * c.gate * c.ffnWidth + 2 * c.ffnWidth) *
                 c.tokens;
  if (c.plan.cp > 1 &&
      (c.plan.cpComm == CpComm::A2A || c.plan.cpComm == CpComm::A2AP2P))
    split += 2 * c.queryWidth * c.tokens;
  return replicated + split;
}

/// What a layer keeps with the plan's recompute: with full recompute only
/// its input (Megatron's --recompute-granularity full); selective recompute
/// drops the attention scores, which flash attention never stores.
double layerActivationBytes(const Context &c) {
  if (c.plan.recompute == Recompute::Full)
    return 2 * c.hidden * c.shardTokens;
  return fullActivationBytes(c);
}

/// Buffers that exist during one layer's attention and are freed after
/// it. cp_comm=all_gather: the whole sequence's; the backward gathers K
/// and V again and makes dK and dV for every position before
/// reduce-scattering them (the forward holds only the gathered K and V).
/// p2p (the ring): two blocks in flight, the one computed on and the one
/// arriving, each of the backward's K, V, dK and dV (seq / cp positions;
/// no whole-sequence buffer). a2a+p2p's ring the same: its blocks are the
/// group's seq / (cp / cpA2A) positions of kv / cpA2A heads, as many bytes.
double attentionTransientBytes(const Context &c) {
  if (c.plan.cp == 1)
    return 0;
  if (c.plan.cpComm == CpComm::AllGather)
    return 4 * kBf16Bytes * c.sequenceTokens * c.kvWidth;
  if (c.plan.cpComm == CpComm::P2P || c.plan.cpComm == CpComm::A2AP2P)
    return 2 * 4 * kBf16Bytes * c.tokens * c.kvWidth;
  return 0;
}

/// A MoE layer's buffers that live during its dispatch and combine only:
/// the gathered tokens [T, h] and combine's partial sums [T, h] of the whole
/// dispatch (their gradients in the backward). The alltoall dispatcher's
/// all-to-alls also hold the other side of one slot buffer at a time: the
/// dispatched [E, C, h] sent off, or the experts' [E/ep, ep·C, h] output
/// before it returns (the same bytes, rows · h).
double moeTransientBytes(const Context &c) {
  if (!c.model.isMoE())
    return 0;
  double slots = c.allToAll ? kBf16Bytes * c.expertRows * c.hidden : 0;
  // alltoall with cp in the ep group gathers the data rank's sequence.
  double gathered =
      c.allToAll && c.epOverCp ? c.sequenceTokens : c.dispatchTokens;
  return 2 * kBf16Bytes * gathered * c.hidden + slots;
}

/// A grouped matmul: `groups` experts, each [rows, k] x [k, n], by the
/// roofline over all of them (the weights of every group are read).
double groupedGemmTime(const Cluster &c, double groups, double rows, double k,
                       double n) {
  double flops = 2 * groups * rows * k * n;
  double bytes = kBf16Bytes * groups * (rows * k + k * n + rows * n);
  return std::max(flops / c.matmulFlops(), bytes / c.hbmBandwidth);
}

/// One MoE layer's MLP for one microbatch, as Loom compiles Megatron's
/// allgather dispatcher: the router on the rank's tokens, its top-k
/// indices and weights and the tokens all-gathered over ep · tp (the ep
/// group's microbatch on every rank; without ep over dp · tp, the whole dp
/// group's), dispatch into the capacity slots of the rank's experts (E /
/// ep with ep; every expert without: plain dp runs all experts on all
/// tokens of its group), the grouped matmuls with each expert's ffn split
/// over tp and their output all-reduced over tp, combine, and with ep a
/// reduce-scatter over the ep ranks back to the rank's tokens. The
/// backward runs the conjugates: the indices, weights and output gradient
/// all-gathered, the experts' input gradient all-reduced over tp, with ep
/// the router weights' and the tokens' gradients reduce-scattered over
/// the ep ranks. With ep < dp the edp = dp / ep groups do this apart.
///
/// Megatron's alltoall dispatcher (with ep; without, the compiled program
/// is plain dp's, as above): with tp the rank's tokens, indices and
/// weights all-gathered over tp into the data rank's tokens, dispatch into
/// the slots of every expert ([E, C, h], C counted per rank), an
/// all-to-all over the ep ranks to the experts' ranks, the grouped
/// matmuls on the rank's E / ep experts over their ep · C slots, the tp
/// all-reduce of their output, an all-to-all back and combine. The
/// backward: the same tp all-gathers (weights, indices, output gradient),
/// the output gradient's slots to the experts and the input gradient's
/// back by all-to-all, the experts' input gradient all-reduced over tp;
/// the tokens' gradient is whole on every tp rank (nothing to reduce).
///
/// With etp = 1 (ep over tp, or tp and dp) the experts are whole: no tp
/// all-reduce and no tp all-gathers. allgather gathers the ep group's
/// tokens over its ep ranks and reduce-scatters combine's sums (and the
/// backward's router weights' and tokens' gradients) over them; alltoall
/// dispatches the rank's own sp shard and runs its all-to-alls over them.
/// Fills `cost`'s MoE fields.
void addMoeLayer(const Context &c, LayerCost &cost, StageComm &forward,
                 StageComm &backward) {
  const Cluster &cl = c.cluster;
  double h = c.hidden, rows = c.expertRows, k = double(c.model.topK);
  double experts = double(c.model.experts), tokens = c.dispatchTokens;
  cost.expertParams = expertParams(c);
  cost.expertRows = rows;

  // The router: [T, h] x [h, E], then softmax and top-k in fp32.
  double routerMatmul = gemmTime(cl, c.routerTokens, h, experts);
  double routerScores = memoryTime(
      cl, kFp32Bytes * (3 * c.routerTokens * experts + 2 * c.routerTokens * k));
  cost.router = routerMatmul + routerScores;

  // The rank's experts, each over its capacity slots.
  double perExpert = rows / c.localExperts;
  cost.expertMatmul =
      groupedGemmTime(cl, c.localExperts, perExpert, h, c.gate * c.ffnWidth) +
      groupedGemmTime(cl, c.localExperts, perExpert, c.ffnWidth, h);
  // Dispatch reads the gathered tokens and writes the slots; combine reads
  // the slots and writes every token's sum.
  cost.dispatchCombine = memoryTime(cl, 2 * kBf16Bytes * (tokens + rows) * h);

  double tokenBytes = kBf16Bytes * tokens * h;
  double indexBytes = 4 * tokens * k, weightBytes = kBf16Bytes * tokens * k;
  bool ep = c.plan.ep > 1;
  // The slot buffer each all-to-all moves: [E, C, h] out, [E/ep, ep·C, h]
  // back, rows · h either way.
  double slotBytes = kBf16Bytes * rows * h;
  // Split experts (etp = tp) all-reduce their output over tp; the
  // alltoall dispatcher gathers the data rank's tokens over tp unless tp
  // is an ep axis (etp = 1: the rank dispatches its own shard).
  bool tpExperts = !c.epOverTp;
  // alltoall with cp in the ep group: the data rank's tokens gathered
  // over the tp · cp block (in place of the tp gather of the tokens)
  // before dispatch, and combine's output after it, each way.
  double sequenceBytes = kBf16Bytes * c.sequenceTokens * h;
  bool cpGathers = c.allToAll && c.epOverCp;
  for (StageComm *phase : {&forward, &backward}) {
    for (double size : {cpGathers ? 0 : tokenBytes, indexBytes, weightBytes}) {
      if (size == 0)
        continue;
      if (!c.allToAll)
        phase->ep.add(Collective::AllGather, c.dispatchRanks, size,
                      *c.dispatchLink);
      else if (tpExperts)
        phase->tp.add(Collective::AllGather, c.plan.tp, size, *c.tpLink);
    }
    if (cpGathers)
      for (int i = 0; i < 2; ++i)
        phase->ep.add(Collective::AllGather, c.cpGatherRanks, sequenceBytes,
                      *c.cpGatherLink);
    if (c.allToAll)
      for (int i = 0; i < 2; ++i)
        phase->ep.add(Collective::AllToAll, c.dispatchRanks, slotBytes,
                      *c.dispatchLink);
    if (tpExperts)
      phase->tp.add(Collective::AllReduce, c.plan.tp, slotBytes, *c.tpLink);
  }
  if (ep && !c.allToAll) {
    // Back to the rank's tokens: over the ep group's data ranks (etp =
    // tp), over the ep group (etp = 1: its tp ranks get their sp shards).
    int64_t ranks = c.epOverTp ? c.dispatchRanks : c.plan.ep;
    const Link &link = c.epOverTp ? *c.dispatchLink : *c.epLink;
    forward.ep.add(Collective::ReduceScatter, ranks, tokenBytes, link);
    backward.ep.add(Collective::ReduceScatter, ranks, weightBytes, link);
    backward.ep.add(Collective::ReduceScatter, ranks, tokenBytes, link);
  }
  cost.dispatcherComm = forward.ep.time;
  if (c.allToAll && c.plan.tp > 1 && tpExperts)
    for (double size : {cpGathers ? 0 : tokenBytes, indexBytes, weightBytes})
      if (size > 0)
        cost.dispatcherTpComm +=
            collectiveTime(Collective::AllGather, c.plan.tp, size, *c.tpLink);
  cost.expertTpComm = collectiveTime(Collective::AllReduce, c.plan.tp,
                                     kBf16Bytes * rows * h, *c.tpLink);
  if (c.plan.tp == 1 || !tpExperts)
    cost.expertTpComm = 0;
  // The router's weight gradient is a matmul like its forward.
  cost.weightGrad += routerMatmul;
}

/// The attention core one GPU runs: queries of `querySeq` positions
/// against `keySeq` keys, per sequence, with the given widths. all_gather
/// and p2p: the rank's own queries against the whole sequence's keys
/// (gathered, or block by block around the ring); a2a (Ulysses): the whole
/// sequence on heads / cp of the tp rank's heads; a2a+p2p: the group's
/// seq / P positions (P = cp / cpA2A groups in the ring) on heads / cpA2A
/// of them against the whole sequence's keys, block by block around the
/// ring. Each way 1/cp of the attention as accounted (unmasked).
struct AttentionWork {
  double querySeq, keySeq, queryWidth, kvWidth;
  /// The causal mask's work on the slowest rank over its accounted share's
  /// half. p2p and all_gather take Megatron's load-balanced chunks (r and
  /// 2cp − 1 − r) for causal attention, with rope or a learned position
  /// table (read in the same order): balanced. a2a splits heads: balanced.
  /// a2a+p2p's ring keeps contiguous pieces, group g's positions
  /// g·S/P .. (g+1)·S/P, whose queries see the keys 0 .. (g+1)·S/P, so the
  /// groups run 1, 3, 5, ... half-blocks of (S/P)²: the last one
  /// (2P − 1)/P² of the causal attention instead of 1/P, (2P − 1)/P times
  /// its share.
  double causalImbalance;
};

AttentionWork attentionWork(const Context &c) {
  double seq = double(c.model.seq), cp = double(c.plan.cp);
  if (c.plan.cpComm == CpComm::A2A)
    return {seq, seq, c.queryWidth / cp, c.kvWidth / cp, 1};
  if (c.plan.cpComm == CpComm::A2AP2P && c.plan.cp > 1) {
    double group = double(c.plan.cpA2A), ring = cp / group;
    return {seq / ring, seq, c.queryWidth / group, c.kvWidth / group,
            (2 * ring - 1) / ring};
  }
  return {seq / cp, seq, c.queryWidth, c.kvWidth, 1};
}

/// The ring's steps over the cp group (p2p) or between the all-to-all
/// groups (a2a+p2p).
int64_t ringSize(const TrainingPlan &p) {
  return p.cpComm == CpComm::A2AP2P && p.cp > 1 ? p.cp / p.cpA2A : p.cp;
}

/// The time context parallelism's exchange adds to a layer's forward and
/// backward (what is not hidden behind computation).
struct CpExposed {
  double forward = 0, backward = 0;
};

/// Context parallelism's exchange of one layer over the cp group. Its
/// collectives (all_gather, a2a) are not overlapped: Loom compiles them as
/// their own ops around attention. all_gather: K and V all-gathered in the
/// forward and again in the backward, dK and dV reduce-scattered (each the
/// whole sequence's [seq, k/t]). a2a: q, k, v to heads and the output back
/// in the forward; the output gradient in and dq, dk, dv out in the
/// backward (each the rank's [seq/cp, width] buffer). p2p (ring
/// attention): cp − 1 ring steps per phase, each an asynchronous
/// point-to-point transfer to the next rank of the K and V blocks (the
/// backward's also of the travelling dK and dV, then one more transfer
/// of dK and dV to their owner) while the step's block is computed: a step
/// exposes max(0, transfer − block), the block being the rank's attention
/// (`forwardBlock`, `backwardBlock`: its forward and backward over cp).
/// a2a+p2p: a2a's four all-to-alls each way within the group of cpA2A
/// ranks (the rank's [seq/cp, width] buffers, on `forward`, `backward`),
/// and around them a ring over the P = cp / cpA2A groups (on
/// `forwardRing`, `backwardRing`): p2p's steps with P in place of cp, each
/// block the group's seq / P positions of kv / cpA2A heads (as many bytes
/// as p2p's at cp) and overlapped with the rank's attention / P.
CpExposed addCpCollectives(const Context &c, CommTally &forward,
                           CommTally &backward, CommTally &forwardRing,
                           CommTally &backwardRing, double forwardBlock,
                           double backwardBlock) {
  int64_t cp = c.plan.cp;
  // The ring: ring − 1 forward steps passing K and V, as many backward
  // steps passing K, V, dK and dV, and dK, dV back to their owner.
  auto ring = [&](int64_t ranks, const Link &link, CommTally &fwd,
                  CommTally &bwd) {
    CpExposed exposed;
    double block = kBf16Bytes * c.tokens * c.kvWidth; // one K, V, dK or dV
    auto step = [&](CommTally &phase, int blocks, double compute) {
      double transfer = 0;
      for (int i = 0; i < blocks; ++i)
        transfer += phase.add(Collective::SendRecv, 2, block, link);
      return std::max(0.0, transfer - compute);
    };
    for (int64_t i = 0; i + 1 < ranks; ++i) {
      exposed.forward += step(fwd, 2, forwardBlock);
      exposed.backward += step(bwd, 4, backwardBlock);
    }
    exposed.backward += step(bwd, 2, backwardBlock);
    return exposed;
  };
  if (c.plan.cpComm == CpComm::P2P) {
    if (cp == 1)
      return {};
    return ring(cp, *c.cpLink, forward, backward);
  }
  if (c.plan.cpComm == CpComm::AllGather) {
    double kv = kBf16Bytes * c.sequenceTokens * c.kvWidth;
    for (int i = 0; i < 2; ++i) {
      forward.add(Collective::AllGather, cp, kv, *c.cpLink);
      backward.add(Collective::AllGather, cp, kv, *c.cpLink);
      backward.add(Collective::ReduceScatter, cp, kv, *c.cpLink);
    }
    return {forward.time, backward.time};
  }
  bool hierarchical = c.plan.cpComm == CpComm::A2AP2P && cp > 1;
  int64_t group = hierarchical ? c.plan.cpA2A : cp;
  double q = kBf16Bytes * c.tokens * c.queryWidth;
  double kv = kBf16Bytes * c.tokens * c.kvWidth;
  for (CommTally *phase : {&forward, &backward})
    for (double size : {q, kv, kv, q})
      phase->add(Collective::AllToAll, group, size, *c.cpLink);
  CpExposed exposed{forward.time, backward.time};
  if (hierarchical) {
    CpExposed r = ring(cp / group, *c.cpRingLink, forwardRing, backwardRing);
    exposed.forward += r.forward;
    exposed.backward += r.backward;
  }
  return exposed;
}

/// One layer for one microbatch; its collectives go to `comm`.
LayerCost layerCost(const Context &c, StageComm &comm) {
  const Cluster &cl = c.cluster;
  LayerCost cost;
  double t = c.tokens, h = c.hidden;
  cost.params = layerParams(c);

  // Weight matmuls: QKV and MLP-up are column-parallel, the output
  // projection and MLP-down row-parallel. dgrad and wgrad have the same
  // FLOPs and operands, so the same roofline time. A MoE layer's MLP is
  // its experts' grouped matmuls (addMoeLayer).
  bool moe = c.model.isMoE();
  StageComm forwardComm, backwardComm;
  if (moe)
    addMoeLayer(c, cost, forwardComm, backwardComm);
  cost.matmul = gemmTime(cl, t, h, c.queryWidth + 2 * c.kvWidth) +
                gemmTime(cl, t, c.queryWidth, h);
  cost.matmul += moe ? cost.expertMatmul
                     : gemmTime(cl, t, h, c.gate * c.ffnWidth) +
                           gemmTime(cl, t, c.ffnWidth, h);

  // Attention core: Q·K^T and scores·V, 4·b·s²·(heads·d) accounted (PaLM,
  // Megatron: unmasked); a causal flash-attention kernel runs half. With
  // a ring of contiguous pieces (a2a+p2p's between its groups) the mask
  // leaves the last group more than half of its share, and the slowest
  // rank is priced.
  AttentionWork a = attentionWork(c);
  double batch = double(c.plan.mbs);
  double attentionFlops = 4 * batch * a.querySeq * a.keySeq * a.queryWidth;
  double causalFlops = 0.5 * attentionFlops * a.causalImbalance;
  double attentionBytes =
      kBf16Bytes * batch *
      (2 * a.querySeq * a.queryWidth + 2 * a.keySeq * a.kvWidth);
  cost.attention =
      std::max(causalFlops / cl.matmulFlops(), memoryTime(cl, attentionBytes));
  double attentionBackward = std::max(2 * causalFlops / cl.matmulFlops(),
                                      memoryTime(cl, 2 * attentionBytes));

  // Element-wise kernels, bf16 elements read and written: two norms
  // (read, write h), two residual adds (read 2h, write h) on the sp shard,
  // rotary embeddings of q and k, the MLP's activation.
  // MoE layers: the activation on the expert rows, plus dispatch and
  // combine.
  double mlpRows = moe ? c.expertRows : t;
  double elements = (4 * h + 6 * h) * c.shardTokens +
                    c.gate * c.ffnWidth * mlpRows + c.ffnWidth * mlpRows;
  if (!c.model.learnedPositions)
    elements += 2 * (c.queryWidth + c.kvWidth) * t;
  cost.elementwise = memoryTime(cl, kBf16Bytes * elements);
  if (moe)
    cost.elementwise += cost.dispatchCombine;

  // Tensor parallelism: with sp an all-gather before and a reduce-scatter
  // after attention and after the MLP, without sp an all-reduce after
  // each; the backward runs their transposes (the same sizes). A MoE
  // layer's dispatcher gathers over ep · tp (allgather) or over tp
  // (alltoall) instead of the MLP's pair (addMoeLayer).
  int64_t tp = c.plan.tp;
  for (StageComm *phase : {&forwardComm, &backwardComm})
    for (int i = 0; i < (moe ? 1 : 2); ++i)
      if (c.plan.sp) {
        phase->tp.add(Collective::AllGather, tp, c.activationSize, *c.tpLink);
        phase->tp.add(Collective::ReduceScatter, tp, c.activationSize,
                      *c.tpLink);
      } else {
        phase->tp.add(Collective::AllReduce, tp, c.activationSize, *c.tpLink);
      }
  cost.tpComm = forwardComm.tp.time;
  // The ring's blocks: the rank's attention over its steps (cp; a2a+p2p:
  // its groups).
  double blocks = double(ringSize(c.plan));
  CpExposed cpExposed = addCpCollectives(
      c, forwardComm.cp, backwardComm.cp, forwardComm.cpRing,
      backwardComm.cpRing, cost.attention / blocks, attentionBackward / blocks);
  cost.cpComm = cpExposed.forward;
  cost.cpTransfer = forwardComm.cp.time + forwardComm.cpRing.time;
  cost.cpRingTransfer = c.plan.cpComm == CpComm::P2P ? forwardComm.cp.time
                                                     : forwardComm.cpRing.time;

  // ZeRO-3 gathers the layer's parameters for the forward and again for
  // the backward, and reduce-scatters its gradients in every microbatch,
  // over the gradient group.
  // The expert weights, when their edp ranks are not the gradient group,
  // over those (nothing when edp = 1).
  if (c.plan.zero >= 3) {
    bool together = expertsWithDense(c);
    auto shardOver = [](CommTally &forward, CommTally &backward, int64_t n,
                        double params, const Link &link) {
      double paramSize = kParamBytes * params * double(n);
      double gradSize = kGradBytes * params * double(n);
      forward.add(Collective::AllGather, n, paramSize, link);
      backward.add(Collective::AllGather, n, paramSize, link);
      backward.add(Collective::ReduceScatter, n, gradSize, link);
    };
    shardOver(forwardComm.dp, backwardComm.dp, c.gradRanks,
              together ? cost.params : cost.params - cost.expertParams,
              *c.dpLink);
    if (!together)
      shardOver(forwardComm.edp, backwardComm.edp, c.expertDataRanks,
                cost.expertParams, *c.expertGradLink);
    cost.paramGather = forwardComm.dp.time + forwardComm.edp.time;
  }

  cost.forwardFlops = 2 * t *
                          layerMatmulParams(c.model, c.queryWidth, c.kvWidth,
                                            moe ? 0 : c.ffnWidth) +
                      attentionFlops;
  if (moe) // the expert rows' matmuls; the router on its own tokens
    cost.forwardFlops += 2 * c.expertRows * (c.gate + 1) * h * c.ffnWidth +
                         2 * (c.routerTokens - t) * h * double(c.model.experts);
  cost.forward = cost.matmul + cost.attention + cost.elementwise + cost.tpComm +
                 cost.cpComm + cost.paramGather;
  cost.inputGrad = cost.matmul + attentionBackward + 2 * cost.elementwise +
                   backwardComm.tp.time + cpExposed.backward +
                   backwardComm.dp.time + backwardComm.edp.time;
  cost.weightGrad += cost.matmul;
  if (moe) { // the router (its wgrad is in weightGrad) and the dispatcher
    cost.forward += cost.router + cost.dispatcherComm;
    cost.inputGrad += cost.router + backwardComm.ep.time;
  }

  comm += forwardComm;
  comm += backwardComm;
  switch (c.plan.recompute) {
  case Recompute::Selective: // the attention core again
    cost.inputGrad += cost.attention;
    break;
  case Recompute::Full: // the whole forward again, collectives included
    cost.inputGrad += cost.forward;
    comm += forwardComm;
    break;
  case Recompute::None:
    break;
  }
  cost.activationBytes = layerActivationBytes(c);
  return cost;
}

/// The embedding (first stage) and the output layer with its loss (last
/// stage) for one microbatch: F, B, W and their collectives.
struct EdgeCost {
  double forward = 0, inputGrad = 0, weightGrad = 0;
  double params = 0;
  StageComm comm;
};

EdgeCost embeddingCost(const Context &c) {
  EdgeCost e;
  double lookupBytes = kBf16Bytes * c.tokens * c.hidden;
  e.params = c.vocabWidth * c.hidden;
  if (c.model.learnedPositions)
    e.params += double(c.model.seq) * c.hidden;
  // The vocabulary-parallel lookup ends in an all-reduce (a reduce-scatter
  // with sp); its backward is an all-gather with sp, nothing without.
  e.forward = memoryTime(c.cluster, lookupBytes);
  e.forward += c.plan.sp ? e.comm.tp.add(Collective::ReduceScatter, c.plan.tp,
                                         c.activationSize, *c.tpLink)
                         : e.comm.tp.add(Collective::AllReduce, c.plan.tp,
                                         c.activationSize, *c.tpLink);
  e.inputGrad = c.plan.sp ? e.comm.tp.add(Collective::AllGather, c.plan.tp,
                                          c.activationSize, *c.tpLink)
                          : 0;
  e.weightGrad = memoryTime(c.cluster, 2 * lookupBytes);
  return e;
}

EdgeCost outputCost(const Context &c) {
  EdgeCost e;
  const Cluster &cl = c.cluster;
  double t = c.tokens, h = c.hidden, v = c.vocabWidth;
  e.params = v * h + h; // the output layer (or the embedding's copy), norm
  double norm = memoryTime(cl, kBf16Bytes * 2 * h * c.shardTokens);
  double logits = gemmTime(cl, t, h, v);
  // Megatron's vocabulary-parallel cross-entropy in fp32: the logits cast,
  // exponentiated and summed (about three fp32 passes), three all-reduces
  // of one float per token (maximum, sum, target logit); its backward
  // writes the logits' gradient (read fp32, write bf16).
  double crossEntropy = memoryTime(cl, 3 * kFp32Bytes * t * v);
  double crossEntropyBackward =
      memoryTime(cl, (kFp32Bytes + kBf16Bytes) * t * v);
  e.forward = norm + logits + crossEntropy;
  if (c.plan.sp)
    e.forward += e.comm.tp.add(Collective::AllGather, c.plan.tp,
                               c.activationSize, *c.tpLink);
  for (int i = 0; i < 3; ++i)
    e.forward += e.comm.tp.add(Collective::AllReduce, c.plan.tp, kFp32Bytes * t,
                               *c.tpLink);
  e.inputGrad = crossEntropyBackward + logits + 2 * norm;
  e.inputGrad += c.plan.sp ? e.comm.tp.add(Collective::ReduceScatter, c.plan.tp,
                                           c.activationSize, *c.tpLink)
                           : e.comm.tp.add(Collective::AllReduce, c.plan.tp,
                                           c.activationSize, *c.tpLink);
  e.weightGrad = logits;
  return e;
}

llvm::Error fail(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// The plan spec's spelling (loom::stringifyCpComm).
const char *cpCommName(CpComm comm) {
  switch (comm) {
  case CpComm::P2P:
    return "p2p";
  case CpComm::AllGather:
    return "all_gather";
  case CpComm::A2A:
    return "a2a";
  case CpComm::A2AP2P:
    return "a2a+p2p";
  }
  return "?";
}

/// What context parallelism needs, as the plan checker says: the sequence
/// in 2 · cp chunks (Megatron's load-balancing chunks), for a2a+p2p
/// all-to-all groups of cpA2A ranks, a divisor of cp strictly between 1
/// and cp (cp-a2a-size; cpA2A is 1 for the other forms), and for the
/// all-to-alls query and key/value heads that split over tp · cp (a2a) or
/// tp · cpA2A (a2a+p2p).
llvm::Error checkContextParallel(const TransformerShape &m,
                                 const TrainingPlan &p) {
  bool hierarchical = p.cp > 1 && p.cpComm == CpComm::A2AP2P;
  if (!hierarchical && p.cpA2A != 1)
    return fail("cp_a2a (" + llvm::Twine(p.cpA2A) +
                ") sets the all-to-all groups of cp_comm=a2a+p2p (with cp > "
                "1) [cp-a2a-needs-hierarchical]");
  if (p.cp == 1)
    return llvm::Error::success();
  if (hierarchical && (p.cpA2A < 2 || p.cpA2A >= p.cp || p.cp % p.cpA2A != 0))
    return fail("cp_a2a (" + llvm::Twine(p.cpA2A) +
                ") must be a divisor of cp (" + llvm::Twine(p.cp) +
                ") strictly between 1 and cp [cp-a2a-size]");
  if (m.seq % (2 * p.cp))
    return fail("seq (" + llvm::Twine(m.seq) + ") is not a multiple of 2*cp (" +
                llvm::Twine(2 * p.cp) + ")");
  if (p.cpComm != CpComm::A2A && !hierarchical)
    return llvm::Error::success();
  int64_t group = hierarchical ? p.cpA2A : p.cp;
  const char *over = hierarchical ? "tp*cp_a2a" : "tp*cp";
  for (auto [name, heads] :
       {std::pair{"heads", m.heads}, {"kv_heads", m.kvHeads}})
    if (heads % (p.tp * group))
      return fail(llvm::Twine("cp_comm=") + cpCommName(p.cpComm) + " splits " +
                  name + " (" + llvm::Twine(heads) + ") over " + over + " (" +
                  llvm::Twine(p.tp * group) + "), which does not divide them");
  return llvm::Error::success();
}

/// Whether the expert mesh [edp, ep, etp] folds over the stage's ranks as
/// loom::foldExpertMesh folds it: etp, then ep, then edp, each over whole
/// axes in the order tp, cp, dp, or ending inside dp at a divisor of it.
bool expertMeshFolds(const TrainingPlan &p, int64_t etp) {
  int64_t ranks = p.tp * p.cp * p.dp;
  if (ranks % (p.ep * etp))
    return false;
  int64_t axes[3] = {p.tp, p.cp, p.dp}; // the last is dp
  int next = 0;
  auto cover = [&](int64_t size) {
    int64_t covered = 1;
    while (covered < size && next < 3) {
      int64_t rest = size / covered;
      if (next == 2 && axes[2] > rest && size % covered == 0 &&
          axes[2] % rest == 0) { // part of dp: its inner ranks
        axes[2] /= rest;
        covered *= rest;
        continue;
      }
      covered *= axes[next++];
    }
    return covered == size;
  };
  return cover(etp) && cover(p.ep) && cover(ranks / (p.ep * etp));
}

/// Expert parallelism as Loom compiles it (the compiler's rules, named as
/// it names them): the expert mesh [edp, ep, etp] folded over the stage
/// (loom::foldExpertMesh, etp fastest, then ep, then edp; expertMeshFolds)
/// with etp = tp or 1; either dispatcher; tp only with sp (Megatron-Core's
/// rule); not with cp_comm=a2a+p2p (not priced yet). MoE layers with
/// cp and without ep are not priced, nor whole
/// experts (etp = 1) without ep under tp (replicated over tp).
llvm::Error checkExperts(const TransformerShape &m, const TrainingPlan &p) {
  if (p.ep < 1)
    return fail("ep must be at least 1, got " + llvm::Twine(p.ep));
  if (!m.isMoE())
    return p.ep > 1 ? fail("ep=" + llvm::Twine(p.ep) +
                           " splits experts, but the model is dense "
                           "(experts = 0) [ep-needs-moe]")
                    : llvm::Error::success();
  if (m.topK < 1 || m.topK > m.experts)
    return fail("top-k (" + llvm::Twine(m.topK) + ") must be in 1..experts (" +
                llvm::Twine(m.experts) + ")");
  if (m.experts % p.ep)
    return fail("the experts (" + llvm::Twine(m.experts) +
                ") must be divisible by ep (" + llvm::Twine(p.ep) +
                ") [experts-ep]");
  if (p.cp > 1 && p.cpComm == CpComm::A2AP2P)
    return fail("MoE layers with cp_comm=a2a+p2p (cp=" + llvm::Twine(p.cp) +
                "): the cost model does not price experts with hierarchical "
                "context parallelism yet; give cp_comm=p2p, all_gather or "
                "a2a");
  int64_t etp = expertTp(p);
  if (etp != p.tp && etp != 1)
    return fail("expert tensor parallelism other than tp or 1 (etp=" +
                llvm::Twine(etp) + ", tp=" + llvm::Twine(p.tp) +
                "): experts split over part of the tensor-parallel ranks are "
                "not compiled; etp is tp (the default) or 1 [unsupported-etp]");
  if (!expertMeshFolds(p, etp))
    return fail("expert parallelism over " + llvm::Twine(p.ep) +
                " ranks with etp = " + llvm::Twine(etp) +
                " over tp = " + llvm::Twine(p.tp) +
                ", cp = " + llvm::Twine(p.cp) + ", dp = " + llvm::Twine(p.dp) +
                ": the expert mesh folds over the stage's ranks in Megatron's "
                "order (etp fastest, then ep, then edp), so ep must take "
                "whole axes after etp's, in the order tp, cp, dp, or end "
                "inside dp at a divisor of it [unsupported-ep]");
  if (p.ep == 1 && etp == 1 && p.tp > 1)
    return fail("whole experts (etp=1) without expert parallelism under tp=" +
                llvm::Twine(p.tp) +
                " (every expert on every tp rank) are not priced by the cost "
                "model; give ep = tp, or tp times a divisor of dp, with etp=1");
  if (p.tp > 1 && !p.sp)
    return fail("a MoE model with tp > 1 needs sp (Megatron-Core refuses to "
                "train MoE layers with tensor parallelism and without "
                "sequence parallelism) [moe-tp-sp]");
  if (p.cp > 1 && p.ep == 1)
    return fail("MoE layers with context parallelism (cp=" + llvm::Twine(p.cp) +
                ") and without expert parallelism are not priced by the cost "
                "model");
  return llvm::Error::success();
}

llvm::Error checkInputs(const TransformerShape &m, const TrainingPlan &p,
                        const Cluster &cl) {
  struct Positive {
    const char *name;
    int64_t value;
  };
  for (Positive v : {Positive{"layers", m.layers},
                     {"hidden", m.hidden},
                     {"heads", m.heads},
                     {"kv_heads", m.kvHeads},
                     {"head_dim", m.headDim},
                     {"ffn", m.ffn},
                     {"vocab", m.vocab},
                     {"seq", m.seq},
                     {"tp", p.tp},
                     {"cp", p.cp},
                     {"pp", p.pp},
                     {"vpp", p.vpp},
                     {"dp", p.dp},
                     {"mbs", p.mbs},
                     {"gbs", p.gbs}})
    if (v.value < 1)
      return fail(llvm::Twine(v.name) + " must be at least 1, got " +
                  llvm::Twine(v.value));
  if (p.vpp > 1 && p.pp == 1)
    return fail("vpp (" + llvm::Twine(p.vpp) + ") needs pp > 1");
  if (p.vpp > 1 && p.schedule != "1f1b" && p.schedule != "interleaved")
    return fail("vpp (" + llvm::Twine(p.vpp) +
                ") needs the interleaved "
                "schedule, got " +
                p.schedule);
  if (p.zero < 0 || p.zero > 3)
    return fail("zero must be in 0..3, got " + llvm::Twine(p.zero));
  int64_t used = p.tp * p.cp * p.pp * p.dp;
  if (used != cl.gpus())
    return fail("the plan runs on tp*cp*pp*dp = " + llvm::Twine(used) +
                " GPUs, the cluster '" + cl.name + "' has " +
                llvm::Twine(cl.gpus()));
  if (m.layers % (p.pp * p.vpp))
    return fail("layers (" + llvm::Twine(m.layers) +
                ") is not a multiple of pp*vpp (" + llvm::Twine(p.pp * p.vpp) +
                ")");
  for (Positive v : {Positive{"heads", m.heads},
                     {"ffn", m.ffn},
                     {"hidden", m.hidden},
                     {"vocab", m.vocab}})
    if (v.value % p.tp)
      return fail(llvm::Twine(v.name) + " (" + llvm::Twine(v.value) +
                  ") is not a multiple of tp (" + llvm::Twine(p.tp) + ")");
  if (auto error = checkContextParallel(m, p))
    return error;
  if (auto error = checkExperts(m, p))
    return error;
  if (p.sp && (m.seq / p.cp * p.mbs) % p.tp)
    return fail("sp splits mbs*seq/cp (" + llvm::Twine(m.seq / p.cp * p.mbs) +
                " tokens) over tp (" + llvm::Twine(p.tp) +
                "), which does not divide it");
  if (p.gbs % (p.mbs * p.dp))
    return fail("gbs (" + llvm::Twine(p.gbs) +
                ") is not a multiple of mbs*dp (" + llvm::Twine(p.mbs * p.dp) +
                ")");
  return checkCluster(cl);
}

/// The link every group along `axis` runs on.
const Link &axisLink(const Cluster &cluster, const MeshDegrees &degrees,
                     MeshAxisKind axis) {
  return isAxisWithinNode(cluster, degrees, axis) ? cluster.intraNode
                                                  : cluster.interNode;
}

/// The mesh with cp folded into dp: the gradient group (Megatron's
/// data-parallel group with context parallelism) is every dp and cp
/// coordinate of a (tp, pp) coordinate, and since cp and dp are adjacent
/// in the rank order, that is one axis of dp · cp ranks.
MeshDegrees gradientMesh(const MeshDegrees &d) {
  return {d.tp, 1, d.cp * d.dp, d.pp};
}

/// Peak (microbatch, chunk) pairs and layers whose activations rank `r`
/// keeps, walking its action list: an F adds its chunk's layers, the end
/// of its backward (W when the schedule splits it, else B) frees them.
std::pair<int64_t, int64_t> peakInFlight(const sched::Schedule &s, int rank,
                                         int64_t layersPerChunk) {
  bool split = s.splitsBackward();
  int64_t chunks = 0, peak = 0;
  for (const sched::Action &a : s.ranks[rank]) {
    if (a.kind == sched::ActionKind::F)
      peak = std::max(peak, ++chunks);
    else if (a.kind == (split ? sched::ActionKind::W : sched::ActionKind::B))
      --chunks;
  }
  return {peak, peak * layersPerChunk};
}

/// The MoE layer's dispatch on one rank, each
/// expert's capacity in it as ModelConfig::getExpertCapacity counts it,
/// and the slots the rank's grouped matmuls run. allgather: the ep group's
/// microbatch gathered over ep · tp (without ep the dp group's, over dp ·
/// tp), the slots of the rank's experts (E / ep with ep, all E without).
/// alltoall with ep: the data rank's own microbatch (gathered over tp
/// from its sp shards), capacity counted per rank as Megatron does, and
/// the rank's E / ep experts' slots from every ep rank: E / ep · ep ·
/// capacity; the all-to-alls run over the ep ranks. With etp = tp the ep
/// group's data ranks are tp apart (Megatron's order: etp fastest, then
/// ep, then edp), so the gather's ep · tp ranks are consecutive; with etp
/// = 1 the ep group is ep consecutive ranks. The edp ranks holding the same
/// experts are ep · etp apart. With cp the ep group covers the cp ranks
/// before dp (or, etp = 1 with ep = tp, none: cp is then in edp); a "data
/// rank" below is then a cp rank, its seq / cp positions (`tokens`), and
/// ep · etp consecutive ranks hold ep · etp / tp of them: allgather's
/// gather over the ep group takes the whole sequence of the data ranks in
/// it, alltoall dispatches each rank's own positions.
void setExpertShapes(Context &c) {
  const TransformerShape &m = c.model;
  const TrainingPlan &p = c.plan;
  c.allToAll = p.ep > 1 && p.dispatcher == Dispatcher::AllToAll;
  c.epOverTp = expertsOverTp(p);
  int64_t ranks = p.tp * p.cp * p.dp; // the stage's
  c.epOverCp =
      p.cp > 1 && p.ep > 1 && (p.ep * expertTp(p)) % (p.tp * p.cp) == 0;
  if (c.epOverCp) { // the tp · cp block, consecutive ranks
    c.cpGatherRanks = p.tp * p.cp;
    MeshDegrees block{p.tp * p.cp, 1, p.dp, p.pp};
    c.cpGatherLink = &axisLink(c.cluster, block, MeshAxisKind::Tp);
  }
  c.routerTokens = c.epOverTp ? c.shardTokens : c.tokens;
  // The data ranks whose tokens one allgather dispatch holds. etp = 1: the
  // data ranks of an ep group (ep / tp; with sp each tp rank holds 1/tp of
  // its data rank's tokens). etp = tp: the ep group's ep data ranks, or
  // without ep the whole dp group (plain dp, as Loom compiles it).
  int64_t epData = c.epOverTp ? p.ep / p.tp : p.ep > 1 ? p.ep : p.dp;
  if (c.epOverTp)
    c.dispatchTokens = c.allToAll ? c.shardTokens : c.tokens * double(epData);
  else
    c.dispatchTokens = c.allToAll ? c.tokens : c.tokens * double(epData);
  double perExpert = c.dispatchTokens * double(m.topK) / double(m.experts);
  c.capacity =
      m.capacityFactor > 0
          ? std::min(c.dispatchTokens,
                     std::max(1.0, std::ceil(perExpert * m.capacityFactor)))
          : c.dispatchTokens;
  c.localExperts = double(m.experts / p.ep);
  c.expertRows = c.localExperts * c.capacity;
  if (c.allToAll)
    c.expertRows *= double(p.ep);
  // The edp ranks: every ep · etp-th rank of the stage.
  int64_t block = p.ep * expertTp(p);
  c.expertDataRanks = ranks / block;
  MeshDegrees copies{block, 1, c.expertDataRanks, p.pp};
  c.expertGradLink = &axisLink(c.cluster, copies, MeshAxisKind::Dp);
  if (c.epOverTp) { // the ep group: ep consecutive ranks, tp fastest
    c.dispatchRanks = p.ep;
    MeshDegrees group{p.ep, 1, ranks / p.ep, p.pp};
    c.dispatchLink = &axisLink(c.cluster, group, MeshAxisKind::Tp);
    return;
  }
  // etp = tp: the ep group's data ranks, tp apart, edp = dp / ep groups of
  // them (in the place of pp's outer blocks for the link).
  MeshDegrees epGroup{p.tp, 1, p.ep, c.expertDataRanks * p.pp};
  c.epLink = &axisLink(c.cluster, epGroup, MeshAxisKind::Dp);
  if (c.allToAll) {
    c.dispatchRanks = p.ep;
    c.dispatchLink = c.epLink;
    return;
  }
  c.dispatchRanks = epData * p.tp;
  MeshDegrees group{p.tp * epData, 1, ranks / (p.tp * epData), p.pp};
  c.dispatchLink = &axisLink(c.cluster, group, MeshAxisKind::Tp);
}

} // namespace

llvm::Expected<StepEstimate>
loom::cost::estimateTrainingStep(const TransformerShape &model,
                                 const TrainingPlan &plan,
                                 const Cluster &cluster) {
  if (auto error = checkInputs(model, plan, cluster))
    return std::move(error);

  Context c{model, plan, cluster};
  c.degrees = {plan.tp, plan.cp, plan.dp, plan.pp};
  c.tpLink = &axisLink(cluster, c.degrees, MeshAxisKind::Tp);
  c.cpLink = &axisLink(cluster, c.degrees, MeshAxisKind::Cp);
  if (plan.cp > 1 && plan.cpComm == CpComm::A2AP2P) {
    // All-to-all groups of cpA2A consecutive cp ranks; the ring over the
    // groups, tp · cpA2A ranks apart.
    int64_t group = plan.cpA2A, ring = plan.cp / plan.cpA2A;
    c.cpLink = &axisLink(cluster, {plan.tp, group, ring * plan.dp, plan.pp},
                         MeshAxisKind::Cp);
    c.cpRingLink = &axisLink(cluster, {plan.tp * group, ring, plan.dp, plan.pp},
                             MeshAxisKind::Cp);
  }
  c.gradRanks = plan.dp * plan.cp;
  c.dpLink = &axisLink(cluster, gradientMesh(c.degrees), MeshAxisKind::Dp);
  double tp = double(plan.tp);
  c.sequenceTokens = double(plan.mbs * model.seq);
  c.tokens = c.sequenceTokens / double(plan.cp);
  c.shardTokens = plan.sp ? c.tokens / tp : c.tokens;
  c.hidden = double(model.hidden);
  c.queryWidth = double(model.heads * model.headDim) / tp;
  int64_t kvHeadsPerRank = (model.kvHeads + plan.tp - 1) / plan.tp;
  c.kvWidth = double(kvHeadsPerRank * model.headDim);
  // A MoE layer's MLPs are its experts, split over etp (tp or 1).
  c.ffnWidth =
      double(model.ffn) / double(model.isMoE() ? expertTp(plan) : plan.tp);
  c.gate = model.gatedMlp ? 2 : 1;
  c.vocabWidth = double(model.vocab) / tp;
  c.activationSize = kBf16Bytes * c.tokens * c.hidden;
  if (model.isMoE())
    setExpertShapes(c);

  StepEstimate est;
  est.gpus = cluster.gpus();
  est.microbatches = plan.gbs / (plan.mbs * plan.dp);
  est.tokensPerStep = plan.gbs * model.seq;

  StageComm layerComm;
  est.layer = layerCost(c, layerComm);
  EdgeCost embedding = embeddingCost(c), output = outputCost(c);
  est.outputForward = output.forward;

  // Virtual stages: Megatron's even split, chunk s on rank s mod pp.
  int64_t stages = plan.pp * plan.vpp;
  int64_t layersPerChunk = model.layers / stages;
  // The boundary activation: each tp rank sends its sequence shard with
  // sp, the whole activation without.
  double transferBytes = kBf16Bytes * c.shardTokens * c.hidden;
  std::vector<StageComm> stageComm(stages);
  for (int64_t s = 0; s < stages; ++s) {
    VirtualStageCost v;
    v.layers = layersPerChunk;
    v.embedding = s == 0;
    v.output = s == stages - 1;
    double n = double(layersPerChunk);
    v.costs.f = n * est.layer.forward;
    v.costs.b = n * est.layer.inputGrad;
    v.costs.w = n * est.layer.weightGrad;
    stageComm[s] = layerComm.scaled(n);
    for (auto [present, edge] :
         {std::pair{v.embedding, &embedding}, {v.output, &output}})
      if (present) {
        v.costs.f += edge->forward;
        v.costs.b += edge->inputGrad;
        v.costs.w += edge->weightGrad;
        stageComm[s] += edge->comm;
      }
    const Link &link = pipelineLink(cluster, c.degrees, s % plan.pp);
    v.costs.transfer = plan.pp > 1 ? collectiveTime(Collective::SendRecv, 2,
                                                    transferBytes, link)
                                   : 0;
    est.stages.push_back(v);
  }

  // The pipeline.
  sched::ScheduleProblem problem;
  // Megatron's 1F1B with vpp > 1 is the interleaved schedule.
  std::string scheduleName = plan.pp == 1 ? "1f1b"
                             : plan.vpp > 1 && plan.schedule == "1f1b"
                                 ? "interleaved"
                                 : plan.schedule;
  auto schedule = sched::makeSchedule(scheduleName, int(plan.pp), int(plan.vpp),
                                      int(est.microbatches), &problem);
  if (!schedule)
    return fail(problem.id + ": " + problem.message);
  est.schedule = std::move(*schedule);
  for (const VirtualStageCost &v : est.stages)
    est.costs.perStage.push_back(v.costs);
  const VirtualStageCost &first = est.stages.front();
  est.costs.f = first.costs.f;
  est.costs.b = first.costs.b;
  est.costs.w = first.costs.w;
  est.costs.transfer = first.costs.transfer;
  auto simulation = sched::simulate(est.schedule, est.costs, &problem);
  if (!simulation)
    return fail(problem.id + ": " + problem.message);
  est.simulation = std::move(*simulation);
  est.pipelineTime = est.simulation.makespan;
  est.bubbleFraction = est.simulation.bubbleFraction;

  // Every pipeline rank: memory, then the gradient reduction over dp · cp
  // and the optimizer after its last pipeline action.
  double m = double(est.microbatches);
  double gradRanks = double(c.gradRanks);
  // tp, cp, pp, dp, MoE dispatcher, expert gradients over edp, a2a+p2p's
  // ring between its groups
  std::array<CommTally, 7> busiest;
  for (int64_t r = 0; r < plan.pp; ++r) {
    PipelineRankEstimate rank;
    StageComm comm;
    CommTally pp;
    for (int64_t s = r; s < stages; s += plan.pp) {
      const VirtualStageCost &v = est.stages[s];
      rank.params += double(v.layers) * est.layer.params;
      rank.expertParams += double(v.layers) * est.layer.expertParams;
      if (v.embedding)
        rank.params += embedding.params;
      if (v.output)
        rank.params += output.params;
      comm += stageComm[s].scaled(m);
      const Link &next = pipelineLink(cluster, c.degrees, r);
      if (plan.pp > 1) {
        if (s < stages - 1)
          for (int64_t i = 0; i < est.microbatches; ++i)
            pp.add(Collective::SendRecv, 2, transferBytes, next);
        if (s > 0)
          for (int64_t i = 0; i < est.microbatches; ++i)
            pp.add(Collective::SendRecv, 2, transferBytes, next);
      }
    }

    // ZeRO's share of the rank's parameters at level 3 (parameters), 2
    // (gradients), 1 (optimizer states): the dense weights' over the dp
    // group, the expert weights' over their edp ranks (expertsWithDense:
    // with the dense ones when edp is the dp group; whole on their rank
    // when edp = 1). The dp reduction carries `sharded`, the edp one
    // `apart`.
    double apart = expertsWithDense(c) ? 0 : rank.expertParams;
    double sharded = rank.params - apart;
    double edp = double(c.expertDataRanks);
    auto shard = [&](int64_t level) {
      return plan.zero >= level ? sharded / gradRanks + apart / edp
                                : sharded + apart;
    };
    rank.paramBytes = kParamBytes * shard(3);
    rank.gradBytes = kGradBytes * shard(2);
    rank.optimizerBytes = kOptimizerBytes * shard(1);
    auto [chunks, layers] = peakInFlight(est.schedule, int(r), layersPerChunk);
    rank.peakInFlight = chunks;
    rank.peakInFlightLayers = layers;
    rank.activationBytes = double(layers) * est.layer.activationBytes;
    if (plan.recompute == Recompute::Full) // one layer rebuilt at a time
      rank.activationBytes += fullActivationBytes(c);
    rank.activationBytes += attentionTransientBytes(c); // one layer at a time
    rank.activationBytes += moeTransientBytes(c);
    if (r == (stages - 1) % plan.pp)
      rank.activationBytes += kFp32Bytes * c.tokens * c.vocabWidth; // logits
    rank.totalBytes = rank.paramBytes + rank.gradBytes + rank.optimizerBytes +
                      rank.activationBytes;

    const sched::RankTimeline &timeline = est.simulation.ranks[r];
    rank.pipelineEnd =
        timeline.actions.empty() ? 0 : timeline.actions.back().end;
    // The gradients: all-reduced (ZeRO 0), or reduce-scattered and the
    // updated parameters all-gathered (ZeRO 1, 2), over the dp group and,
    // a bucket of their own, the expert weights' over their edp ranks
    // (none with edp = 1); ZeRO-3 reduces in every microbatch.
    auto reduceOver = [&](CommTally &reduce, int64_t ranks, double params,
                          const Link &link) {
      if (plan.zero == 0) {
        reduce.add(Collective::AllReduce, ranks, kGradBytes * params, link);
      } else if (plan.zero <= 2) {
        reduce.add(Collective::ReduceScatter, ranks, kGradBytes * params, link);
        reduce.add(Collective::AllGather, ranks, kParamBytes * params, link);
      }
    };
    CommTally reduce, expertReduce;
    reduceOver(reduce, c.gradRanks, sharded, *c.dpLink);
    if (apart > 0)
      reduceOver(expertReduce, c.expertDataRanks, apart, *c.expertGradLink);
    rank.gradReduce = reduce.time + expertReduce.time;
    comm.dp += reduce;
    comm.edp += expertReduce;
    rank.optimizer = memoryTime(cluster, kAdamTrafficBytes * shard(1));
    rank.finish = rank.pipelineEnd + rank.gradReduce + rank.optimizer;
    est.stepTime = std::max(est.stepTime, rank.finish);
    est.ranks.push_back(rank);

    CommTally perAxis[7] = {comm.tp, comm.cp,  pp,         comm.dp,
                            comm.ep, comm.edp, comm.cpRing};
    for (int i = 0; i < 7; ++i)
      if (perAxis[i].time > busiest[i].time ||
          (busiest[i].calls == 0 && perAxis[i].calls > 0))
        busiest[i] = perAxis[i];
  }

  MeshAxisKind axes[4] = {MeshAxisKind::Tp, MeshAxisKind::Cp, MeshAxisKind::Pp,
                          MeshAxisKind::Dp};
  // a2a+p2p: the cp entry is its all-to-alls within a group.
  bool hierarchical = plan.cp > 1 && plan.cpComm == CpComm::A2AP2P;
  int64_t sizes[4] = {plan.tp, hierarchical ? plan.cpA2A : plan.cp, plan.pp,
                      c.gradRanks};
  const Link *links[4] = {c.tpLink, c.cpLink,
                          &pipelineLink(cluster, c.degrees, 0), c.dpLink};
  // One group's traffic: the busiest rank's calls, bytes and time on entry
  // `i` of the per-axis totals.
  auto trafficOf = [&](MeshAxisKind axis, int64_t groupSize, const Link *link,
                       int i) {
    AxisTraffic traffic;
    traffic.axis = axis;
    traffic.groupSize = groupSize;
    traffic.intraNode = link == &cluster.intraNode;
    traffic.collectives = busiest[i].calls;
    traffic.busBytes = busiest[i].busBytes;
    traffic.time = busiest[i].time;
    return traffic;
  };
  for (int i = 0; i < 4; ++i)
    est.traffic.push_back(trafficOf(axes[i], sizes[i], links[i], i));
  if (model.isMoE()) {
    est.dispatcher =
        trafficOf(MeshAxisKind::Dp, c.dispatchRanks, c.dispatchLink, 4);
    est.expertGrad =
        trafficOf(MeshAxisKind::Dp, c.expertDataRanks, c.expertGradLink, 5);
  }
  if (hierarchical)
    est.cpRing =
        trafficOf(MeshAxisKind::Cp, plan.cp / plan.cpA2A, c.cpRingLink, 6);

  // Model FLOPs (PaLM, appendix B; Megatron's num_floating_point_operations
  // without recompute): 3 · forward, the forward being 2 · tokens ·
  // (matmul parameters + output layer) + 4 · layers · batch · seq² · heads
  // · head_dim. A MoE layer's parameters a token meets: the router and
  // top-k experts (capacity padding and plain dp's redundant experts are
  // not model FLOPs).
  double seq = double(model.seq), batch = double(plan.gbs);
  double matmulParams =
      double(model.layers) *
          layerMatmulParams(model, double(model.heads * model.headDim),
                            double(model.kvHeads * model.headDim),
                            double(model.ffn), double(model.topK)) +
      c.hidden * double(model.vocab);
  double forwardFlops = 2 * batch * seq * matmulParams +
                        4 * double(model.layers) * batch * seq * seq *
                            double(model.heads * model.headDim);
  est.modelFlopsPerStep = 3 * forwardFlops;
  est.modelFlopsPerGpu =
      est.modelFlopsPerStep / est.stepTime / double(est.gpus);
  est.mfu = est.modelFlopsPerGpu / cluster.peakFlops;
  est.tokensPerSecond = double(est.tokensPerStep) / est.stepTime;

  // Total parameters: every layer, the embedding (and positions), the final
  // norm, the output layer unless tied.
  Context whole = c;
  whole.queryWidth = double(model.heads * model.headDim);
  whole.kvWidth = double(model.kvHeads * model.headDim);
  whole.ffnWidth = double(model.ffn);
  whole.localExperts = double(model.experts);
  est.totalParams = double(model.layers) * layerParams(whole) +
                    double(model.vocab) * c.hidden + c.hidden;
  if (model.learnedPositions)
    est.totalParams += seq * c.hidden;
  if (!model.tiedEmbeddings)
    est.totalParams += double(model.vocab) * c.hidden;
  return est;
}

std::vector<CostAssumption> loom::cost::getCostAssumptions() {
  return {
      {"bytes per parameter", "2 bf16 weight + 4 fp32 gradient + 12 optimizer",
       "Megatron-LM dist_optimizer.md: bf16 params, fp32 grads, fp32 master "
       "and Adam moments; ZeRO divides the sharded parts by dp"},
      {"gradient reduction", "fp32, after the last backward, not overlapped",
       "Megatron-LM reduces gradients in fp32 with bf16 "
       "(accumulate_allreduce_grads_in_fp32); --overlap-grad-reduce is off by "
       "default"},
      {"activations per layer",
       "10h (replicated unless sp) + Q,K,V, "
       "attention out, MLP out(s) and activation "
       "(split over tp), bf16, per token",
       "Korthikanti et al. 2022, Table 2, with flash attention (no stored "
       "scores); 34·s·b·h/t for GPT with sp"},
      {"attention",
       "4·b·s²·heads·head_dim FLOPs accounted, half run (causal); with "
       "cp_comm=a2a+p2p the slowest group's (2P-1)/P² of it, P = cp/cp_a2a",
       "Megatron's and PaLM's accounting count it unmasked; a causal "
       "flash-attention kernel skips the masked half; p2p and all_gather "
       "take Megatron's load-balanced chunks (rope or learned positions), "
       "a2a splits heads, but a2a+p2p's ring keeps contiguous pieces, so "
       "group g runs 2g+1 half-blocks"},
      {"backward", "2x forward: B = dgrad + attention backward, W = wgrad",
       "Megatron's FLOPs accounting; the zero-bubble split (Qi et al. 2024)"},
      {"element-wise kernels",
       "norms, residual adds, rotary, MLP activation "
       "at HBM speed; backward 2x",
       "roofline: these kernels are memory-bound"},
      {"tp collectives", "not overlapped with compute",
       "Megatron-Core without --tp-comm-overlap"},
      {"cp collectives",
       "all_gather, a2a not overlapped with compute; p2p's ring transfers "
       "overlapped with each step's block (a2a+p2p: its all-to-alls not, its "
       "ring's transfers so); weight gradients reduced over dp*cp",
       "Loom compiles all_gather and a2a as collectives around attention, "
       "p2p as asynchronous collective_permutes waited on before each block; "
       "Megatron's data-parallel group with context parallelism"},
      {"optimizer step", "30 bytes of HBM traffic per (sharded) parameter",
       "Adam: read fp32 grad, master, two moments; write master, moments, "
       "bf16 weight"},
  };
}
