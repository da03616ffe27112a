//===- TrainingStepTest.cpp - The training-step estimate ------------------===//
//
// Megatron's FLOPs and memory arithmetic on small hand-checkable shapes:
// model FLOPs, per-layer FLOPs over tp, activations (34·s·b·h/t with sp),
// ZeRO's division of the optimizer, microbatches in flight from the
// schedule (1F1B p - r, interleaved Megatron's factor), the data-parallel
// reduction, link choice, context parallelism's compute, traffic and
// memory in its four compiled forms (the ring's transfers hidden behind
// its blocks; a2a+p2p's all-to-alls within groups and ring between them),
// learned position tables balanced like rope, the causal mask's imbalance
// over a2a+p2p's contiguous ring pieces, MoE
// layers under both token dispatchers (allgather and alltoall: capacity per
// rank, the all-to-alls' bytes, the tp all-gathers), the etp = 1 foldings
// (whole experts over ep = tp or tp · d), expert data parallelism (ep a
// divisor of dp: the dispatch over the ep group, the expert gradients and
// ZeRO over the edp ranks) and the refusals.
//
//===----------------------------------------------------------------------===//

#include "loom/CostModel/TrainingStep.h"

#include "gtest/gtest.h"

using namespace loom::cost;

namespace {

/// GPT-shaped: heads = kv heads, ffn = 4h, GELU, no biases.
TransformerShape gptShape(int64_t layers = 16) {
  TransformerShape m;
  m.name = "test-gpt";
  m.layers = layers;
  m.hidden = 1024;
  m.heads = 16;
  m.kvHeads = 16;
  m.headDim = 64;
  m.ffn = 4096;
  m.vocab = 32768;
  m.seq = 2048;
  m.gatedMlp = false;
  return m;
}

Cluster preset(const char *name) {
  auto cluster = getClusterPreset(name);
  EXPECT_TRUE(bool(cluster));
  return cluster ? *cluster : Cluster();
}

StepEstimate estimate(const TransformerShape &m, const TrainingPlan &p,
                      const Cluster &c) {
  auto est = estimateTrainingStep(m, p, c);
  EXPECT_TRUE(bool(est)) << llvm::toString(est.takeError());
  return est ? *est : StepEstimate();
}

std::string errorOf(const TransformerShape &m, const TrainingPlan &p,
                    const Cluster &c) {
  auto est = estimateTrainingStep(m, p, c);
  return est ? "" : llvm::toString(est.takeError());
}

TEST(TrainingStepTest, ModelFlopsArePalms) {
  TransformerShape m = gptShape();
  TrainingPlan p;
  p.tp = 8;
  p.gbs = 4;
  StepEstimate est = estimate(m, p, preset("h100-node"));
  double h = 1024, s = 2048, L = 16, V = 32768, B = 4;
  double perLayer = 12 * h * h; // QKV 3h², out h², MLP 8h²
  double forward = 2 * B * s * (L * perLayer + h * V) + 4 * L * B * s * s * h;
  EXPECT_DOUBLE_EQ(est.modelFlopsPerStep, 3 * forward);
  // One layer's forward on one of 8 tp ranks for one microbatch (mbs 1).
  EXPECT_DOUBLE_EQ(est.layer.forwardFlops,
                   (2 * s * perLayer + 4 * s * s * h) / 8);
  EXPECT_EQ(est.tokensPerStep, 4 * 2048);
  EXPECT_EQ(est.microbatches, 4);
  EXPECT_NEAR(est.mfu, est.modelFlopsPerStep / (est.stepTime * 8 * 989e12),
              1e-12);
  EXPECT_GT(est.mfu, 0);
  EXPECT_LT(est.mfu, 0.75);
}

// Korthikanti et al.: 34·s·b·h/t with sp, s·b·h·(10 + 24/t) without; full
// recompute keeps the layer's input, 2·s·b·h/t with sp.
TEST(TrainingStepTest, ActivationsPerLayer) {
  TransformerShape m = gptShape();
  double sbh = 2048.0 * 2 * 1024;
  TrainingPlan p;
  p.tp = 8;
  p.mbs = 2;
  p.gbs = 2;
  p.sp = true;
  Cluster c = preset("h100-node");
  EXPECT_DOUBLE_EQ(estimate(m, p, c).layer.activationBytes, 34 * sbh / 8);
  p.sp = false;
  EXPECT_DOUBLE_EQ(estimate(m, p, c).layer.activationBytes,
                   sbh * (10 + 24.0 / 8));
  p.sp = true;
  p.recompute = Recompute::Full;
  EXPECT_DOUBLE_EQ(estimate(m, p, c).layer.activationBytes, 2 * sbh / 8);
}

// Megatron's distributed optimizer: 18 bytes per parameter without, 6 +
// 12/dp with it.
TEST(TrainingStepTest, ZeroDividesTheOptimizer) {
  TransformerShape m = gptShape();
  TrainingPlan p;
  p.tp = 8;
  p.dp = 2;
  p.gbs = 2;
  Cluster c = preset("h100-ib:2");
  StepEstimate replicated = estimate(m, p, c);
  const PipelineRankEstimate &r0 = replicated.ranks[0];
  EXPECT_DOUBLE_EQ(r0.paramBytes + r0.gradBytes + r0.optimizerBytes,
                   18 * r0.params);
  p.zero = 1;
  StepEstimate sharded = estimate(m, p, c);
  const PipelineRankEstimate &r1 = sharded.ranks[0];
  EXPECT_DOUBLE_EQ(r1.paramBytes + r1.gradBytes + r1.optimizerBytes,
                   (6 + 12.0 / 2) * r1.params);

  // The gradient reduction: an fp32 all-reduce over the two nodes; with
  // ZeRO a reduce-scatter of the gradients and an all-gather of the bf16
  // parameters.
  double params = r0.params;
  EXPECT_DOUBLE_EQ(r0.gradReduce, collectiveTime(Collective::AllReduce, 2,
                                                 4 * params, c.interNode));
  EXPECT_DOUBLE_EQ(
      r1.gradReduce,
      collectiveTime(Collective::ReduceScatter, 2, 4 * params, c.interNode) +
          collectiveTime(Collective::AllGather, 2, 2 * params, c.interNode));
  ASSERT_EQ(sharded.traffic.size(), 4u);
  EXPECT_EQ(sharded.traffic[0].axis, MeshAxisKind::Tp);
  EXPECT_TRUE(sharded.traffic[0].intraNode);
  EXPECT_EQ(sharded.traffic[1].axis, MeshAxisKind::Cp);
  EXPECT_EQ(sharded.traffic[1].collectives, 0);
  EXPECT_EQ(sharded.traffic[3].axis, MeshAxisKind::Dp);
  EXPECT_FALSE(sharded.traffic[3].intraNode);
  EXPECT_EQ(sharded.traffic[3].collectives, 2);
}

// 1F1B keeps p - r microbatches on rank r; interleaved keeps Megatron's
// L · (1 + (p - 1)/(p · v)) layers' worth on the first rank.
TEST(TrainingStepTest, MicrobatchesInFlight) {
  TransformerShape m = gptShape(16);
  TrainingPlan p;
  p.pp = 4;
  p.dp = 2;
  p.gbs = 16; // 8 microbatches
  Cluster c = preset("h100-node");
  StepEstimate oneFOneB = estimate(m, p, c);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(oneFOneB.ranks[r].peakInFlight, 4 - r) << r;
    EXPECT_EQ(oneFOneB.ranks[r].peakInFlightLayers, (4 - r) * 4) << r;
  }
  p.vpp = 2; // 1F1B with vpp > 1 is Megatron's interleaved schedule
  StepEstimate interleaved = estimate(m, p, c);
  EXPECT_EQ(interleaved.schedule.name, "interleaved");
  EXPECT_EQ(interleaved.ranks[0].peakInFlightLayers,
            int64_t(16 * (1 + 3.0 / 8)));
  EXPECT_GT(interleaved.ranks[0].activationBytes,
            oneFOneB.ranks[0].activationBytes);
  EXPECT_LT(interleaved.bubbleFraction, oneFOneB.bubbleFraction);
}

// The stages: even layers, embedding on the first, output layer on the
// last; the simulated step ends after the slowest rank's reduction.
TEST(TrainingStepTest, StagesAndStep) {
  TransformerShape m = gptShape(16);
  TrainingPlan p;
  p.tp = 2;
  p.pp = 4;
  p.gbs = 8;
  StepEstimate est = estimate(m, p, preset("h100-node"));
  ASSERT_EQ(est.stages.size(), 4u);
  EXPECT_TRUE(est.stages[0].embedding);
  EXPECT_TRUE(est.stages[3].output);
  EXPECT_EQ(est.stages[1].layers, 4);
  EXPECT_DOUBLE_EQ(est.stages[1].costs.f, 4 * est.layer.forward);
  EXPECT_GT(est.stages[3].costs.f, est.stages[1].costs.f);
  // tp=2, dp=1, pp=4 in one node: the transfer runs on NVLink.
  double bytes = 2.0 * 2048 * 1024;
  EXPECT_DOUBLE_EQ(est.stages[1].costs.transfer, 1e-6 + bytes / 450e9);
  double latest = 0;
  for (const PipelineRankEstimate &r : est.ranks)
    latest = std::max(latest, r.finish);
  EXPECT_DOUBLE_EQ(est.stepTime, latest);
  EXPECT_GE(est.stepTime, est.pipelineTime);
  EXPECT_NEAR(est.tokensPerSecond * est.stepTime, 8 * 2048, 1e-6);
}

