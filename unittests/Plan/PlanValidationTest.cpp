//===- PlanValidationTest.cpp - The rules of a plan
//------------------------===//
//
// Every rule with a plan that breaks it and one that follows it, and the
// "not supported yet" check.
//
//===----------------------------------------------------------------------===//

#include "loom/Plan/PlanValidation.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

using namespace loom;

namespace {

/// A dense model whose sizes divide by small degrees.
ModelFacts dense() {
  ModelFacts m;
  m.layers = 8;
  m.hidden = 64;
  m.heads = 8;
  m.kvHeads = 8;
  m.ffn = 256;
  m.vocab = 1024;
  m.seq = 32;
  return m;
}

/// A MoE model: 8 experts of feed-forward size 64, 2 per token.
ModelFacts moe() {
  ModelFacts m = dense();
  m.experts = 8;
  m.topK = 2;
  m.ffn = 64;
  return m;
}

PlanSpec spec(llvm::StringRef text) {
  llvm::Expected<PlanSpec> s = parsePlanSpec(text);
  if (!s) {
    ADD_FAILURE() << llvm::toString(s.takeError());
    return PlanSpec();
  }
  return *s;
}

std::vector<PlanProblem> check(llvm::StringRef text, const ModelFacts &model,
                               int64_t world) {
  return validatePlan(spec(text), model, world);
}

/// The problem of rule `rule`, or null.
const PlanProblem *find(const std::vector<PlanProblem> &problems,
                        llvm::StringRef rule) {
  for (const PlanProblem &p : problems)
    if (p.rule == rule)
      return &p;
  return nullptr;
}

std::string dump(const std::vector<PlanProblem> &problems) {
  std::string text;
  for (const PlanProblem &p : problems)
    text += "\n  " + formatPlanProblem(p);
  return text;
}

/// Expects `rule` to be the only problem of the plan, with `severity` and a
/// message containing `excerpt`.
void expectOnly(llvm::StringRef text, const ModelFacts &model, int64_t world,
                llvm::StringRef rule, llvm::StringRef excerpt,
                PlanSeverity severity = PlanSeverity::Error) {
  std::vector<PlanProblem> problems = check(text, model, world);
  ASSERT_EQ(problems.size(), 1u)
      << text.str() << " on " << world << " ranks:" << dump(problems);
  EXPECT_EQ(problems[0].rule, rule.str());
  EXPECT_EQ(problems[0].severity, severity);
  EXPECT_NE(problems[0].message.find(excerpt.str()), std::string::npos)
      << problems[0].message;
}

/// Expects the plan to follow every rule (no problem at all).
void expectClean(llvm::StringRef text, const ModelFacts &model, int64_t world) {
  std::vector<PlanProblem> problems = check(text, model, world);
  EXPECT_TRUE(problems.empty())
      << text.str() << " on " << world << " ranks:" << dump(problems);
}

TEST(PlanValidation, OneRankPlanIsClean) {
  expectClean("", dense(), 1);
  expectClean("", ModelFacts(), 1);
  expectClean("", moe(), 1);
}

TEST(PlanValidation, Ranges) {
  PlanSpec s;
  s.tp = 0;
  s.mbs = -1;
  std::vector<PlanProblem> problems = validatePlan(s, dense(), 1);
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].rule, "degree-range");
  EXPECT_NE(problems[0].message.find("got tp=0, mbs=-1"), std::string::npos);

  s = PlanSpec();
  s.dp = int64_t(1) << 31;
  EXPECT_EQ(validatePlan(s, dense(), 1)[0].rule, "degree-range");

  s = PlanSpec();
  s.zero = 4;
  problems = validatePlan(s, dense(), 1);
  ASSERT_EQ(problems.size(), 1u) << dump(problems);
  EXPECT_EQ(problems[0].rule, "zero-range");
  EXPECT_EQ(problems[0].message, "zero must be 0, 1, 2 or 3, got 4");
  s.zero = 3;
  EXPECT_EQ(find(validatePlan(s, dense(), 2), "zero-range"), nullptr);

  for (int64_t world : {int64_t(0), int64_t(-1), int64_t(1) << 31})
    expectOnly("", dense(), world, "world-size",
               "the world size must be in [1, 2^31 - 1], got " +
                   std::to_string(world));
}

