//===- TrainingStep.h - Time and memory of one training step ----*- C++ -*-===//
//
// Prices one optimizer step of a decoder-only transformer, dense or
// mixture-of-experts, under a parallel plan (tp with sp, cp as a ring,
// all-gather, all-to-all or rings between all-to-all groups, pp with vpp, dp
// with a ZeRO level, experts folded onto all or part of dp by ep (etp = tp) or,
// whole (etp = 1), onto tp or tp and part or all of dp, the rest of dp (edp)
// holding copies, with the allgather or the alltoall dispatcher, microbatch and
// global batch, a pipeline schedule, activation recompute) on a Cluster:
//
//  - the forward, input-gradient (B) and weight-gradient (W) time of every
//    virtual pipeline stage for one microbatch, from Megatron's FLOPs
//    accounting split over the layers and the tp ranks, each kernel by the
//    roofline (max of FLOPs at peak · efficiency and bytes at HBM speed),
//    plus the tensor- and context-parallel collectives of every layer (the
//    ring's transfers overlapped with its blocks);
//  - the pipeline's transfers of the boundary activation;
//  - the schedule library's lock-step simulation of the step's schedule
//    with those per-stage costs (step time of the pipeline, bubble);
//  - the gradient reduction over dp · cp (MoE: the expert weights' over
//    their edp ranks) and the optimizer at the end;
//  - each pipeline rank's memory by Megatron's arithmetic, with the
//    microbatches in flight read off the schedule.
//
// docs/CostModel.md gives every formula and its source. Free of MLIR: the
// model's numbers come in as plain numbers.
//
//===----------------------------------------------------------------------===//

#ifndef LOOM_COSTMODEL_TRAININGSTEP_H
#define LOOM_COSTMODEL_TRAININGSTEP_H

#include "loom/CostModel/Cluster.h"
#include "loom/CostModel/Collectives.h"
#include "loom/Schedule/Schedule.h"

#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace loom::cost {

/// The numbers of a decoder-only transformer (ModelConfig's, in
/// loom/Models/ModelZoo.h). With experts > 0 every layer's MLP is a MoE
/// layer: a router and `experts` MLPs of width `ffn`, `topK` per token.
struct TransformerShape {
  std::string name;
  int64_t layers = 0;
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t kvHeads = 0;
  int64_t headDim = 0;
  int64_t ffn = 0;
  /// The vocabulary as the model holds it (Megatron pads it to a multiple
  /// of 128 · tp; the caller passes the padded size).
  int64_t vocab = 0;
  int64_t seq = 0;
  /// SwiGLU (three ffn-wide matmuls) rather than GELU (two).
  bool gatedMlp = true;
  /// The output layer reuses the embedding (Megatron keeps a copy on the
  /// last stage all the same).
  bool tiedEmbeddings = false;
  bool linearBias = false;
  bool learnedPositions = false;
  /// Mixture of experts: 0 experts for a dense model.
  int64_t experts = 0;
  int64_t topK = 0;
  /// Expert capacity = ceil(tokens · topK / experts · capacityFactor),
  /// tokens those of one dispatch; 0: dropless (capacity = tokens).
  double capacityFactor = 1.0;

  bool isMoE() const { return experts > 0; }
};

enum class Recompute { None, Selective, Full };

/// How context parallelism exchanges keys and values (Megatron-Core's
/// --cp-comm-type). The model prices all four as Loom compiles them.
enum class CpComm {
  /// Ring attention: K/V blocks passed around the cp ranks.
  P2P,
  /// K and V all-gathered over cp, dK and dV reduce-scattered back.
  AllGather,
  /// DeepSpeed-Ulysses: all-to-alls between sequence and heads.
  A2A,
  /// Hierarchical: all-to-alls inside groups of TrainingPlan::cpA2A
  /// consecutive cp ranks, a ring between the cp / cpA2A groups.
  A2AP2P,
};

/// How MoE layers move tokens to their experts (Megatron-Core's
/// --moe-token-dispatcher-type). Loom compiles both, AllGather when the
/// plan leaves it out; without ep (plain dp) the two compile to the same
/// program, priced as AllGather's.
enum class Dispatcher { AllGather, AllToAll };