// Zero bubble: W splits off the backward; B + W is the full backward.
TEST(TrainingStepTest, ZeroBubbleSplitsTheBackward) {
  TransformerShape m = gptShape(16);
  TrainingPlan p;
  p.pp = 4;
  p.dp = 2;
  p.gbs = 16;
  Cluster c = preset("h100-node");
  StepEstimate f1b = estimate(m, p, c);
  p.schedule = "zb-h1";
  StepEstimate zb = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(zb.layer.weightGrad, zb.layer.matmul);
  EXPECT_LT(zb.bubbleFraction, f1b.bubbleFraction);
  EXPECT_LT(zb.pipelineTime, f1b.pipelineTime);
}

TEST(TrainingStepTest, Refusals) {
  TransformerShape m = gptShape(16);
  Cluster c = preset("h100-ib:2");
  TrainingPlan p;
  p.tp = 8;
  EXPECT_EQ(errorOf(m, p, c), "the plan runs on tp*cp*pp*dp = 8 GPUs, the "
                              "cluster 'h100-ib:2' has 16");
  p.pp = 2;
  p.vpp = 3;
  EXPECT_EQ(errorOf(m, p, c), "layers (16) is not a multiple of pp*vpp (6)");
  p.vpp = 1;
  p.gbs = 3;
  p.mbs = 2;
  EXPECT_EQ(errorOf(m, p, c), "gbs (3) is not a multiple of mbs*dp (2)");
  p.gbs = 4;
  p.mbs = 1;
  p.vpp = 2;
  p.schedule = "interleaved";
  p.gbs = 3;
  EXPECT_EQ(errorOf(m, p, c).rfind("interleaved-microbatches: ", 0), 0u)
      << errorOf(m, p, c);
  TrainingPlan zbv;
  zbv.pp = 2;
  zbv.vpp = 2;
  zbv.dp = 8;
  zbv.gbs = 16;
  zbv.schedule = "zb-h1";
  EXPECT_EQ(errorOf(m, zbv, c),
            "vpp (2) needs the interleaved schedule, got zb-h1");
  zbv.pp = 1;
  zbv.dp = 16;
  EXPECT_EQ(errorOf(m, zbv, c), "vpp (2) needs pp > 1");
  TrainingPlan wide;
  wide.tp = 16;
  m.heads = 24;
  m.kvHeads = 24;
  EXPECT_EQ(errorOf(m, wide, c), "heads (24) is not a multiple of tp (16)");
}

/// Llama-shaped (grouped-query attention, SwiGLU) for context parallelism:
/// 32 heads, 8 key/value heads, long sequences.
TransformerShape llamaShape() {
  TransformerShape m;
  m.name = "test-llama";
  m.layers = 8;
  m.hidden = 4096;
  m.heads = 32;
  m.kvHeads = 8;
  m.headDim = 128;
  m.ffn = 14336;
  m.vocab = 131072;
  m.seq = 8192;
  return m;
}

TrainingPlan cpPlan(int64_t cp, CpComm comm) {
  TrainingPlan p;
  p.tp = 4;
  p.sp = true;
  p.cp = cp;
  p.cpComm = comm;
  p.dp = 4 / cp;
  p.gbs = 8;
  return p;
}

// Each cp rank holds seq / cp positions: the weight matmuls take half the
// time at cp = 2, and so do a layer's activations. The attention is half
// of its accounted FLOPs too (its queries against every key, or every
// position on heads / cp heads), balanced under the causal mask by
// Megatron's load-balanced chunks (p2p, all_gather; with rope or a learned
// position table, read in the same order) or by heads (a2a). Same world
// size: cp = 2 takes a dp rank's place.
TEST(TrainingStepTest, ContextParallelHalvesTheLayer) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  StepEstimate one = estimate(m, cpPlan(1, CpComm::P2P), c);
  for (CpComm comm : {CpComm::P2P, CpComm::AllGather, CpComm::A2A}) {
    StepEstimate two = estimate(m, cpPlan(2, comm), c);
    const LayerCost &a = one.layer, &b = two.layer;
    EXPECT_NEAR(b.matmul / a.matmul, 0.5, 0.02);
    EXPECT_NEAR(b.attention / a.attention, 0.5, 0.02);
    EXPECT_DOUBLE_EQ(b.forwardFlops, a.forwardFlops / 2);
    EXPECT_NEAR(b.elementwise / a.elementwise, 0.5, 1e-9);
    // The model's FLOPs and tokens do not depend on the plan.
    EXPECT_DOUBLE_EQ(two.modelFlopsPerStep, one.modelFlopsPerStep);
    EXPECT_EQ(two.tokensPerStep, one.tokensPerStep);
    // The tp collectives move half the positions (their latency aside).
    EXPECT_NEAR(b.tpComm / a.tpComm, 0.5, 0.02);
    EXPECT_GT(b.cpTransfer, 0);
    // The ring's transfers within a node hide behind its blocks.
    if (comm == CpComm::P2P)
      EXPECT_EQ(b.cpComm, 0);
    else
      EXPECT_EQ(b.cpComm, b.cpTransfer);
    EXPECT_EQ(a.cpComm, 0);
    EXPECT_EQ(a.cpTransfer, 0);
  }
  // cp = 4, with rope or a learned position table: every rank runs 4 of
  // the 16 half-blocks under p2p and all_gather (the learned table was
  // priced as contiguous pieces, 7 of 16 on the last rank, before Loom
  // load-balanced it). a2a+p2p in groups of 2 keeps a ring of 2 contiguous
  // pieces: the last group runs 3 of their 4 half-blocks of (S/2)², 6 of
  // the 16, either way.
  TransformerShape learned = m;
  learned.learnedPositions = true;
  for (CpComm comm : {CpComm::P2P, CpComm::AllGather, CpComm::A2AP2P}) {
    TrainingPlan four = cpPlan(4, comm);
    four.dp = 1;
    four.gbs = 1;
    four.cpA2A = comm == CpComm::A2AP2P ? 2 : 1;
    TrainingPlan base = four;
    base.cp = 1;
    base.cpA2A = 1;
    base.dp = 4;
    base.gbs = 4;
    double share = comm == CpComm::A2AP2P ? 6.0 / 16 : 4.0 / 16;
    for (const TransformerShape &shape : {m, learned}) {
      StepEstimate est = estimate(shape, four, c);
      EXPECT_NEAR(est.layer.attention /
                      estimate(shape, base, c).layer.attention,
                  share, 1e-9);
      // The accounted FLOPs keep Megatron's 1/cp.
      EXPECT_DOUBLE_EQ(est.layer.forwardFlops,
                       estimate(shape, base, c).layer.forwardFlops / 4);
    }
    // The table changes nothing of cp's pricing.
    EXPECT_DOUBLE_EQ(estimate(learned, four, c).layer.attention,
                     estimate(m, four, c).layer.attention);
    EXPECT_DOUBLE_EQ(estimate(learned, four, c).layer.cpComm,
                     estimate(m, four, c).layer.cpComm);
  }
  StepEstimate allGather = estimate(m, cpPlan(2, CpComm::AllGather), c);
  EXPECT_DOUBLE_EQ(allGather.layer.activationBytes,
                   one.layer.activationBytes / 2);
  // Ulysses keeps the attention output split by heads as well.
  StepEstimate a2a = estimate(m, cpPlan(2, CpComm::A2A), c);
  double tokens = 8192 / 2, queryWidth = 32 * 128 / 4;
  EXPECT_DOUBLE_EQ(a2a.layer.activationBytes,
                   one.layer.activationBytes / 2 + 2 * tokens * queryWidth);
}

// The bytes each form moves per layer and microbatch over cp (bus bytes:
// NCCL's factor · size). all_gather: each of K and V gathers the whole
// sequence's [seq, kv/tp], (cp - 1)/cp of it through each link, twice
// forward and again backward, and dK, dV reduce-scatter the same size.
// a2a: q, k, v, out forward and their gradients backward, each the rank's
// [seq/cp, width] buffer of which (cp - 1)/cp leaves.
TEST(TrainingStepTest, ContextParallelTraffic) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  double seq = 8192, kvWidth = 8 * 128 / 2, queryWidth = 32 * 128 / 2;
  double layers = 8;
  for (int64_t cp : {2, 4}) {
    double share = double(cp - 1) / double(cp);
    TrainingPlan p = cpPlan(cp, CpComm::AllGather);
    p.tp = 2;
    p.dp = 8 / cp;
    p.gbs = 8 / cp;
    double perStep = layers * double(p.gbs / p.dp); // layer-microbatches
    StepEstimate allGather = estimate(m, p, c);
    const AxisTraffic &ag = allGather.traffic[1];
    EXPECT_EQ(ag.axis, MeshAxisKind::Cp);
    EXPECT_EQ(ag.groupSize, cp);
    double kv = 2 * seq * kvWidth; // bf16 bytes of one gathered K or V
    EXPECT_EQ(ag.collectives, int64_t(6 * perStep));
    EXPECT_NEAR(ag.busBytes, perStep * 6 * share * kv, 1e-3);
    // The forward's two gathers, each on the cp group's link.
    const Link &link = cp * p.tp <= 8 ? c.intraNode : c.interNode;
    EXPECT_DOUBLE_EQ(allGather.layer.cpComm,
                     2 * collectiveTime(Collective::AllGather, cp, kv, link));

    p.cpComm = CpComm::A2A;
    StepEstimate a2a = estimate(m, p, c);
    const AxisTraffic &u = a2a.traffic[1];
    double local = seq / double(cp);
    double perLayer = 2 * 2 * local * (2 * queryWidth + 2 * kvWidth);
    EXPECT_EQ(u.collectives, int64_t(8 * perStep));
    EXPECT_NEAR(u.busBytes, perStep * share * perLayer, 1e-3);
    // Per layer, in bf16 bytes before the (cp - 1)/cp share: Ulysses
    // 4 · seq/cp · (2q + 2k), all_gather 12 · seq · k. With q = 4k (four
    // query heads per key/value head) that is 40/cp against 12 in units
    // of seq · k: a2a moves more at cp = 2 and less from cp = 4 on.
    double ratio = u.busBytes / ag.busBytes;
    EXPECT_NEAR(ratio, 40 / double(cp) / 12, 1e-9);
    EXPECT_EQ(ratio > 1, cp == 2);
  }
}