TEST(PlanValidation, MinimumRanks) {
  // The Bridge guide's examples: pp * max(tp * cp, ep * etp).
  expectOnly("tp=2,sp,ep=8", moe(), 4, "min-ranks",
             "pp * max(tp * cp, ep * etp) = 1 * max(2 * 1, 8 * 2) = 16 ranks, "
             "the world has 4");
  expectClean("tp=2,sp,ep=8,etp=1", moe(), 8);
  expectClean("tp=4,sp,ep=8,etp=1", moe(), 8);
  expectClean("tp=2,sp,cp=4,ep=8,etp=1", moe(), 8);
  expectClean("pp=2,tp=2,sp,ep=8,etp=1,gbs=8", moe(), 16);
  expectClean("tp=2,sp,ep=4,etp=2", moe(), 8);
  expectOnly("tp=4", dense(), 2, "min-ranks", "= 4 ranks, the world has 2");
  // Degrees whose product overflows.
  PlanSpec s;
  s.tp = s.cp = s.ep = s.pp = INT32_MAX;
  s.etp = INT32_MAX;
  std::vector<PlanProblem> problems = validatePlan(s, ModelFacts(), 8);
  EXPECT_NE(find(problems, "min-ranks"), nullptr) << dump(problems);
}

TEST(PlanValidation, WorldSize) {
  // dp derived: the world must divide by tp * cp * pp.
  expectOnly("tp=4", dense(), 6, "world-divisible",
             "the world (6 ranks) is not divisible by tp * cp * pp = 4");
  expectClean("tp=4", dense(), 8);
  // dp given: the product must be the world.
  expectOnly("tp=2,dp=2", dense(), 8, "world-product",
             "tp * cp * pp * dp = 2 * 1 * 1 * 2 = 4 ranks, but the world has "
             "8");
  expectClean("tp=2,dp=4", dense(), 8);
  // Experts: world / (pp * ep * etp) must be whole as well.
  expectOnly("ep=4", moe(), 6, "expert-world-divisible",
             "not divisible by pp * ep * etp = 4");
  expectClean("ep=4", moe(), 8);
}

TEST(PlanValidation, SequenceParallelNeedsTensorParallel) {
  expectOnly("sp", dense(), 1, "sp-needs-tp", "needs tp > 1, got tp=1");
  expectClean("tp=2,sp", dense(), 2);
}

TEST(PlanValidation, HeadsDivideByTp) {
  ModelFacts m = dense();
  m.heads = 6;
  m.kvHeads = 2;
  m.hidden = 48;
  // Heads that do not divide by tp: their key/value heads do not either.
  std::vector<PlanProblem> problems = check("tp=4", m, 4);
  ASSERT_EQ(problems.size(), 2u) << dump(problems);
  EXPECT_EQ(problems[0].rule, "heads-tp");
  EXPECT_EQ(problems[0].message,
            "attention heads (6) must be divisible by tp (4)");
  EXPECT_EQ(problems[1].rule, "kv-heads-replicated");
  m.heads = 12;
  m.kvHeads = 4;
  expectClean("tp=4", m, 4);
}

TEST(PlanValidation, KeyValueHeads) {
  ModelFacts m = dense();
  m.kvHeads = 2;
  // A multiple of tp: split.
  expectClean("tp=2", m, 2);
  // A divisor of tp: replicated, as Megatron-Core does.
  expectOnly("tp=4", m, 4, "kv-heads-replicated",
             "key/value heads (2) < tp (4): each key/value head is computed "
             "on 2 tensor-parallel ranks",
             PlanSeverity::Note);
  // Neither: refused, as Megatron-Core's TransformerConfig refuses it.
  m.heads = 12;
  m.kvHeads = 3;
  expectOnly("tp=2", m, 2, "kv-heads-tp",
             "key/value heads (3) must be a multiple or a divisor of tp (2)");
  m.kvHeads = 6;
  expectOnly("tp=4", m, 4, "kv-heads-tp",
             "key/value heads (6) must be a multiple or a divisor of tp (4)");
}