/// A plan's degrees, as plain numbers.
struct TrainingPlan {
  int64_t tp = 1;
  bool sp = false;
  /// Context parallelism: each rank holds seq / cp positions of every
  /// activation. Megatron's default exchange is p2p, the ring.
  int64_t cp = 1;
  CpComm cpComm = CpComm::P2P;
  /// cp_comm=a2a+p2p: the ranks of each all-to-all group (the plan's
  /// cp_a2a, Megatron's --hierarchical-context-parallel-sizes N cp/N), a
  /// divisor of cp strictly between 1 and cp; 1 for the other forms.
  int64_t cpA2A = 1;
  int64_t pp = 1;
  int64_t vpp = 1;
  int64_t dp = 1;
  /// Expert parallelism, E / ep experts per rank, and expert tensor
  /// parallelism, 0 meaning tp. The expert mesh [edp, ep, etp] folds over
  /// the dense ranks (loom::foldExpertMesh, etp fastest, then ep, then
  /// edp) as Loom compiles it: etp = tp with ep a divisor of dp (each
  /// expert's ffn split over tp; edp = dp / ep), or etp = 1 with ep = tp
  /// (edp = dp) or tp · d, d a divisor of dp (edp = dp / d): whole
  /// experts. The tokens are dispatched over the ep group; the edp ranks
  /// hold copies of the same experts, whose gradients are reduced (and
  /// ZeRO-sharded) over them.
  int64_t ep = 1;
  int64_t etp = 0;
  Dispatcher dispatcher = Dispatcher::AllGather;
  /// 0: replicated optimizer; 1: optimizer states sharded over dp · cp
  /// (Megatron's distributed optimizer; MoE expert weights over their edp
  /// ranks); 2: also gradients; 3: also parameters.
  int64_t zero = 0;
  int64_t mbs = 1;
  int64_t gbs = 1;
  /// gpipe, 1f1b, interleaved or zb-h1 (the schedule library's names).
  std::string schedule = "1f1b";
  Recompute recompute = Recompute::None;
};

/// One transformer layer for one microbatch on one GPU.
struct LayerCost {
  /// Forward FLOPs on this GPU (matmuls and attention, Megatron's
  /// accounting: attention unmasked).
  double forwardFlops = 0;
  /// Forward times: weight matmuls, attention core (causal: half the
  /// accounted FLOPs are run; with a2a+p2p's ring of contiguous pieces the
  /// slowest group's share), element-wise kernels, tp collectives, and the time
  /// cp's exchange adds (p2p: what its transfers do not hide behind the blocks;
  /// a2a+p2p: its all-to-alls and what its ring's transfers do not hide).
  double matmul = 0;
  double attention = 0;
  double elementwise = 0;
  double tpComm = 0;
  double cpComm = 0;
  /// The forward's cp transfer time on the links (cpComm but for p2p and
  /// a2a+p2p, whose ring transfers overlap the attention blocks), and of
  /// it the ring's transfers (p2p: all of it; a2a+p2p: the ring between
  /// the groups, the rest being its all-to-alls; 0 otherwise).
  double cpTransfer = 0;
  double cpRingTransfer = 0;
  /// ZeRO-3's parameter all-gather in the forward (0 otherwise).
  double paramGather = 0;
  /// The phases: F; B = input gradients (matmul dgrad, attention backward,
  /// element-wise backward, tp and cp collectives, recompute); W = weight
  /// gradients.
  double forward = 0;
  double inputGrad = 0;
  double weightGrad = 0;
  /// Parameters of one layer on one GPU, and activation bytes it keeps for
  /// the backward per microbatch.
  double params = 0;
  double activationBytes = 0;
  /// MoE layers (0 for a dense model): the expert weights among `params`
  /// (E / ep experts' share over etp); rows the rank's grouped matmuls run
  /// (capacity · E / ep with ep, capacity · E without: every expert on
  /// every token of the dp group, as Loom compiles plain dp); forward times
  /// of the router (matmul, softmax and top-k), of the expert matmuls
  /// (within `matmul`), of dispatch and combine (within `elementwise`), of
  /// the dispatcher's collectives (allgather: all-gathers over ep · tp,
  /// dp · tp without ep, reduce-scatters over the ep ranks; alltoall: two
  /// all-to-alls over the ep ranks; not overlapped), of the alltoall
  /// dispatcher's tp all-gathers of the tokens, indices and weights
  /// (within `tpComm`; 0 for allgather, whose gathers span ep · tp) and of the
  /// experts' tp all-reduce (within `tpComm`). With alltoall the expert rows
  /// are E / ep experts' slots from every ep rank: E · capacity, capacity
  /// counted per rank. With etp = 1 the experts are whole (their share over etp
  /// = 1), the dispatcher's collectives span the ep group (tp or tp · d ranks)
  /// and there is no tp collective of the experts (both tp times 0).
  double expertParams = 0;
  double expertRows = 0;
  double router = 0;
  double expertMatmul = 0;
  double dispatchCombine = 0;
  double dispatcherComm = 0;
  double dispatcherTpComm = 0;
  double expertTpComm = 0;
};

/// A virtual pipeline stage (chunk) for one microbatch.
struct VirtualStageCost {
  int64_t layers = 0;
  bool embedding = false;
  bool output = false;
  schedule::StageCosts costs;
};