// The gradient group is dp · cp: weight gradients are partial sums over
// the positions of every cp rank, reduced (and ZeRO-sharded) with dp.
// all_gather's whole-sequence K, V, dK, dV exist one layer at a time.
TEST(TrainingStepTest, ContextParallelGradientsAndMemory) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  TrainingPlan p = cpPlan(2, CpComm::AllGather);
  p.tp = 8; // tp in a node, cp across the two
  p.dp = 1;
  p.gbs = 2;
  p.zero = 1;
  StepEstimate est = estimate(m, p, c);
  const PipelineRankEstimate &r = est.ranks[0];
  EXPECT_FALSE(est.traffic[1].intraNode);
  EXPECT_EQ(est.traffic[3].groupSize, 2);
  EXPECT_FALSE(est.traffic[3].intraNode);
  EXPECT_DOUBLE_EQ(r.optimizerBytes, 12 * r.params / 2);
  EXPECT_DOUBLE_EQ(
      r.gradReduce,
      collectiveTime(Collective::ReduceScatter, 2, 4 * r.params, c.interNode) +
          collectiveTime(Collective::AllGather, 2, 2 * r.params, c.interNode));
  // Memory: 8 layers in flight (one microbatch), the logits, and one
  // layer's whole-sequence K, V, dK and dV.
  double kvWidth = 128; // 8 kv heads over tp = 8
  double gathered = 4 * 2 * 8192 * kvWidth;
  double logits = 4 * (8192 / 2) * (131072 / 8);
  EXPECT_DOUBLE_EQ(r.activationBytes,
                   8 * est.layer.activationBytes + logits + gathered);
  p.cpComm = CpComm::A2A;
  m.kvHeads = 16; // a2a splits them over tp · cp
  StepEstimate a2a = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(a2a.ranks[0].activationBytes,
                   8 * a2a.layer.activationBytes + logits);
}

// Ring attention (p2p): per layer and microbatch cp - 1 forward steps each
// passing the rank's K and V blocks ([seq/cp, kv/tp] each) to the next
// rank, cp - 1 backward steps passing K, V and the travelling dK, dV, and
// one last transfer of dK, dV to their owner: point-to-point transfers on
// the cp link (bus factor 1). Each step's transfer overlaps its block
// (the rank's attention / cp, its backward's / cp in the backward), and
// only the excess is exposed. Memory: two blocks of the backward's K, V,
// dK, dV in flight, no whole-sequence buffer.
TEST(TrainingStepTest, ContextParallelRing) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  double seq = 8192;
  for (int64_t cp : {2, 4}) {
    TrainingPlan p = cpPlan(cp, CpComm::P2P);
    p.tp = 16 / cp; // a node of tp ranks: the cp ring crosses nodes
    p.dp = 1;
    p.gbs = 1;
    double kvWidth = 8 * 128 / double(std::min<int64_t>(p.tp, 8));
    StepEstimate ring = estimate(m, p, c);
    const AxisTraffic &t = ring.traffic[1];
    EXPECT_EQ(t.axis, MeshAxisKind::Cp);
    EXPECT_FALSE(t.intraNode);
    double layers = 8, block = 2 * seq / double(cp) * kvWidth;
    int64_t perLayer = 2 * (cp - 1) + 4 * (cp - 1) + 2;
    EXPECT_EQ(t.collectives, int64_t(layers) * perLayer);
    EXPECT_NEAR(t.busBytes, layers * double(perLayer) * block, 1e-3);

    const LayerCost &l = ring.layer;
    double send = collectiveTime(Collective::SendRecv, 2, block, c.interNode);
    double forwardBlock = l.attention / double(cp);
    double backwardBlock = 2 * forwardBlock; // compute-bound at seq 8192
    EXPECT_DOUBLE_EQ(l.cpTransfer, double(2 * (cp - 1)) * send);
    EXPECT_GT(2 * send, forwardBlock); // over InfiniBand: partly exposed
    EXPECT_NEAR(l.cpComm, double(cp - 1) * (2 * send - forwardBlock), 1e-12);
    EXPECT_DOUBLE_EQ(l.forward, l.matmul + l.attention + l.elementwise +
                                    l.tpComm + l.cpComm);
    // The backward against all_gather's: the same compute, the ring's
    // exposed steps instead of 2 gathers and 2 reduce-scatters.
    double exposedBackward =
        double(cp - 1) * std::max(0.0, 4 * send - backwardBlock) +
        std::max(0.0, 2 * send - backwardBlock);
    TrainingPlan gather = p;
    gather.cpComm = CpComm::AllGather;
    StepEstimate ag = estimate(m, gather, c);
    double kv = 2 * seq * kvWidth;
    double agBackward =
        2 * collectiveTime(Collective::AllGather, cp, kv, c.interNode) +
        2 * collectiveTime(Collective::ReduceScatter, cp, kv, c.interNode);
    EXPECT_DOUBLE_EQ(ag.layer.attention, l.attention);
    EXPECT_NEAR(l.inputGrad - ag.layer.inputGrad, exposedBackward - agBackward,
                1e-12);
    // Two blocks in flight of K, V, dK, dV instead of the whole sequence's.
    double logits = 4 * seq / double(cp) * (131072 / double(p.tp));
    EXPECT_DOUBLE_EQ(ring.ranks[0].activationBytes,
                     8 * l.activationBytes + logits + 2 * 4 * block);
    EXPECT_DOUBLE_EQ(ag.ranks[0].activationBytes,
                     8 * l.activationBytes + logits + 4 * kv);
  }
}

// Hierarchical context parallelism (a2a+p2p, cp_a2a = 2 of cp = 4, tp =
// 4 on 8-GPU nodes): all-to-alls within groups of 2 consecutive cp ranks
// (4 apart: in a node), a ring over the 2 groups (8 apart: across nodes).
// Per layer and microbatch a2a's 8 all-to-alls of the rank's [seq/cp,
// width] buffers, q, k, v, out each way, over 2 ranks (bus factor 1/2);
// the ring's 1 forward step of K, V, 1 backward step of K, V, dK, dV and
// the last dK, dV: 8 send/recvs of the group's seq/2 positions on
// kv / (tp · 2) heads, as many bytes as p2p's block at cp = 4, each
// overlapped with the rank's attention / 2. Attention runs the group's
// seq/2 queries on heads / (tp · 2) against every key: the last of the two
// contiguous pieces has 3 of the 4 half-blocks, 3/2 of the balanced share.
TEST(TrainingStepTest, ContextParallelHierarchical) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  TrainingPlan p = cpPlan(4, CpComm::A2AP2P);
  p.cpA2A = 2;
  p.tp = 4;
  p.dp = 1;
  p.gbs = 1;
  StepEstimate est = estimate(m, p, c);
  double layers = 8, tokens = 8192 / 4;
  double queryWidth = 32 * 128 / 4, kvWidth = 8 * 128 / 4;

  // The all-to-alls, within a node.
  const AxisTraffic &a2a = est.traffic[1];
  EXPECT_EQ(a2a.axis, MeshAxisKind::Cp);
  EXPECT_EQ(a2a.groupSize, 2);
  EXPECT_TRUE(a2a.intraNode);
  double q = 2 * tokens * queryWidth, kv = 2 * tokens * kvWidth;
  EXPECT_DOUBLE_EQ(q, 4194304);  // 2 · 2048 · 1024 bytes
  EXPECT_DOUBLE_EQ(kv, 1048576); // 2 · 2048 · 256
  EXPECT_EQ(a2a.collectives, int64_t(8 * layers));
  EXPECT_NEAR(a2a.busBytes, layers * 2 * 0.5 * (2 * q + 2 * kv), 1e-3);
  EXPECT_NEAR(a2a.busBytes, 8 * 10485760.0, 1e-3);

  // The ring, across nodes: 2 groups, 1 step each way.
  const AxisTraffic &ring = est.cpRing;
  EXPECT_EQ(ring.axis, MeshAxisKind::Cp);
  EXPECT_EQ(ring.groupSize, 2);
  EXPECT_FALSE(ring.intraNode);
  double block = 2 * (8192 / 2) * (kvWidth / 2); // the group's K or V
  EXPECT_DOUBLE_EQ(block, 1048576);
  EXPECT_EQ(ring.collectives, int64_t(8 * layers));
  EXPECT_NEAR(ring.busBytes, layers * 8 * block, 1e-3);

  // The forward: the all-to-alls in full, the ring's step exposed past its
  // block (the attention over the 2 groups).
  const LayerCost &l = est.layer;
  double allToAlls = 0;
  for (double size : {q, kv, kv, q})
    allToAlls += collectiveTime(Collective::AllToAll, 2, size, c.intraNode);
  double send = collectiveTime(Collective::SendRecv, 2, block, c.interNode);
  EXPECT_NEAR(l.cpTransfer, allToAlls + 2 * send, 1e-12);
  EXPECT_DOUBLE_EQ(l.cpRingTransfer, 2 * send);
  EXPECT_NEAR(l.cpComm, allToAlls + std::max(0.0, 2 * send - l.attention / 2),
              1e-12);
  EXPECT_DOUBLE_EQ(l.forward, l.matmul + l.attention + l.elementwise +
                                  l.tpComm + l.cpComm);

  // Against the ring over all four ranks: the same accounted FLOPs, 3/2 of
  // its attention (compute-bound), Ulysses' extra heads-split output.
  TrainingPlan flat = p;
  flat.cpComm = CpComm::P2P;
  flat.cpA2A = 1;
  StepEstimate p2p = estimate(m, flat, c);
  EXPECT_DOUBLE_EQ(l.forwardFlops, p2p.layer.forwardFlops);
  EXPECT_NEAR(l.attention / p2p.layer.attention, 1.5, 1e-9);
  EXPECT_EQ(p2p.cpRing.collectives, 0);
  EXPECT_EQ(p2p.traffic[1].groupSize, 4);
  EXPECT_DOUBLE_EQ(l.activationBytes,
                   p2p.layer.activationBytes + 2 * tokens * queryWidth);
  // Memory: two ring blocks in flight of K, V, dK, dV, as p2p's.
  double logits = 4 * tokens * (131072 / 4);
  EXPECT_DOUBLE_EQ(est.ranks[0].activationBytes,
                   8 * l.activationBytes + logits + 2 * 4 * block);
  EXPECT_DOUBLE_EQ(p2p.ranks[0].activationBytes,
                   8 * p2p.layer.activationBytes + logits + 2 * 4 * block);

  // Full recompute runs the forward's all-to-alls and ring again.
  p.recompute = Recompute::Full;
  StepEstimate full = estimate(m, p, c);
  EXPECT_EQ(full.traffic[1].collectives, int64_t(12 * layers));
  EXPECT_EQ(full.cpRing.collectives, int64_t(10 * layers));

  // A MoE model with it is not compiled.
  TransformerShape moe = m;
  moe.experts = 4;
  moe.topK = 2;
  TrainingPlan withExperts = p;
  withExperts.recompute = Recompute::None;
  withExperts.ep = 4;
  EXPECT_EQ(errorOf(moe, withExperts, c),
            "MoE layers with cp_comm=a2a+p2p (cp=4): the cost model does "
            "not price experts with hierarchical context parallelism yet; "
            "give cp_comm=p2p, all_gather or a2a");
}