TEST(PlanValidation, FeedForwardDividesByTp) {
  ModelFacts m = dense();
  m.ffn = 250;
  expectOnly("tp=4", m, 4, "ffn-tp",
             "the feed-forward size (250) must be divisible by tp (4)");
  expectClean("tp=2", m, 2);
}

TEST(PlanValidation, VocabularyPadding) {
  ModelFacts m = dense();
  m.vocab = 50257;
  // Megatron pads GPT-2's vocabulary to 50304 with tp = 1, 50432 with 2.
  expectOnly("", m, 1, "vocab-padding",
             "the vocabulary (50257) is not a multiple of vocab_multiple * "
             "tp = 128 * 1; Megatron pads it to 50304 (+47)",
             PlanSeverity::Note);
  expectOnly("tp=2", m, 2, "vocab-padding", "pads it to 50432",
             PlanSeverity::Note);
  expectOnly("tp=2,vocab_multiple=1", m, 2, "vocab-padding",
             "not a multiple of vocab_multiple * tp = 1 * 2; Megatron pads it "
             "to 50258 (+1)",
             PlanSeverity::Note);
  // 1024 is a multiple of 128 * 2.
  expectClean("tp=2", dense(), 2);
}

TEST(PlanValidation, SequenceDividesForSequenceParallel) {
  ModelFacts m = dense();
  m.heads = m.kvHeads = 12;
  m.hidden = 96;
  m.ffn = 384;
  m.vocab = 384;
  m.seq = 20;
  expectOnly("tp=3,sp", m, 3, "seq-sp",
             "with sp, each rank's sequence (seq / cp = 20 / 1 = 20) must be "
             "divisible by tp (3)");
  expectClean("tp=3", m, 3);
  m.seq = 24;
  expectClean("tp=3,sp", m, 3);
  // With cp, each rank's part of the sequence splits over tp.
  m.seq = 16;
  expectOnly("tp=3,sp,cp=2", m, 6, "seq-sp", "(seq / cp = 16 / 2 = 8)");
}

TEST(PlanValidation, SequenceDividesForContextParallel) {
  ModelFacts m = dense();
  m.seq = 36;
  expectOnly("cp=4", m, 4, "seq-cp",
             "the sequence (36) must be divisible by 2 * cp = 8");
  expectClean("cp=2", m, 2);
}

TEST(PlanValidation, ContextParallelExchange) {
  ModelFacts m = dense();
  m.seq = 32;
  expectOnly("cp_comm=a2a", m, 1, "cp-comm-needs-cp",
             "cp_comm=a2a sets how context parallelism communicates and "
             "needs cp > 1");
  // Ulysses splits the heads over tp * cp.
  m.heads = 6;
  m.kvHeads = 6;
  expectOnly("cp=4,cp_comm=a2a", m, 4, "heads-cp-a2a",
             "cp_comm=a2a splits the attention heads (6) over tp * cp = 1 * "
             "4; they must be divisible by it");
  expectClean("cp=2,cp_comm=a2a", m, 2);
  // The key/value heads travel the same all-to-all.
  m.heads = 8;
  m.kvHeads = 2;
  expectOnly("cp=4,cp_comm=a2a", m, 4, "heads-cp-a2a",
             "cp_comm=a2a splits the key/value heads (2) over tp * cp = 1 * "
             "4; they must be divisible by it");
  m.kvHeads = 6;
  expectClean("cp=4,cp_comm=p2p", m, 4);
  expectClean("cp=4,cp_comm=all_gather", m, 4);
  // Hierarchical: all-to-all within groups of cp_a2a ranks, a ring of them.
  m.kvHeads = 2;
  expectClean("cp=4,cp_comm=a2a+p2p,cp_a2a=2", m, 4);
  expectOnly("cp=4,cp_comm=a2a+p2p", m, 4, "cp-a2a-size",
             "cp_comm=a2a+p2p needs cp_a2a, the ranks of each all-to-all "
             "group (Megatron's first --hierarchical-context-parallel-sizes)");
  expectOnly("cp=4,cp_comm=a2a+p2p,cp_a2a=4", m, 4, "cp-a2a-size",
             "cp_a2a (4) must be a divisor of cp (4) strictly between 1 and "
             "cp: all-to-all groups of cp_a2a ranks, a ring of cp / cp_a2a of "
             "them");
  expectOnly("cp=4,cp_a2a=2", m, 4, "cp-a2a-needs-hierarchical",
             "cp_a2a sets the all-to-all groups of cp_comm=a2a+p2p (with cp > "
             "1)");
  expectOnly("tp=2,cp=4,cp_comm=a2a+p2p,cp_a2a=2", m, 8, "heads-cp-a2a",
             "cp_comm=a2a+p2p splits the key/value heads (2) over tp * cp_a2a "
             "= 2 * 2; they must be divisible by it");
}