/// What one pipeline rank (every GPU of that stage) holds and does.
struct PipelineRankEstimate {
  /// Parameters on one GPU of this stage; of them, expert weights (MoE).
  double params = 0;
  double expertParams = 0;
  /// Bytes: bf16 parameters, fp32 gradients, optimizer states (fp32 master,
  /// Adam's two moments), activations, total.
  double paramBytes = 0;
  double gradBytes = 0;
  double optimizerBytes = 0;
  double activationBytes = 0;
  double totalBytes = 0;
  /// Peak microbatches in flight, in (microbatch, chunk) units and in
  /// layers' worth of activations.
  int64_t peakInFlight = 0;
  int64_t peakInFlightLayers = 0;
  /// End of the rank's last pipeline action, then the data-parallel
  /// reduction and the optimizer step; `finish` is when the step ends on
  /// this rank.
  double pipelineEnd = 0;
  double gradReduce = 0;
  double optimizer = 0;
  double finish = 0;
};

/// Communication of one mesh axis, per GPU and step, on the busiest
/// pipeline rank. The dp entry is the gradient group, dp · cp ranks. With
/// cp_comm=a2a+p2p the cp entry is the all-to-alls within a group of
/// cpA2A ranks and StepEstimate::cpRing the ring between the groups.
/// StepEstimate::dispatcher uses it for MoE layers' token dispatch:
/// allgather's all-gathers run over ep · tp ranks (dp · tp without ep; the
/// group and link given here), its reduce-scatters over the ep ranks;
/// alltoall's all-to-alls over the ep ranks (the group and link given
/// here). With etp = tp the ep ranks are tp apart. With etp = 1 both
/// dispatchers' collectives run over the ep group (tp, or tp · d ranks).
struct AxisTraffic {
  MeshAxisKind axis = MeshAxisKind::Tp;
  int64_t groupSize = 1;
  bool intraNode = true;
  int64_t collectives = 0;
  /// Bytes through each GPU's link (bus bytes: factor · size).
  double busBytes = 0;
  double time = 0;
};

struct StepEstimate {
  int64_t microbatches = 0;
  int64_t gpus = 0;
  int64_t tokensPerStep = 0;
  double totalParams = 0;
  LayerCost layer;
  /// The output layer's forward on the last stage (logits and loss).
  double outputForward = 0;
  std::vector<VirtualStageCost> stages;
  std::vector<PipelineRankEstimate> ranks;
  /// tp, cp, pp, dp.
  std::vector<AxisTraffic> traffic;
  /// cp_comm=a2a+p2p: the ring's transfers between the cp / cpA2A
  /// all-to-all groups (groupSize the groups; empty otherwise).
  AxisTraffic cpRing;
  /// MoE layers' dispatcher collectives (none for a dense model).
  AxisTraffic dispatcher;
  /// MoE: the expert weights' gradient reduction (ZeRO-3: their gathers and
  /// reduce-scatters) over their edp ranks (the group and link given
  /// here) when edp is neither the dp group (then they are within the dp
  /// entry) nor 1 (nothing to reduce).
  AxisTraffic expertGrad;
  schedule::Schedule schedule;
  schedule::ActionCosts costs;
  schedule::SimulationResult simulation;
  /// The pipeline's makespan and the step: the latest rank's finish.
  double pipelineTime = 0;
  double stepTime = 0;
  double bubbleFraction = 0;
  double tokensPerSecond = 0;
  /// 3 · the forward's model FLOPs (PaLM's 6N + 12·L·H·Q·T per token:
  /// matmuls with every parameter including the output layer, attention
  /// unmasked), without recompute.
  double modelFlopsPerStep = 0;
  double modelFlopsPerGpu = 0;
  /// modelFlopsPerStep / (stepTime · gpus · peak).
  double mfu = 0;
};

/// Estimates one step; errors (one line each) for a shape or plan the
/// model cannot price: degrees below 1, gpus ≠ tp·cp·pp·dp, layers not a
/// multiple of pp · vpp, heads not a multiple of tp, seq not a multiple of
/// 2 · cp, a2a's heads not a multiple of tp · cp (a2a+p2p: of tp · cpA2A,
/// cpA2A a divisor of cp strictly between 1 and cp), gbs
/// not a multiple of mbs · dp, the schedule library's refusals; for MoE
/// what Loom does not compile (an expert mesh that does not fold onto
/// whole axes: with etp = tp ep not a divisor of dp, with etp = 1 ep
/// neither 1, tp nor tp times a divisor of dp; etp ∉ {1, tp}; experts
/// with cp_comm a2a+p2p; tp without sp) and what the model does
/// not price (cp without ep; etp = 1 without ep under tp).
llvm::Expected<StepEstimate> estimateTrainingStep(const TransformerShape &model,
                                                  const TrainingPlan &plan,
                                                  const Cluster &cluster);

/// A fixed assumption of the training-step model, for printing.
struct CostAssumption {
  std::string name;
  std::string value;
  std::string source;
};
std::vector<CostAssumption> getCostAssumptions();

} // namespace loom::cost

#endif // LOOM_COSTMODEL_TRAININGSTEP_H