TEST(TrainingStepTest, ContextParallelRefusals) {
  TransformerShape m = llamaShape();
  Cluster c = preset("h100-ib:2");
  TrainingPlan p = cpPlan(2, CpComm::P2P);
  p.tp = 8;
  p.dp = 1;
  EXPECT_EQ(errorOf(m, p, c), ""); // the ring is priced
  // a2a+p2p's groups: a divisor of cp strictly between 1 and cp, and only
  // with a2a+p2p.
  p.cpA2A = 2;
  EXPECT_EQ(errorOf(m, p, c),
            "cp_a2a (2) sets the all-to-all groups of cp_comm=a2a+p2p (with "
            "cp > 1) [cp-a2a-needs-hierarchical]");
  p.cpComm = CpComm::A2AP2P;
  EXPECT_EQ(errorOf(m, p, c), "cp_a2a (2) must be a divisor of cp (2) "
                              "strictly between 1 and cp [cp-a2a-size]");
  TrainingPlan h = p;
  h.tp = 4;
  h.cp = 4;
  for (int64_t bad : {1, 3, 4}) {
    h.cpA2A = bad;
    EXPECT_EQ(errorOf(m, h, c), "cp_a2a (" + std::to_string(bad) +
                                    ") must be a divisor of cp (4) strictly "
                                    "between 1 and cp [cp-a2a-size]");
  }
  h.cpA2A = 2;
  EXPECT_EQ(errorOf(m, h, c), "");
  // Its all-to-alls split the heads over tp · cp_a2a = 8.
  TransformerShape fewKv = m;
  fewKv.kvHeads = 4;
  EXPECT_EQ(errorOf(fewKv, h, c), "cp_comm=a2a+p2p splits kv_heads (4) over "
                                  "tp*cp_a2a (8), which does not divide them");
  p.cpA2A = 1;
  // Llama's 8 key/value heads do not split over tp · cp = 16.
  p.cpComm = CpComm::A2A;
  EXPECT_EQ(errorOf(m, p, c), "cp_comm=a2a splits kv_heads (8) over tp*cp "
                              "(16), which does not divide them");
  p.cpComm = CpComm::AllGather;
  m.seq = 8190;
  EXPECT_EQ(errorOf(m, p, c), "seq (8190) is not a multiple of 2*cp (4)");
  m.seq = 8192;
  p.dp = 2;
  EXPECT_EQ(errorOf(m, p, c), "the plan runs on tp*cp*pp*dp = 32 GPUs, the "
                              "cluster 'h100-ib:2' has 16");
}

} // namespace

namespace {

/// A small MoE: 4 SwiGLU experts of width 2048, top-2, capacity factor 1.
TransformerShape moeShape() {
  TransformerShape m = gptShape(4);
  m.gatedMlp = true;
  m.ffn = 2048;
  m.experts = 4;
  m.topK = 2;
  return m;
}

/// One node of as many H100s as the plan uses.
Cluster nodeFor(const TrainingPlan &p) {
  Cluster c = preset("h100-node");
  c.gpusPerNode = p.tp * p.cp * p.pp * p.dp;
  return c;
}

TrainingPlan moePlan(int64_t ep, int64_t zero = 0) {
  TrainingPlan p;
  p.dp = 2;
  p.ep = ep;
  p.zero = zero;
  p.gbs = 2;
  return p;
}

} // namespace

// ep = 2 runs the rank's 2 experts on their capacity slots: capacity =
// 2 · 2048 tokens · top-2 / 4 experts = 2048 each, 4096 rows = T·k/ep;
// plain dp runs all 4 experts on all of them: twice the rows, the expert
// FLOPs and (compute-bound) the expert matmul time.
TEST(TrainingStepTest, ExpertParallelismHalvesTheExpertWork) {
  TransformerShape m = moeShape();
  Cluster c = nodeFor(moePlan(1));
  StepEstimate ep = estimate(m, moePlan(2), c);
  StepEstimate dp = estimate(m, moePlan(1), c);
  EXPECT_DOUBLE_EQ(ep.layer.expertRows, 4096);
  EXPECT_DOUBLE_EQ(dp.layer.expertRows, 8192);
  double expertFlops = 2 * 4096.0 * 3 * 1024 * 2048;
  EXPECT_DOUBLE_EQ(dp.layer.forwardFlops - ep.layer.forwardFlops, expertFlops);
  EXPECT_NEAR(dp.layer.expertMatmul / ep.layer.expertMatmul, 2, 1e-9);
  EXPECT_DOUBLE_EQ(dp.layer.expertParams, 2 * ep.layer.expertParams);
  EXPECT_DOUBLE_EQ(ep.layer.expertParams, 2 * 3 * 1024.0 * 2048);
  // Model FLOPs count a token's top-2 experts either way.
  EXPECT_DOUBLE_EQ(ep.modelFlopsPerStep, dp.modelFlopsPerStep);
  EXPECT_LT(ep.stepTime, dp.stepTime);
}

// The dispatcher per layer and microbatch: forward the tokens (bf16), the
// indices (i32) and weights (bf16) all-gathered over dp · tp and, with ep,
// the combined tokens reduce-scattered over dp; backward the same gathers
// (the output gradient for the tokens), the weights' and tokens' gradients
// reduce-scattered. Without ep nothing is reduce-scattered.
TEST(TrainingStepTest, DispatcherBytes) {
  TransformerShape m = moeShape();
  Cluster c = nodeFor(moePlan(1));
  double tokens = 2 * 2048.0; // the dp group's microbatch
  double tokenBytes = 2 * tokens * 1024, indexBytes = 4 * tokens * 2,
         weightBytes = 2 * tokens * 2;
  double gather = busBandwidthFactor(Collective::AllGather, 2);
  double scatter = busBandwidthFactor(Collective::ReduceScatter, 2);
  double gathers = 2 * gather * (tokenBytes + indexBytes + weightBytes);
  double scatters = scatter * (2 * tokenBytes + weightBytes);
  StepEstimate ep = estimate(m, moePlan(2), c);
  EXPECT_EQ(ep.dispatcher.groupSize, 2);
  EXPECT_EQ(ep.dispatcher.collectives, 4 * 9);
  EXPECT_DOUBLE_EQ(ep.dispatcher.busBytes, 4 * (gathers + scatters));
  StepEstimate dp = estimate(m, moePlan(1), c);
  EXPECT_EQ(dp.dispatcher.collectives, 4 * 6);
  EXPECT_DOUBLE_EQ(dp.dispatcher.busBytes, 4 * gathers);
  // A dense model has no dispatcher.
  EXPECT_EQ(estimate(gptShape(4), moePlan(1), c).dispatcher.collectives, 0);
}