TEST(PlanValidation, GlobalBatch) {
  expectOnly("dp=4,mbs=2,gbs=12", dense(), 4, "gbs-divisible",
             "gbs (12) must be divisible by mbs * dp = 2 * 4 = 8");
  expectClean("dp=4,mbs=2,gbs=16", dense(), 4);
  // gbs omitted: one microbatch of mbs * dp rows.
  expectClean("mbs=3", dense(), 4);
}

TEST(PlanValidation, ModelBatch) {
  ModelFacts m = dense();
  m.batch = 4;
  expectOnly("mbs=1", m, 2, "model-batch",
             "the model's batch (4 rows per global microbatch) must be mbs * "
             "dp = 1 * 2 = 2");
  expectClean("mbs=2", m, 2);
  expectClean("mbs=1,gbs=8", m, 4);
}

TEST(PlanValidation, PipelineLayers) {
  expectOnly("pp=3,gbs=3", dense(), 3, "layers-pp",
             "the layers (8) must be divisible by pp (3)");
  expectClean("pp=4,gbs=4", dense(), 4);
}

TEST(PlanValidation, VirtualStages) {
  // Megatron accepts one of the two ways to ask for interleaving.
  expectOnly("pp=2,vpp=2,vpp_layers=2,gbs=2", dense(), 2, "vpp-exclusive",
             "not both");
  // 8 layers, pp = 2: 4 per stage.
  expectOnly("pp=2,vpp=3,gbs=2", dense(), 2, "layers-vpp",
             "the layers per stage (layers / pp = 4) must be divisible by "
             "vpp (3)");
  expectOnly("pp=2,vpp_layers=3,gbs=2", dense(), 2, "layers-vpp",
             "must be divisible by vpp_layers (3)");
  expectOnly("pp=2,vpp_layers=2,gbs=2", ModelFacts(), 2, "layers-vpp",
             "vpp_layers needs the model's number of layers");
  expectClean("pp=2,vpp=2,gbs=2", dense(), 2);
  expectClean("pp=2,vpp_layers=2,gbs=2", dense(), 2);
  // vpp_layers = the layers per stage: no interleaving, as in Megatron.
  expectClean("pp=2,vpp_layers=4,gbs=2", dense(), 2);
  expectClean("pp=2,vpp_layers=4,schedule=1f1b,gbs=2", dense(), 2);

  expectOnly("vpp=2", dense(), 1, "vpp-needs-pp",
             "virtual pipeline stages (vpp = 2) need pipeline parallelism");
  expectOnly("vpp_layers=4", dense(), 1, "vpp-needs-pp", "(vpp = 2)");
}