// Under ep the expert weights are split over dp: their gradients are not
// reduced, and ZeRO (which shards over dp) leaves them whole; without ep
// they are replicated and ZeRO shards them like the dense weights.
TEST(TrainingStepTest, ExpertMemoryAndReduction) {
  TransformerShape m = moeShape();
  Cluster c = nodeFor(moePlan(1));
  for (int64_t zero : {0, 1}) {
    StepEstimate ep = estimate(m, moePlan(2, zero), c);
    const PipelineRankEstimate &r = ep.ranks[0];
    double experts = 4 * ep.layer.expertParams;
    EXPECT_DOUBLE_EQ(r.expertParams, experts);
    double dense = r.params - experts;
    EXPECT_NEAR(r.optimizerBytes, 12 * (dense / (zero ? 2 : 1) + experts),
                1e-3);
    EXPECT_NEAR(r.gradBytes, 4 * r.params, 1e-3);
    if (zero == 0)
      EXPECT_NEAR(ep.traffic[3].busBytes,
                  busBandwidthFactor(Collective::AllReduce, 2) * 4 * dense,
                  1e-3);
  }
  StepEstimate dp = estimate(m, moePlan(1, 1), c);
  const PipelineRankEstimate &r = dp.ranks[0];
  EXPECT_NEAR(r.optimizerBytes, 12 * r.params / 2, 1e-3);
  EXPECT_DOUBLE_EQ(r.expertParams, 4 * 4 * 3 * 1024.0 * 2048);
  // Dispatch and expert activations: twice the rows without ep.
  StepEstimate ep = estimate(m, moePlan(2), c);
  EXPECT_GT(dp.layer.activationBytes, ep.layer.activationBytes);
}

// The compiler's refusals, by rule.
TEST(TrainingStepTest, ExpertParallelRefusals) {
  TransformerShape m = moeShape();
  Cluster c = nodeFor(moePlan(1));
  TrainingPlan p = moePlan(2);
  p.dp = 4;
  p.gbs = 4;
  p.tp = 2;
  p.sp = true;
  EXPECT_EQ(errorOf(m, p, nodeFor(p)), ""); // ep divides dp: priced
  // ep = 4 does not divide dp = 6.
  p.dp = 6;
  p.gbs = 6;
  p.ep = 4;
  EXPECT_NE(
      errorOf(m, p, nodeFor(p)).find("or end inside dp at a divisor of it"),
      std::string::npos);
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[unsupported-ep]"),
            std::string::npos);
  p = moePlan(2);
  p.dispatcher = Dispatcher::AllToAll; // compiled: priced (below)
  EXPECT_EQ(errorOf(m, p, c), "");
  p = moePlan(2);
  p.tp = 4;
  p.sp = true;
  p.etp = 2; // part of tp
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[unsupported-etp]"),
            std::string::npos);
  p.etp = 1; // ep = 2 would cover half of tp = 4
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[unsupported-ep]"),
            std::string::npos);
  p.etp = 0;
  p.sp = false;
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[moe-tp-sp]"), std::string::npos);
  p = moePlan(2);
  p.cp = 2;
  p.tp = 2;
  p.sp = true;
  EXPECT_EQ(errorOf(m, p, nodeFor(p)), ""); // ep = cp: priced (below)
  EXPECT_NE(errorOf(gptShape(4), moePlan(2), c).find("[ep-needs-moe]"),
            std::string::npos);
}

// Megatron's alltoall dispatcher (ep = dp = 2): each rank dispatches its own
// 2048 tokens into the slots of all 4 experts, capacity counted per rank:
// ceil(2048 · 2 / 4) = 1024, the buffer [4, 1024, 1024] in bf16. Per layer
// and microbatch two all-to-alls of it over the 2 data ranks forward and
// two backward, nothing all-gathered or reduce-scattered over dp; the
// grouped matmuls run the rank's 2 experts over 2 · 1024 slots each: 4096
// rows, as many as allgather's 2 experts' capacity in the dp group's 4096
// tokens.
TEST(TrainingStepTest, AllToAllDispatcherBytes) {
  TransformerShape m = moeShape();
  TrainingPlan p = moePlan(2);
  p.dispatcher = Dispatcher::AllToAll;
  Cluster c = nodeFor(p);
  StepEstimate a2a = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertRows, 4 * 1024);
  double slotBytes = 2 * 4 * 1024.0 * 1024;
  double perLayer = 4; // 2 forward, 2 backward; 1 microbatch, 4 layers
  EXPECT_EQ(a2a.dispatcher.groupSize, 2);
  EXPECT_TRUE(a2a.dispatcher.intraNode);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 4);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes, 4 * perLayer * 0.5 * slotBytes);
  double allToAll =
      c.intraNode.latency + 0.5 * slotBytes / c.intraNode.bandwidth;
  EXPECT_DOUBLE_EQ(a2a.layer.dispatcherComm, 2 * allToAll);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.time, 4 * perLayer * allToAll);
  EXPECT_EQ(a2a.layer.dispatcherTpComm, 0);
  // The same expert work and weights as allgather's; the expert gradients
  // stay unreduced over dp either way.
  StepEstimate ag = estimate(m, moePlan(2), c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertMatmul, ag.layer.expertMatmul);
  EXPECT_DOUBLE_EQ(a2a.layer.expertParams, ag.layer.expertParams);
  EXPECT_DOUBLE_EQ(a2a.traffic[3].busBytes, ag.traffic[3].busBytes);
  EXPECT_EQ(a2a.traffic[0].collectives, 0); // no tp
  // Memory: the indices and weights kept (i32 + bf16, [T, 2]) and the
  // transient tokens and sums ([T, h] twice) are of the rank's 2048 tokens
  // instead of the group's 4096; the all-to-all adds one slot buffer
  // [4, 1024, h] in flight.
  double fewer = 4096 - 2048;
  EXPECT_NEAR(ag.layer.activationBytes - a2a.layer.activationBytes,
              6 * 2 * fewer, 1e-6);
  double layers = 4; // pp = 1: every layer in flight
  EXPECT_NEAR(ag.ranks[0].activationBytes - a2a.ranks[0].activationBytes,
              layers * 6 * 2 * fewer + 2 * 2 * fewer * 1024 - slotBytes, 1e-3);
  // Without ep the two dispatchers compile to the same plain-dp program.
  TrainingPlan plain = moePlan(1);
  plain.dispatcher = Dispatcher::AllToAll;
  StepEstimate dp = estimate(m, plain, c);
  StepEstimate dpGather = estimate(m, moePlan(1), c);
  EXPECT_EQ(dp.dispatcher.collectives, dpGather.dispatcher.collectives);
  EXPECT_DOUBLE_EQ(dp.stepTime, dpGather.stepTime);
}

// Capacity per rank: with capacity factor 1.1 each rank's 2048 tokens give
// ceil(1024 · 1.1) = 1127 slots per expert, 4 · 1127 rows on the rank's 2
// experts; allgather counts it over the group's 4096: ceil(2048 · 1.1) =
// 2253, 2 · 2253 rows. Dropless: every token, 2048 per expert and rank.
TEST(TrainingStepTest, AllToAllCapacityPerRank) {
  TransformerShape m = moeShape();
  m.capacityFactor = 1.1;
  TrainingPlan p = moePlan(2);
  p.dispatcher = Dispatcher::AllToAll;
  Cluster c = nodeFor(p);
  EXPECT_DOUBLE_EQ(estimate(m, p, c).layer.expertRows, 4 * 1127);
  EXPECT_DOUBLE_EQ(estimate(m, moePlan(2), c).layer.expertRows, 2 * 2253);
  m.capacityFactor = 0;
  StepEstimate dropless = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(dropless.layer.expertRows, 4 * 2048);
  EXPECT_DOUBLE_EQ(dropless.dispatcher.busBytes,
                   4 * 4 * 0.5 * 2 * 4 * 2048.0 * 1024);
}

// With tp = 2 (sp): the rank's 1024-position shard's tokens (bf16 [T, h]),
// indices (i32 [T, 2]) and weights (bf16 [T, 2]) all-gathered over tp into
// the data rank's 2048 forward, and the same three (weights, indices,
// output gradient) backward: 6 more tp all-gathers per layer and
// microbatch than allgather's, whose gathers span dp · tp instead. The
// experts' output and input gradient are all-reduced over tp
// ([2, 2 · 1024, h]) either way; the all-to-alls stay over the 2 data
// ranks.
TEST(TrainingStepTest, AllToAllDispatcherWithTensorParallelism) {
  TransformerShape m = moeShape();
  TrainingPlan p = moePlan(2);
  p.tp = 2;
  p.sp = true;
  p.dispatcher = Dispatcher::AllToAll;
  Cluster c = nodeFor(p);
  TrainingPlan gather = p;
  gather.dispatcher = Dispatcher::AllGather;
  StepEstimate a2a = estimate(m, p, c), ag = estimate(m, gather, c);
  double tokens = 2048, h = 1024, k = 2;
  double gathered = 2 * tokens * h + 4 * tokens * k + 2 * tokens * k;
  double factor = busBandwidthFactor(Collective::AllGather, 2);
  double layerMicrobatches = 4;
  EXPECT_EQ(a2a.traffic[0].collectives - ag.traffic[0].collectives,
            int64_t(layerMicrobatches * 6));
  EXPECT_NEAR(a2a.traffic[0].busBytes - ag.traffic[0].busBytes,
              layerMicrobatches * 2 * factor * gathered, 1e-3);
  double tpGathers = 0;
  for (double size : {2 * tokens * h, 4 * tokens * k, 2 * tokens * k})
    tpGathers += collectiveTime(Collective::AllGather, 2, size, c.intraNode);
  EXPECT_DOUBLE_EQ(a2a.layer.dispatcherTpComm, tpGathers);
  EXPECT_DOUBLE_EQ(a2a.layer.expertTpComm, ag.layer.expertTpComm);
  EXPECT_DOUBLE_EQ(
      a2a.layer.expertTpComm,
      collectiveTime(Collective::AllReduce, 2, 2 * 4096 * h, c.intraNode));
  EXPECT_EQ(a2a.dispatcher.groupSize, 2);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 4);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes, 4 * 4 * 0.5 * 2 * 4 * 1024.0 * h);
}

namespace {

/// tp = 2 (sp), dp = 2, whole experts (etp = 1) over ep = tp (edp = dp)
/// or ep = tp · dp (edp = 1), one microbatch of 2048 tokens per data rank.
TrainingPlan wholeExpertPlan(int64_t ep, Dispatcher dispatcher,
                             int64_t zero = 0) {
  TrainingPlan p = moePlan(ep, zero);
  p.tp = 2;
  p.sp = true;
  p.etp = 1;
  p.dispatcher = dispatcher;
  return p;
}

} // namespace

// The etp = 1 foldings the compiler builds are priced; the others are
// refused by the compiler's rules.
TEST(TrainingStepTest, WholeExpertFoldings) {
  TransformerShape m = moeShape();
  for (int64_t ep : {2, 4})
    for (Dispatcher d : {Dispatcher::AllGather, Dispatcher::AllToAll}) {
      TrainingPlan p = wholeExpertPlan(ep, d);
      EXPECT_EQ(errorOf(m, p, nodeFor(p)), "") << ep;
    }
  TrainingPlan p = wholeExpertPlan(2, Dispatcher::AllGather);
  p.dp = 4; // ep = 4 covers tp and half of dp: priced
  p.ep = 4;
  p.gbs = 4;
  EXPECT_EQ(errorOf(m, p, nodeFor(p)), "");
  p.dp = 3; // ep = 4 would cover tp and 2 of dp = 3
  p.gbs = 3;
  EXPECT_NE(
      errorOf(m, p, nodeFor(p)).find("or end inside dp at a divisor of it"),
      std::string::npos);
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[unsupported-ep]"),
            std::string::npos);
  p = wholeExpertPlan(2, Dispatcher::AllGather);
  p.cp = 2; // ep = tp, cp in edp: compiled and priced
  EXPECT_EQ(errorOf(m, p, nodeFor(p)), "");
  // Whole experts replicated over tp (no ep) are compiled, not priced.
  p = wholeExpertPlan(1, Dispatcher::AllGather);
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("not priced"), std::string::npos);
  // With tp = 1, etp = 1 is etp = tp: the same figures.
  TrainingPlan one = moePlan(2), given = moePlan(2);
  given.etp = 1;
  EXPECT_DOUBLE_EQ(estimate(m, given, nodeFor(given)).stepTime,
                   estimate(m, one, nodeFor(one)).stepTime);
}

// ep = tp = 2, edp = dp = 2, allgather: the ep group is one data rank's tp
// pair, its 2048 tokens gathered over the 2 tp ranks (each holds a
// 1024-token sp shard); capacity = 2048 · 2 / 4 = 1024, the rank's 2 whole
// experts (ffn 2048, not split) over 2 · 1024 rows; combine's sums, the
// router weights' and the tokens' gradients reduce-scattered over the same
// 2 ranks. No tp all-reduce of the experts: 2 tp collectives per layer
// and microbatch fewer than etp = tp's (ep = dp). The expert gradients are
// all-reduced over edp = dp, and ZeRO shards them like the dense weights.
TEST(TrainingStepTest, WholeExpertsOverTp) {
  TransformerShape m = moeShape();
  TrainingPlan p = wholeExpertPlan(2, Dispatcher::AllGather);
  Cluster c = nodeFor(p);
  StepEstimate est = estimate(m, p, c);
  double h = 1024, f = 2048, k = 2, tokens = 2048;
  EXPECT_DOUBLE_EQ(est.layer.expertRows, 2 * 1024);
  EXPECT_DOUBLE_EQ(est.layer.expertParams, 2 * 3 * h * f);
  EXPECT_EQ(est.layer.expertTpComm, 0);
  EXPECT_EQ(est.layer.dispatcherTpComm, 0);
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  double factor = busBandwidthFactor(Collective::AllGather, 2);
  EXPECT_DOUBLE_EQ(factor, busBandwidthFactor(Collective::ReduceScatter, 2));
  double perLayer = factor * (2 * (tokenBytes + indexBytes + weightBytes) +
                              2 * tokenBytes + weightBytes);
  EXPECT_EQ(est.dispatcher.groupSize, 2);
  EXPECT_TRUE(est.dispatcher.intraNode);
  EXPECT_EQ(est.dispatcher.collectives, 4 * 9);
  EXPECT_DOUBLE_EQ(est.dispatcher.busBytes, 4 * perLayer);
  double gather = 0;
  for (double size : {tokenBytes, indexBytes, weightBytes})
    gather += collectiveTime(Collective::AllGather, 2, size, c.intraNode);
  EXPECT_DOUBLE_EQ(est.layer.dispatcherComm,
                   gather + collectiveTime(Collective::ReduceScatter, 2,
                                           tokenBytes, c.intraNode));
  // The expert rows' FLOPs, 2 · rows · 3 · h · f: 2048 rows of whole
  // experts, as many as etp = tp's 4096 rows of half experts; the router
  // ([T, h] x [h, 4]) runs on the rank's 1024-token shard instead of the
  // data rank's 2048 tokens.
  TrainingPlan split = moePlan(2);
  split.tp = 2;
  split.sp = true;
  StepEstimate tpExperts = estimate(m, split, c);
  EXPECT_DOUBLE_EQ(tpExperts.layer.expertRows, 4096);
  EXPECT_DOUBLE_EQ(est.layer.forwardFlops - tpExperts.layer.forwardFlops,
                   2 * 2048 * 3 * h * f - 2 * 4096 * 3 * h * (f / 2) +
                       2 * (1024 - 2048) * h * 4);
  EXPECT_EQ(tpExperts.traffic[0].collectives - est.traffic[0].collectives,
            4 * 2);
  // Gradients: every weight (experts included) all-reduced over dp = 2.
  const PipelineRankEstimate &r = est.ranks[0];
  EXPECT_DOUBLE_EQ(r.expertParams, 4 * 2 * 3 * h * f);
  EXPECT_NEAR(est.traffic[3].busBytes,
              busBandwidthFactor(Collective::AllReduce, 2) * 4 * r.params,
              1e-3);
  StepEstimate zero =
      estimate(m, wholeExpertPlan(2, Dispatcher::AllGather, 1), c);
  EXPECT_NEAR(zero.ranks[0].optimizerBytes, 12 * r.params / 2, 1e-3);
}

// The same folding with alltoall: each rank dispatches its own 1024-token
// shard, capacity 1024 · 2 / 4 = 512 per rank, the buffer [4, 512, h];
// two all-to-alls of it over the 2 tp ranks forward and two backward, no
// tp all-gathers of tokens; the rank's 2 experts run 2 · 512 slots from
// each of the 2 ranks: 2048 rows.
TEST(TrainingStepTest, WholeExpertsOverTpAllToAll) {
  TransformerShape m = moeShape();
  TrainingPlan p = wholeExpertPlan(2, Dispatcher::AllToAll);
  Cluster c = nodeFor(p);
  StepEstimate est = estimate(m, p, c);
  double h = 1024;
  EXPECT_DOUBLE_EQ(est.layer.expertRows, 2 * 512 * 2);
  double slotBytes = 2 * 4 * 512 * h;
  EXPECT_EQ(est.dispatcher.groupSize, 2);
  EXPECT_TRUE(est.dispatcher.intraNode);
  EXPECT_EQ(est.dispatcher.collectives, 4 * 4);
  EXPECT_DOUBLE_EQ(est.dispatcher.busBytes,
                   4 * 4 * busBandwidthFactor(Collective::AllToAll, 2) *
                       slotBytes);
  EXPECT_DOUBLE_EQ(
      est.layer.dispatcherComm,
      2 * collectiveTime(Collective::AllToAll, 2, slotBytes, c.intraNode));
  EXPECT_EQ(est.layer.dispatcherTpComm, 0);
  EXPECT_EQ(est.layer.expertTpComm, 0);
  // The tp collectives are allgather's (attention's pair each way).
  StepEstimate ag = estimate(m, wholeExpertPlan(2, Dispatcher::AllGather), c);
  EXPECT_EQ(est.traffic[0].collectives, ag.traffic[0].collectives);
  EXPECT_DOUBLE_EQ(est.layer.expertMatmul, ag.layer.expertMatmul);
  EXPECT_DOUBLE_EQ(est.traffic[3].busBytes, ag.traffic[3].busBytes);
}

// ep = tp · dp = 4, edp = 1: one whole expert per rank. allgather gathers
// both data ranks' 2 · 2048 tokens over the 4 ranks, capacity 4096 · 2 / 4
// = 2048 rows; alltoall dispatches each rank's 1024-token shard, capacity
// 512 per rank, 4 ranks' slots: 2048 rows, the all-to-alls over 4 ranks.
// The expert gradients are not reduced (each rank owns its expert) and
// ZeRO leaves them whole.
TEST(TrainingStepTest, WholeExpertsOverTpAndDp) {
  TransformerShape m = moeShape();
  double h = 1024, f = 2048, k = 2;
  TrainingPlan p = wholeExpertPlan(4, Dispatcher::AllGather);
  Cluster c = nodeFor(p);
  StepEstimate ag = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(ag.layer.expertRows, 2048);
  EXPECT_DOUBLE_EQ(ag.layer.expertParams, 3 * h * f);
  double tokens = 4096;
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  double gather = busBandwidthFactor(Collective::AllGather, 4);
  double scatter = busBandwidthFactor(Collective::ReduceScatter, 4);
  EXPECT_EQ(ag.dispatcher.groupSize, 4);
  EXPECT_EQ(ag.dispatcher.collectives, 4 * 9);
  EXPECT_DOUBLE_EQ(ag.dispatcher.busBytes,
                   4 * (2 * gather * (tokenBytes + indexBytes + weightBytes) +
                        scatter * (2 * tokenBytes + weightBytes)));
  const PipelineRankEstimate &r = ag.ranks[0];
  double experts = 4 * 3 * h * f;
  EXPECT_DOUBLE_EQ(r.expertParams, experts);
  EXPECT_NEAR(ag.traffic[3].busBytes,
              busBandwidthFactor(Collective::AllReduce, 2) * 4 *
                  (r.params - experts),
              1e-3);
  StepEstimate zero =
      estimate(m, wholeExpertPlan(4, Dispatcher::AllGather, 1), c);
  EXPECT_NEAR(zero.ranks[0].optimizerBytes,
              12 * ((r.params - experts) / 2 + experts), 1e-3);

  StepEstimate a2a = estimate(m, wholeExpertPlan(4, Dispatcher::AllToAll), c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertRows, 512 * 4);
  double slotBytes = 2 * 4 * 512 * h;
  EXPECT_EQ(a2a.dispatcher.groupSize, 4);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 4);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes,
                   4 * 4 * busBandwidthFactor(Collective::AllToAll, 4) *
                       slotBytes);
  EXPECT_DOUBLE_EQ(a2a.layer.expertMatmul, ag.layer.expertMatmul);
  EXPECT_DOUBLE_EQ(a2a.traffic[3].busBytes, ag.traffic[3].busBytes);
}