TEST(PlanValidation, Schedules) {
  expectOnly("schedule=1f1b", dense(), 1, "schedule-needs-pp",
             "schedule=1f1b needs pipeline parallelism (pp > 1)");
  expectOnly("pp=2,schedule=interleaved,gbs=2", dense(), 2, "schedule-vpp",
             "schedule=interleaved needs virtual pipeline stages (vpp > 1)");
  expectOnly("pp=2,vpp=2,schedule=gpipe,gbs=2", dense(), 2, "schedule-vpp",
             "virtual pipeline stages (vpp = 2) need schedule=1f1b or "
             "interleaved, got gpipe");
  expectOnly("pp=2,vpp=2,schedule=zb-h1,gbs=2", dense(), 2, "schedule-vpp",
             "got zb-h1");
  for (llvm::StringRef schedule : {"gpipe", "1f1b", "zb-h1"})
    expectClean("pp=2,gbs=2,schedule=" + schedule.str(), dense(), 2);
  expectClean("pp=2,vpp=2,schedule=interleaved,gbs=4", dense(), 2);
  // 1F1B with virtual stages is interleaved 1F1B.
  expectClean("pp=2,vpp=2,schedule=1f1b,gbs=4", dense(), 2);
}

TEST(PlanValidation, InterleavedMicrobatches) {
  expectOnly("pp=2,vpp=2,gbs=3", dense(), 2, "interleaved-microbatches",
             "the microbatches (gbs / (mbs * dp) = 3) to be a multiple of pp "
             "(2)");
  expectClean("pp=2,vpp=2,gbs=6", dense(), 2);
}

TEST(PlanValidation, PipelineMicrobatches) {
  expectOnly("pp=4,gbs=2", dense(), 4, "pp-microbatches",
             "only 2 microbatches for 4 pipeline stages",
             PlanSeverity::Warning);
  expectClean("pp=4,gbs=4", dense(), 4);
}

TEST(PlanValidation, ExpertParallelismNeedsMoE) {
  expectOnly("ep=2", dense(), 2, "ep-needs-moe",
             "ep=2 splits experts, but the model is dense");
  expectOnly("tp=2,etp=1", dense(), 2, "ep-needs-moe",
             "etp=1 splits experts, but the model is dense");
  expectClean("tp=2,etp=2", dense(), 2);
  expectClean("ep=2", moe(), 2);
  expectOnly("dispatcher=allgather", dense(), 1, "dispatcher-needs-moe",
             "dispatcher=allgather moves tokens to experts, but the model is "
             "dense");
  expectClean("ep=2,dispatcher=allgather", moe(), 2);
}

TEST(PlanValidation, ExpertsDivideByEp) {
  ModelFacts m = moe();
  m.experts = 6;
  expectOnly("ep=4", m, 4, "experts-ep",
             "the experts (6) must be divisible by ep (4)");
  expectClean("ep=3", m, 3);
}

TEST(PlanValidation, MoETensorParallelNeedsSp) {
  expectOnly("tp=2", moe(), 2, "moe-tp-sp", "needs sp");
  expectOnly("tp=2,ep=2,etp=1", moe(), 2, "moe-tp-sp", "needs sp");
  expectClean("tp=2,sp", moe(), 2);
}

TEST(PlanValidation, ExpertFeedForwardDividesByEtp) {
  ModelFacts m = moe();
  m.ffn = 60;
  expectOnly("tp=8,sp", m, 8, "expert-ffn-etp",
             "each expert's feed-forward size (60) must be divisible by etp "
             "(8)");
  expectClean("tp=8,sp,etp=2,dp=1", m, 8);
  // The dense rule is not the MoE one: 60 does not divide by 8.
  EXPECT_EQ(find(check("tp=8,sp,etp=2", m, 8), "ffn-tp"), nullptr);
}

TEST(PlanValidation, ZeroNeedsDataParallelRanks) {
  expectOnly("zero=1", dense(), 1, "zero-needs-dp",
             "zero=1 shards over the data-parallel ranks (dp * cp), but there "
             "is one",
             PlanSeverity::Warning);
  expectClean("zero=1", dense(), 2);
  // Megatron's distributed optimizer shards over dp and cp.
  expectClean("zero=1,cp=2", dense(), 2);
  // Experts shard over their own data-parallel ranks (edp = 2 here).
  expectClean("zero=1,tp=2,sp,etp=1", moe(), 2);
  expectOnly("zero=1,tp=2,sp", moe(), 2, "zero-needs-dp", "",
             PlanSeverity::Warning);
}