// The ep group's link: ep = tp · dp = 16 with tp = 2 spans two 8-GPU
// nodes (inter-node); ep = tp = 2 stays in one (intra-node).
TEST(TrainingStepTest, WholeExpertGroupLink) {
  TransformerShape m = moeShape();
  m.experts = 16;
  TrainingPlan p = wholeExpertPlan(16, Dispatcher::AllToAll);
  p.dp = 8;
  p.gbs = 8;
  Cluster c = preset("h100-node");
  c.nodes = 2;
  c.gpusPerNode = 8;
  StepEstimate wide = estimate(m, p, c);
  EXPECT_EQ(wide.dispatcher.groupSize, 16);
  EXPECT_FALSE(wide.dispatcher.intraNode);
  p.ep = 2;
  StepEstimate narrow = estimate(m, p, c);
  EXPECT_EQ(narrow.dispatcher.groupSize, 2);
  EXPECT_TRUE(narrow.dispatcher.intraNode);
}

namespace {

/// Expert data parallelism: tp = 2 (sp), dp = 8, experts split over tp
/// (etp = tp) and over ep data ranks (ep dividing dp), edp = 8 / ep copies;
/// one microbatch of 2048 tokens per data rank; two 8-GPU nodes.
TrainingPlan expertDataPlan(int64_t ep, Dispatcher dispatcher,
                            int64_t zero = 0) {
  TrainingPlan p = moePlan(ep, zero);
  p.tp = 2;
  p.sp = true;
  p.dp = 8;
  p.gbs = 8;
  p.dispatcher = dispatcher;
  return p;
}

Cluster twoNodes() {
  Cluster c = preset("h100-node");
  c.nodes = 2;
  c.gpusPerNode = 8;
  return c;
}

} // namespace

// ep = 2 of dp = 8, allgather: the ep group is 2 data ranks (ranks r and r
// + 2 of a tp pair), their 2 · 2048 tokens gathered over ep · tp = 4
// consecutive ranks (one node), capacity 4096 · 2 / 4 = 2048, the rank's 2
// experts (ffn split over tp) over 2 · 2048 rows; combine's sums, the
// router weights' and tokens' gradients reduce-scattered over the 2 ep
// ranks (2 apart, one node). The expert gradients are all-reduced over the
// edp = 4 ranks holding the same experts (4 apart: 0, 4, 8, 12, across the
// nodes), the dense ones over dp = 8 as before.
TEST(TrainingStepTest, ExpertDataParallelAllGather) {
  TransformerShape m = moeShape();
  Cluster c = twoNodes();
  StepEstimate est = estimate(m, expertDataPlan(2, Dispatcher::AllGather), c);
  double h = 1024, f = 2048, k = 2, tokens = 2 * 2048;
  EXPECT_DOUBLE_EQ(est.layer.expertRows, 2 * 2048);
  EXPECT_DOUBLE_EQ(est.layer.expertParams, 2 * 3 * h * (f / 2));
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  double perLayer = 2 * 0.75 * (tokenBytes + indexBytes + weightBytes) +
                    0.5 * (2 * tokenBytes + weightBytes);
  EXPECT_EQ(est.dispatcher.groupSize, 4);
  EXPECT_TRUE(est.dispatcher.intraNode);
  EXPECT_EQ(est.dispatcher.collectives, 4 * 9);
  EXPECT_DOUBLE_EQ(est.dispatcher.busBytes, 4 * perLayer);
  double gather = 0;
  for (double size : {tokenBytes, indexBytes, weightBytes})
    gather += collectiveTime(Collective::AllGather, 4, size, c.intraNode);
  EXPECT_DOUBLE_EQ(est.layer.dispatcherComm,
                   gather + collectiveTime(Collective::ReduceScatter, 2,
                                           tokenBytes, c.intraNode));
  // The experts' tp all-reduce as with ep = dp ([2, 2048, h] bf16).
  EXPECT_DOUBLE_EQ(
      est.layer.expertTpComm,
      collectiveTime(Collective::AllReduce, 2, 2 * 4096 * h, c.intraNode));

  const PipelineRankEstimate &r = est.ranks[0];
  double experts = 4 * 2 * 3 * h * (f / 2), dense = r.params - experts;
  EXPECT_DOUBLE_EQ(r.expertParams, experts);
  EXPECT_NEAR(r.gradBytes, 4 * r.params, 1e-3);
  EXPECT_EQ(est.traffic[3].groupSize, 8);
  EXPECT_NEAR(est.traffic[3].busBytes, 2 * 7.0 / 8 * 4 * dense, 1e-3);
  EXPECT_EQ(est.expertGrad.groupSize, 4);
  EXPECT_FALSE(est.expertGrad.intraNode);
  EXPECT_EQ(est.expertGrad.collectives, 1);
  EXPECT_NEAR(est.expertGrad.busBytes, 2 * 0.75 * 4 * experts, 1e-3);
  EXPECT_NEAR(
      est.expertGrad.time,
      collectiveTime(Collective::AllReduce, 4, 4 * experts, c.interNode),
      1e-12);
  EXPECT_NEAR(r.gradReduce,
              collectiveTime(Collective::AllReduce, 8, 4 * dense, c.interNode) +
                  est.expertGrad.time,
              1e-12);

  // ZeRO-1: the dense optimizer states over dp = 8, the experts' over edp
  // = 4; their gradients reduce-scattered and the weights all-gathered
  // over the same 4 ranks.
  StepEstimate zero =
      estimate(m, expertDataPlan(2, Dispatcher::AllGather, 1), c);
  EXPECT_NEAR(zero.ranks[0].optimizerBytes, 12 * (dense / 8 + experts / 4),
              1e-3);
  EXPECT_NEAR(zero.ranks[0].gradBytes, 4 * r.params, 1e-3);
  EXPECT_EQ(zero.expertGrad.collectives, 2);
  EXPECT_NEAR(zero.expertGrad.busBytes, 0.75 * (4 + 2) * experts, 1e-3);
  // ZeRO-2 also the gradients, ZeRO-3 also the weights, each gathered and
  // its gradient reduce-scattered over edp in every layer: per layer (E
  // expert weights) 3 · (2E + 2E + 4E) bytes through each link.
  StepEstimate zero2 =
      estimate(m, expertDataPlan(2, Dispatcher::AllGather, 2), c);
  EXPECT_NEAR(zero2.ranks[0].gradBytes, 4 * (dense / 8 + experts / 4), 1e-3);
  StepEstimate zero3 =
      estimate(m, expertDataPlan(2, Dispatcher::AllGather, 3), c);
  EXPECT_NEAR(zero3.ranks[0].paramBytes, 2 * (dense / 8 + experts / 4), 1e-3);
  double layerExperts = experts / 4;
  EXPECT_EQ(zero3.expertGrad.collectives, 4 * 3);
  EXPECT_NEAR(zero3.expertGrad.busBytes, 4 * 3 * 8 * layerExperts, 1e-3);
}