TEST(PlanValidation, OneProblemPerRule) {
  // A plan that breaks several rules reports each once, in rule order.
  ModelFacts m = dense();
  m.heads = m.kvHeads = 6;
  m.hidden = 48;
  m.ffn = 250;
  m.vocab = 1000;
  std::vector<PlanProblem> problems = check("tp=4,sp=0,pp=3", m, 12);
  std::vector<std::string> rules;
  for (const PlanProblem &p : problems)
    rules.push_back(p.rule);
  EXPECT_EQ(rules, (std::vector<std::string>{"heads-tp", "kv-heads-tp",
                                             "ffn-tp", "vocab-padding",
                                             "layers-pp", "pp-microbatches"}))
      << dump(problems);
}

TEST(PlanValidation, UnknownFactsSkipTheirRules) {
  // Nothing about the model is known: only the degrees are checked.
  expectClean("tp=3,sp,pp=5,gbs=5", ModelFacts(), 15);
}

TEST(PlanValidation, ZooSizedPlans) {
  // Llama 3 70B on 64 GPUs, as in the Megatron-Core guide: TP=4, PP=4,
  // CP=2, DP=2, gbs 512.
  ModelFacts llama;
  llama.layers = 80;
  llama.hidden = 8192;
  llama.heads = 64;
  llama.kvHeads = 8;
  llama.ffn = 28672;
  llama.vocab = 128256;
  llama.seq = 8192;
  // Megatron pads its 128256 tokens to 128512.
  expectOnly("tp=4,sp,pp=4,cp=2,gbs=512", llama, 64, "vocab-padding",
             "pads it to 128512", PlanSeverity::Note);
  // Mixtral 8x7B: TP=1, PP=4, EP=8 on 64 GPUs.
  ModelFacts mixtral = llama;
  mixtral.layers = 32;
  mixtral.hidden = 4096;
  mixtral.heads = 32;
  mixtral.ffn = 14336;
  mixtral.vocab = 32000;
  mixtral.seq = 4096;
  mixtral.experts = 8;
  mixtral.topK = 2;
  expectClean("pp=4,ep=8,gbs=64", mixtral, 64);
}

TEST(PlanSupport, SupportedPlans) {
  EXPECT_TRUE(checkSupported(spec("tp=2,sp,dp=2,zero=1,mbs=1,gbs=8")).empty());
  EXPECT_TRUE(checkSupported(spec("zero=3,recompute=full")).empty());
  EXPECT_TRUE(checkSupported(spec("tp=2,etp=2")).empty());
  ModelFacts m = dense();
  EXPECT_TRUE(checkSupported(spec("tp=8"), &m).empty());
}