// ep = 4 of dp = 8: one expert per rank over the 4 data ranks' 4 · 2048
// tokens (capacity 4096), gathered over ep · tp = 8 ranks (one node) and
// reduce-scattered over 4 (2 apart); edp = 2 (ranks 8 apart, across the
// nodes). alltoall: each rank dispatches its data rank's 2048 tokens
// (gathered over tp), capacity 1024 per rank, [4, 1024, h] all-to-all'ed
// over the 4 ep ranks, 4 per layer; the expert runs 4 · 1024 rows either
// way. With 8 experts and ep = 8 the ep ranks (2 apart) span both nodes.
TEST(TrainingStepTest, ExpertDataParallelGroups) {
  TransformerShape m = moeShape();
  Cluster c = twoNodes();
  double h = 1024, f = 2048, k = 2;
  StepEstimate ag = estimate(m, expertDataPlan(4, Dispatcher::AllGather), c);
  EXPECT_DOUBLE_EQ(ag.layer.expertRows, 4096);
  double tokens = 4 * 2048;
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  EXPECT_EQ(ag.dispatcher.groupSize, 8);
  EXPECT_TRUE(ag.dispatcher.intraNode);
  EXPECT_DOUBLE_EQ(ag.dispatcher.busBytes,
                   4 * (2 * 7.0 / 8 * (tokenBytes + indexBytes + weightBytes) +
                        0.75 * (2 * tokenBytes + weightBytes)));
  double experts = 4 * 3 * h * (f / 2);
  EXPECT_DOUBLE_EQ(ag.ranks[0].expertParams, experts);
  EXPECT_EQ(ag.expertGrad.groupSize, 2);
  EXPECT_FALSE(ag.expertGrad.intraNode);
  EXPECT_NEAR(ag.expertGrad.busBytes, 4 * experts, 1e-3);

  StepEstimate a2a = estimate(m, expertDataPlan(4, Dispatcher::AllToAll), c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertRows, 4 * 1024);
  double slotBytes = 2 * 4 * 1024 * h;
  EXPECT_EQ(a2a.dispatcher.groupSize, 4);
  EXPECT_TRUE(a2a.dispatcher.intraNode);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 4);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes, 4 * 4 * 0.75 * slotBytes);
  EXPECT_DOUBLE_EQ(
      a2a.layer.dispatcherComm,
      2 * collectiveTime(Collective::AllToAll, 4, slotBytes, c.intraNode));
  EXPECT_DOUBLE_EQ(a2a.layer.expertMatmul, ag.layer.expertMatmul);
  EXPECT_DOUBLE_EQ(a2a.expertGrad.busBytes, ag.expertGrad.busBytes);
  EXPECT_DOUBLE_EQ(a2a.traffic[3].busBytes, ag.traffic[3].busBytes);

  // ep = 2 alltoall: [4, 1024, h] over 2 ranks; the rank's 2 experts over
  // 2 · 1024 slots each.
  StepEstimate a2a2 = estimate(m, expertDataPlan(2, Dispatcher::AllToAll), c);
  EXPECT_DOUBLE_EQ(a2a2.layer.expertRows, 2 * 2 * 1024);
  EXPECT_EQ(a2a2.dispatcher.groupSize, 2);
  EXPECT_DOUBLE_EQ(a2a2.dispatcher.busBytes, 4 * 4 * 0.5 * slotBytes);
  EXPECT_EQ(a2a2.expertGrad.groupSize, 4);

  // ep = 8 = dp (edp = 1): the all-to-alls over ranks 0, 2, .., 14 span
  // the nodes; the expert gradients are not reduced.
  m.experts = 8;
  StepEstimate wide = estimate(m, expertDataPlan(8, Dispatcher::AllToAll), c);
  EXPECT_EQ(wide.dispatcher.groupSize, 8);
  EXPECT_FALSE(wide.dispatcher.intraNode);
  EXPECT_EQ(wide.expertGrad.groupSize, 1);
  EXPECT_EQ(wide.expertGrad.collectives, 0);
}

// Whole experts (etp = 1) over ep = tp · 2 = 4 of tp = 2, dp = 4: edp = 2.
// allgather gathers the ep group's 2 data ranks' 2 · 2048 tokens over 4
// consecutive ranks (capacity 2048, one whole expert), and the expert
// gradients are all-reduced over the 2 ranks 4 apart.
TEST(TrainingStepTest, WholeExpertsOverTpAndPartOfDp) {
  TransformerShape m = moeShape();
  TrainingPlan p = wholeExpertPlan(4, Dispatcher::AllGather);
  p.dp = 4;
  p.gbs = 4;
  Cluster c = nodeFor(p);
  StepEstimate est = estimate(m, p, c);
  double h = 1024, f = 2048;
  EXPECT_DOUBLE_EQ(est.layer.expertRows, 2048);
  EXPECT_DOUBLE_EQ(est.layer.expertParams, 3 * h * f);
  EXPECT_EQ(est.dispatcher.groupSize, 4);
  EXPECT_EQ(est.dispatcher.collectives, 4 * 9);
  double experts = 4 * 3 * h * f;
  EXPECT_EQ(est.expertGrad.groupSize, 2);
  EXPECT_TRUE(est.expertGrad.intraNode);
  EXPECT_NEAR(est.expertGrad.busBytes, 4 * experts, 1e-3);
  EXPECT_NEAR(est.traffic[3].busBytes,
              2 * 0.75 * 4 * (est.ranks[0].params - experts), 1e-3);
  p.zero = 1;
  StepEstimate zero = estimate(m, p, c);
  EXPECT_NEAR(zero.ranks[0].optimizerBytes,
              12 * ((est.ranks[0].params - experts) / 4 + experts / 2), 1e-3);
}

// Experts over cp ranks (the expert mesh folds over cp before dp).
// tp=2,sp,cp=2,ep=2,dp=2 (ep = cp, etp = tp): a cp rank holds 1024 of the
// sequence's 2048 positions. allgather: the ep group's 2 cp ranks' tokens
// (the data rank's 2048) gathered over ep · tp = 4 consecutive ranks,
// capacity 2048 · 2 / 4 = 1024, the rank's 2 experts over 2048 rows,
// reduce-scatters over the 2 ep ranks (2 apart); edp = 8 / 4 = 2.
// alltoall: each rank dispatches its own 1024 positions (capacity 512, rows
// 2 · 512 · 2 = 2048), two all-to-alls of [4, 512, h] over ep = 2 and two
// all-gathers of the data rank's [2048, h] over the tp · cp = 4 block, each
// way; the tp all-gathers of indices and weights (not of the tokens).
TEST(TrainingStepTest, ExpertsOverCpRanks) {
  TransformerShape m = moeShape();
  TrainingPlan p = moePlan(2);
  p.tp = 2;
  p.sp = true;
  p.cp = 2;
  Cluster c = nodeFor(p);
  double h = 1024, k = 2, tokens = 2048;
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  StepEstimate ag = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(ag.layer.expertRows, 2048);
  EXPECT_EQ(ag.dispatcher.groupSize, 4);
  EXPECT_EQ(ag.dispatcher.collectives, 4 * 9);
  EXPECT_DOUBLE_EQ(ag.dispatcher.busBytes,
                   4 * (2 * 0.75 * (tokenBytes + indexBytes + weightBytes) +
                        0.5 * (2 * tokenBytes + weightBytes)));
  EXPECT_EQ(ag.expertGrad.groupSize, 2);

  p.dispatcher = Dispatcher::AllToAll;
  StepEstimate a2a = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertRows, 2048);
  double slotBytes = 2 * 2048 * h, sequenceBytes = 2 * 2048 * h;
  EXPECT_EQ(a2a.dispatcher.groupSize, 2);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 8);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes,
                   4 * 2 * (2 * 0.5 * slotBytes + 2 * 0.75 * sequenceBytes));
  double rankTokens = 1024;
  EXPECT_DOUBLE_EQ(a2a.layer.dispatcherTpComm,
                   collectiveTime(Collective::AllGather, 2, 4 * rankTokens * k,
                                  c.intraNode) +
                       collectiveTime(Collective::AllGather, 2,
                                      2 * rankTokens * k, c.intraNode));
  EXPECT_EQ(a2a.expertGrad.groupSize, 2);
}

// cp=2,dp=4,ep=8 (tp = 1, 8 experts): ep covers cp, then all of dp (edp =
// 1). allgather: the 8 cp ranks' 8 · 1024 tokens gathered over the 8 ranks,
// capacity 8192 · 2 / 8 = 2048, one expert per rank over 2048 rows,
// reduce-scatters over the same 8. alltoall: the rank's 1024 positions,
// capacity 256, [8, 256, h] all-to-all'ed over 8, rows 8 · 256 = 2048,
// the data rank's [2048, h] all-gathered over cp = 2 twice each way. No
// expert gradient reduction (each rank owns its expert).
TEST(TrainingStepTest, ExpertsOverCpAndDp) {
  TransformerShape m = moeShape();
  m.experts = 8;
  TrainingPlan p = moePlan(8);
  p.cp = 2;
  p.dp = 4;
  p.gbs = 4;
  Cluster c = nodeFor(p);
  double h = 1024, k = 2, tokens = 8192;
  double tokenBytes = 2 * tokens * h, indexBytes = 4 * tokens * k,
         weightBytes = 2 * tokens * k;
  StepEstimate ag = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(ag.layer.expertRows, 2048);
  EXPECT_EQ(ag.dispatcher.groupSize, 8);
  EXPECT_DOUBLE_EQ(ag.dispatcher.busBytes,
                   4 * (2 * 7.0 / 8 * (tokenBytes + indexBytes + weightBytes) +
                        7.0 / 8 * (2 * tokenBytes + weightBytes)));
  EXPECT_EQ(ag.expertGrad.groupSize, 1);
  EXPECT_EQ(ag.expertGrad.collectives, 0);

  p.dispatcher = Dispatcher::AllToAll;
  StepEstimate a2a = estimate(m, p, c);
  EXPECT_DOUBLE_EQ(a2a.layer.expertRows, 2048);
  double slotBytes = 2 * 2048 * h, sequenceBytes = 2 * 2048 * h;
  EXPECT_EQ(a2a.dispatcher.groupSize, 8);
  EXPECT_EQ(a2a.dispatcher.collectives, 4 * 8);
  EXPECT_DOUBLE_EQ(a2a.dispatcher.busBytes,
                   4 * 2 * (2 * 7.0 / 8 * slotBytes + 2 * 0.5 * sequenceBytes));
}

// ep within cp (cp = 4, ep = 2 with etp = tp) does not fold; nor ep = 2 of
// dp with cp = 2 left outside; MoE with cp and without ep is not priced.
TEST(TrainingStepTest, ExpertsOverCpRefusals) {
  TransformerShape m = moeShape();
  TrainingPlan p = moePlan(2);
  p.dp = 1;
  p.gbs = 1;
  p.cp = 4;
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("[unsupported-ep]"),
            std::string::npos);
  p.ep = 4; // ep = cp
  EXPECT_EQ(errorOf(m, p, nodeFor(p)), "");
  p.ep = 1;
  EXPECT_NE(errorOf(m, p, nodeFor(p)).find("without expert parallelism"),
            std::string::npos);
}