TEST(PlanSupport, NotSupportedYet) {
  auto rulesOf = [](llvm::StringRef text, const ModelFacts *model = nullptr) {
    std::vector<std::string> rules;
    for (const PlanProblem &p : checkSupported(spec(text), model)) {
      EXPECT_EQ(p.severity, PlanSeverity::Unsupported);
      rules.push_back(p.rule);
    }
    return rules;
  };
  using Rules = std::vector<std::string>;
  // Pipeline parallelism is compiled (-loom-split-pipeline).
  EXPECT_EQ(rulesOf("pp=2"), Rules{});
  EXPECT_EQ(rulesOf("pp=2,vpp=2"), Rules{});
  EXPECT_EQ(rulesOf("pp=2,vpp_layers=2"), Rules{});
  // Context parallelism: the ring (the default), all_gather, a2a and the
  // hierarchical a2a+p2p are compiled, with experts too.
  EXPECT_EQ(rulesOf("cp=2"), Rules{});
  EXPECT_EQ(rulesOf("cp=2,cp_comm=p2p"), Rules{});
  EXPECT_EQ(rulesOf("cp=4,cp_comm=a2a+p2p,cp_a2a=2"), Rules{});
  EXPECT_EQ(rulesOf("cp=4,cp_comm=a2a+p2p,cp_a2a=2,ep=2"), Rules{});
  EXPECT_EQ(rulesOf("cp=2,cp_comm=all_gather"), Rules{});
  EXPECT_EQ(rulesOf("cp=2,cp_comm=a2a"), Rules{});
  // Expert parallelism: both dispatchers are compiled, with cp too, and
  // etp = tp or 1 (the folding itself is checked with the layout), but not
  // an etp between 1 and tp.
  EXPECT_EQ(rulesOf("ep=2"), Rules{});
  EXPECT_EQ(rulesOf("ep=2,dispatcher=allgather"), Rules{});
  EXPECT_EQ(rulesOf("ep=2,dispatcher=alltoall"), Rules{});
  EXPECT_EQ(rulesOf("ep=2,cp=2,cp_comm=all_gather"), Rules{});
  EXPECT_EQ(rulesOf("tp=2,etp=1"), Rules{});
  EXPECT_EQ(rulesOf("tp=4,etp=2"), Rules{"unsupported-etp"});
  ModelFacts m = dense();
  m.kvHeads = 2;
  EXPECT_EQ(rulesOf("tp=4", &m), Rules{"unsupported-kv-replication"});
  EXPECT_EQ(rulesOf("tp=2", &m), Rules{});
  EXPECT_EQ(rulesOf("tp=4"), Rules{});
  EXPECT_EQ(rulesOf("tp=4,sp,pp=2,cp=2,cp_comm=a2a+p2p,ep=4,etp=2"),
            (Rules{"unsupported-etp"}));

  std::vector<PlanProblem> problems = checkSupported(spec("tp=4,etp=2"));
  EXPECT_TRUE(hasErrors(problems));
  EXPECT_EQ(formatPlanProblem(problems[0]),
            "not supported yet: expert tensor parallelism other than tp or 1 "
            "(etp=2, tp=4): experts split over part of the tensor-parallel "
            "ranks are not compiled yet [unsupported-etp]");
}

TEST(PlanSupport, HasErrorsAndFormat) {
  EXPECT_FALSE(hasErrors({}));
  EXPECT_FALSE(hasErrors(
      {{"r", "m", PlanSeverity::Note}, {"r", "m", PlanSeverity::Warning}}));
  EXPECT_TRUE(hasErrors(
      {{"r", "m", PlanSeverity::Note}, {"r", "m", PlanSeverity::Error}}));
  EXPECT_EQ(formatPlanProblem(
                {"sp-needs-tp", "sp needs tp > 1", PlanSeverity::Error}),
            "error: sp needs tp > 1 [sp-needs-tp]");
  EXPECT_EQ(formatPlanProblem({"r", "m", PlanSeverity::Warning}),
            "warning: m [r]");
  EXPECT_EQ(formatPlanProblem({"r", "m", PlanSeverity::Note}), "note: m [r]");
}

TEST(PlanSupport, ImpliedWorldSize) {
  EXPECT_EQ(impliedWorldSize(spec("")), 1);
  EXPECT_EQ(impliedWorldSize(spec("tp=2,dp=3")), 6);
  EXPECT_EQ(impliedWorldSize(spec("tp=2,pp=2,cp=2")), 8);
  // MoE folding: the minimum, not the product of all degrees.
  EXPECT_EQ(impliedWorldSize(spec("tp=2,ep=8,etp=1")), 8);
  EXPECT_EQ(impliedWorldSize(spec("tp=2,ep=8")), 16);
  EXPECT_EQ(impliedWorldSize(spec("pp=2,tp=2,ep=8,etp=1")), 16);
  EXPECT_EQ(impliedWorldSize(spec("tp=65536,dp=65536")), -1);
  PlanSpec bad;
  bad.tp = 0;
  EXPECT_EQ(impliedWorldSize(bad), -1);
}

} // namespace
