//===- PlanSpecTest.cpp - Plan spec syntax, aliases, printer
//---------------===//

#include "loom/Plan/PlanSpec.h"

#include "gtest/gtest.h"

#include <string>
#include <vector>

using namespace loom;

namespace {

PlanSpec parse(llvm::StringRef text) {
  llvm::Expected<PlanSpec> spec = parsePlanSpec(text);
  if (!spec) {
    ADD_FAILURE() << "'" << text.str()
                  << "': " << llvm::toString(spec.takeError());
    return PlanSpec();
  }
  return *spec;
}

PlanSpec parseFlags(const std::vector<std::string> &args) {
  llvm::Expected<PlanSpec> spec = parseMegatronFlags(args);
  if (!spec) {
    ADD_FAILURE() << llvm::toString(spec.takeError());
    return PlanSpec();
  }
  return *spec;
}

/// The error of parsing `text`, or "" when it parses.
std::string parseError(llvm::StringRef text) {
  llvm::Expected<PlanSpec> spec = parsePlanSpec(text);
  if (spec)
    return "";
  return llvm::toString(spec.takeError());
}

std::string flagsError(const std::vector<std::string> &args) {
  llvm::Expected<PlanSpec> spec = parseMegatronFlags(args);
  if (spec)
    return "";
  return llvm::toString(spec.takeError());
}

TEST(PlanSpec, Defaults) {
  PlanSpec spec = parse("");
  EXPECT_EQ(spec, PlanSpec());
  EXPECT_EQ(spec.tp, 1);
  EXPECT_FALSE(spec.sp);
  EXPECT_EQ(spec.cp, 1);
  EXPECT_EQ(spec.pp, 1);
  EXPECT_EQ(spec.vpp, 1);
  EXPECT_FALSE(spec.vppLayers);
  EXPECT_FALSE(spec.dp);
  EXPECT_EQ(spec.ep, 1);
  EXPECT_FALSE(spec.etp);
  EXPECT_EQ(spec.zero, 0);
  EXPECT_EQ(spec.mbs, 1);
  EXPECT_FALSE(spec.gbs);
  EXPECT_FALSE(spec.schedule);
  EXPECT_EQ(spec.recompute, RecomputeGranularity::None);
  EXPECT_EQ(spec.vocabMultiple, 128);
  EXPECT_EQ(parse("  "), PlanSpec());
}

TEST(PlanSpec, EveryKey) {
  PlanSpec spec = parse("tp=4,sp,pp=4,vpp=2,cp=2,dp=2,ep=2,etp=1,zero=1,mbs=3,"
                        "gbs=512,schedule=interleaved,recompute=selective,"
                        "vocab_multiple=64");
  EXPECT_EQ(spec.tp, 4);
  EXPECT_TRUE(spec.sp);
  EXPECT_EQ(spec.pp, 4);
  EXPECT_EQ(spec.vpp, 2);
  EXPECT_EQ(spec.cp, 2);
  EXPECT_EQ(spec.dp, 2);
  EXPECT_EQ(spec.ep, 2);
  EXPECT_EQ(spec.etp, 1);
  EXPECT_EQ(spec.zero, 1);
  EXPECT_EQ(spec.mbs, 3);
  EXPECT_EQ(spec.gbs, 512);
  EXPECT_EQ(spec.schedule, PipelineSchedule::Interleaved);
  EXPECT_EQ(spec.recompute, RecomputeGranularity::Selective);
  EXPECT_EQ(spec.vocabMultiple, 64);
  EXPECT_EQ(parse("vpp_layers=3").vppLayers, 3);
  // Megatron's uneven layout, by key, alias and flag; it round-trips.
  PlanSpec uneven =
      parse("pp=4,first_layers=3,decoder_last_pipeline_num_layers=1");
  EXPECT_EQ(uneven.firstLayers, 3);
  EXPECT_EQ(uneven.lastLayers, 1);
  EXPECT_EQ(toString(uneven), "pp=4,first_layers=3,last_layers=1");
  EXPECT_EQ(parse(toString(uneven)), uneven);
  // Context parallelism's exchange and the MoE dispatcher (Megatron's
  // --cp-comm-type and --moe-token-dispatcher-type).
  PlanSpec cpEp =
      parse("cp=2,cp_comm=a2a,ep=4,moe_token_dispatcher_type=allgather");
  EXPECT_EQ(cpEp.cpComm, CpCommType::A2A);
  EXPECT_EQ(cpEp.dispatcher, TokenDispatcher::AllGather);
  EXPECT_EQ(toString(cpEp), "cp=2,cp_comm=a2a,ep=4,dispatcher=allgather");
  EXPECT_EQ(parse("cp=2,cp_comm_type=a2a+p2p").cpComm, CpCommType::A2AP2P);
  llvm::Expected<PlanSpec> cpFlags =
      parseMegatronFlags({"--context-parallel-size", "2", "--cp-comm-type",
                          "a2a", "--expert-model-parallel-size", "4",
                          "--moe-token-dispatcher-type", "allgather"});
  ASSERT_TRUE(static_cast<bool>(cpFlags));
  EXPECT_EQ(*cpFlags, cpEp);
  llvm::Expected<PlanSpec> flags =
      parseMegatronFlags({"--pipeline-model-parallel-size", "4",
                          "--decoder-first-pipeline-num-layers", "3",
                          "--decoder-last-pipeline-num-layers=1"});
  ASSERT_TRUE(static_cast<bool>(flags));
  EXPECT_EQ(*flags, uneven);
}

TEST(PlanSpec, OrderAndSpacesDoNotMatter) {
  EXPECT_EQ(parse("tp=2,sp,dp=2,zero=1,mbs=1,gbs=8"),
            parse(" gbs = 8 , mbs=1,zero=1, dp=2 ,sp ,tp=2 "));
}

TEST(PlanSpec, FlagValues) {
  EXPECT_TRUE(parse("sp").sp);
  EXPECT_TRUE(parse("sp=true").sp);
  EXPECT_TRUE(parse("sp=1").sp);
  EXPECT_FALSE(parse("sp=false").sp);
  EXPECT_FALSE(parse("sp=0").sp);
  // Python's spelling, as Megatron-Bridge overrides write it.
  EXPECT_TRUE(parse("sequence_parallel=True").sp);
  EXPECT_FALSE(parse("sequence_parallel=False").sp);
}

TEST(PlanSpec, EnumValues) {
  EXPECT_EQ(parse("schedule=gpipe").schedule, PipelineSchedule::GPipe);
  EXPECT_EQ(parse("schedule=1f1b").schedule, PipelineSchedule::OneFOneB);
  EXPECT_EQ(parse("schedule=interleaved-1f1b").schedule,
            PipelineSchedule::Interleaved);
  EXPECT_EQ(parse("schedule=zb-h1").schedule, PipelineSchedule::ZeroBubbleH1);
  EXPECT_EQ(parse("recompute=full").recompute, RecomputeGranularity::Full);
  EXPECT_EQ(parse("recompute=none").recompute, RecomputeGranularity::None);
  for (int level = 0; level <= 3; ++level)
    EXPECT_EQ(parse("zero=" + std::to_string(level)).zero, level);
  EXPECT_EQ(parse("zero=no_shard").zero, 0);
  EXPECT_EQ(parse("zero=optim").zero, 1);
  EXPECT_EQ(parse("zero=optim_grads").zero, 2);
  EXPECT_EQ(parse("zero=optim_grads_params").zero, 3);
}

TEST(PlanSpec, KeyAliases) {
  // Megatron-Core's and Megatron-Bridge's configuration names, with '_' or
  // '-'.
  EXPECT_EQ(parse("tensor_model_parallel_size=2,sequence_parallel,"
                  "pipeline_model_parallel_size=2,"
                  "virtual_pipeline_model_parallel_size=2,"
                  "context_parallel_size=2,data_parallel_size=2,"
                  "expert_model_parallel_size=2,"
                  "expert_tensor_parallel_size=1,"
                  "data_parallel_sharding_strategy=optim_grads,"
                  "micro_batch_size=2,global_batch_size=64,"
                  "recompute_granularity=full,"
                  "make_vocab_size_divisible_by=256"),
            parse("tp=2,sp,pp=2,vpp=2,cp=2,dp=2,ep=2,etp=1,zero=2,mbs=2,"
                  "gbs=64,recompute=full,"
                  "vocab_multiple=256"));
  EXPECT_EQ(parse("tensor-model-parallel-size=2,sequence-parallel"),
            parse("tp=2,sp"));
  EXPECT_EQ(parse("num-virtual-stages-per-pipeline-rank=3"), parse("vpp=3"));
  EXPECT_EQ(parse("num_layers_per_virtual_pipeline_stage=2"),
            parse("vpp_layers=2"));
  EXPECT_EQ(parse("use_distributed_optimizer"), parse("zero=1"));
  EXPECT_EQ(parse("recompute_activations"), parse("recompute=selective"));
}

TEST(PlanSpec, MegatronFlags) {
  // The brief's command line and the plan spec it stands for.
  PlanSpec expected = parse("tp=2,sp,zero=1,mbs=1,gbs=8,vpp_layers=4");
  EXPECT_EQ(parseFlags({"--tensor-model-parallel-size", "2",
                        "--sequence-parallel", "--pipeline-model-parallel-size",
                        "1", "--context-parallel-size", "1",
                        "--expert-model-parallel-size", "1",
                        "--use-distributed-optimizer", "--micro-batch-size",
                        "1", "--global-batch-size", "8",
                        "--num-layers-per-virtual-pipeline-stage", "4"}),
            expected);
  // One string, as `--plan "..."` passes it; `--flag=value` also works.
  EXPECT_EQ(parse("--tensor-model-parallel-size 2 --sequence-parallel\t"
                  "--use-distributed-optimizer\n--micro-batch-size=1 "
                  "--global-batch-size 8 "
                  "--num-layers-per-virtual-pipeline-stage 4"),
            expected);
  EXPECT_EQ(parseFlags({"--expert-tensor-parallel-size", "2",
                        "--num-virtual-stages-per-pipeline-rank", "2",
                        "--make-vocab-size-divisible-by", "64"}),
            parse("etp=2,vpp=2,vocab_multiple=64"));
  EXPECT_EQ(parseFlags({}), PlanSpec());
}

TEST(PlanSpec, MegatronZeroFlags) {
  auto zeroOf = [](const std::vector<std::string> &args) {
    return parseFlags(args).zero;
  };
  EXPECT_EQ(zeroOf({}), 0);
  EXPECT_EQ(zeroOf({"--use-distributed-optimizer"}), 1);
  // Megatron FSDP defaults to optim_grads_params.
  EXPECT_EQ(zeroOf({"--use-megatron-fsdp"}), 3);
  EXPECT_EQ(zeroOf({"--use-megatron-fsdp", "--use-distributed-optimizer"}), 3);
  EXPECT_EQ(zeroOf({"--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                    "optim_grads"}),
            2);
  EXPECT_EQ(zeroOf({"--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                    "optim"}),
            1);
  EXPECT_EQ(zeroOf({"--use-megatron-fsdp", "--data-parallel-sharding-strategy",
                    "no_shard"}),
            0);
  // The guide's plain DDP: --data-parallel-sharding-strategy no_shard.
  EXPECT_EQ(zeroOf({"--data-parallel-sharding-strategy", "no_shard"}), 0);
  EXPECT_EQ(zeroOf({"--data-parallel-sharding-strategy", "optim",
                    "--use-distributed-optimizer"}),
            1);
  EXPECT_EQ(zeroOf({"--use-torch-fsdp2"}), 3);
  EXPECT_EQ(zeroOf({"--use-torch-fsdp2", "--data-parallel-sharding-strategy",
                    "optim_grads_params"}),
            3);

  EXPECT_NE(flagsError({"--use-distributed-optimizer",
                        "--data-parallel-sharding-strategy", "optim_grads"})
                .find("asks for zero=2 but --use-distributed-optimizer "
                      "(argument 1) is zero=1"),
            std::string::npos);
  EXPECT_NE(flagsError({"--use-torch-fsdp2", "--use-distributed-optimizer"})
                .find("cannot be combined with --use-distributed-optimizer"),
            std::string::npos);
  EXPECT_NE(flagsError({"--use-torch-fsdp2", "--use-megatron-fsdp"})
                .find("cannot be combined with --use-megatron-fsdp"),
            std::string::npos);
  EXPECT_NE(flagsError({"--use-torch-fsdp2",
                        "--data-parallel-sharding-strategy", "optim"})
                .find("asks for zero=1"),
            std::string::npos);
}

TEST(PlanSpec, MegatronRecomputeFlags) {
  auto recomputeOf = [](const std::vector<std::string> &args) {
    return parseFlags(args).recompute;
  };
  EXPECT_EQ(recomputeOf({"--recompute-activations"}),
            RecomputeGranularity::Selective);
  EXPECT_EQ(recomputeOf({"--recompute-granularity", "selective"}),
            RecomputeGranularity::Selective);
  EXPECT_EQ(recomputeOf({"--recompute-granularity", "full"}),
            RecomputeGranularity::Full);
  EXPECT_EQ(
      recomputeOf({"--recompute-granularity", "full", "--recompute-method",
                   "uniform", "--recompute-num-layers", "1"}),
      RecomputeGranularity::Full);

  EXPECT_NE(
      flagsError({"--recompute-activations", "--recompute-granularity", "full"})
          .find("--recompute-activations (argument 1) means selective"),
      std::string::npos);
  EXPECT_NE(flagsError({"--recompute-method", "uniform"})
                .find("needs --recompute-granularity full"),
            std::string::npos);
  EXPECT_NE(flagsError({"--recompute-granularity", "full", "--recompute-method",
                        "block", "--recompute-num-layers", "4"})
                .find("(--recompute-method uniform --recompute-num-layers "
                      "1); got --recompute-method block "
                      "--recompute-num-layers 4"),
            std::string::npos);
  EXPECT_NE(flagsError({"--recompute-granularity", "none"})
                .find("needs full or selective, got 'none'"),
            std::string::npos);
}

TEST(PlanSpec, MegatronFlagErrors) {
  EXPECT_EQ(flagsError({"--tensor-model-parallel-size", "two"}),
            "argument 2 ('two', the value of --tensor-model-parallel-size): "
            "--tensor-model-parallel-size needs a positive integer, got "
            "'two'");
  EXPECT_EQ(flagsError({"--sequence-parallel", "--tensor-model-parallel-size"}),
            "argument 2 ('--tensor-model-parallel-size'): "
            "--tensor-model-parallel-size needs a value");
  EXPECT_EQ(flagsError({"--tensor-model-parallel-size", "--sequence-parallel"}),
            "argument 1 ('--tensor-model-parallel-size'): "
            "--tensor-model-parallel-size needs a value");
  EXPECT_EQ(
      flagsError({"--sequence-parallel=true"}),
      "argument 1 ('--sequence-parallel=true'): --sequence-parallel takes no "
      "value");
  EXPECT_NE(flagsError({"--num-layers", "32"})
                .find("argument 1 ('--num-layers'): unknown flag "
                      "'--num-layers'"),
            std::string::npos);
  EXPECT_EQ(flagsError({"--micro-batch-size", "1", "--micro-batch-size=2"}),
            "argument 3 ('--micro-batch-size=2'): --micro-batch-size is "
            "already given at argument 1");
  EXPECT_EQ(flagsError({"2"}),
            "argument 1 ('2'): expected a flag starting with '--'");
  EXPECT_EQ(flagsError({"--context-parallel-size", "0"}),
            "argument 2 ('0', the value of --context-parallel-size): "
            "--context-parallel-size needs a positive integer, got '0'");
  EXPECT_NE(flagsError({"--data-parallel-sharding-strategy", "full"})
                .find("needs no_shard, optim, optim_grads or "
                      "optim_grads_params, got 'full'"),
            std::string::npos);
  EXPECT_EQ(parseError("--tensor-model-parallel-size 2 tp=2"),
            "argument 3 ('tp=2'): expected a flag starting with '--'");
}

TEST(PlanSpec, ErrorsNameTheEntryAndColumn) {
  EXPECT_EQ(parseError("tp=2,pp=x"),
            "column 6 ('pp=x'): pp needs a positive integer, got 'x'");
  EXPECT_EQ(parseError("tp=0"),
            "column 1 ('tp=0'): tp needs a positive integer, got '0'");
  EXPECT_EQ(parseError("tp=-2"),
            "column 1 ('tp=-2'): tp needs a positive integer, got '-2'");
  EXPECT_EQ(parseError("tp=4294967296"),
            "column 1 ('tp=4294967296'): tp needs a positive integer, got "
            "'4294967296'");
  EXPECT_EQ(parseError("tp"), "column 1 ('tp'): tp needs a value");
  EXPECT_EQ(parseError("tp="),
            "column 1 ('tp='): tp needs a positive integer, got ''");
  EXPECT_EQ(parseError("tp=2, depth=3"),
            "column 7 ('depth=3'): unknown key 'depth'; the keys are tp, sp, "
            "pp, vpp, vpp_layers, first_layers, last_layers, cp, cp_comm, dp, "
            "ep, etp, dispatcher, zero, mbs, gbs, schedule, recompute, "
            "vocab_multiple");
  EXPECT_EQ(parseError("tp=2,sp,tp=4"),
            "column 9 ('tp=4'): tp is already set at column 1");
  EXPECT_EQ(parseError("tp=2,tensor_model_parallel_size=2"),
            "column 6 ('tensor_model_parallel_size=2'): tp is already set at "
            "column 1");
  EXPECT_EQ(parseError("zero=1,use_distributed_optimizer"),
            "column 8 ('use_distributed_optimizer'): zero is already set at "
            "column 1");
  EXPECT_EQ(parseError("tp=2,,sp"),
            "column 6: empty entry (two commas, or a comma at an end)");
  EXPECT_EQ(parseError("tp=2,"),
            "column 6: empty entry (two commas, or a comma at an end)");
  EXPECT_EQ(parseError("sp=yes"),
            "column 1 ('sp=yes'): sp is a flag: give no value, or true or "
            "false; got 'yes'");
  EXPECT_EQ(parseError("zero=4"),
            "column 1 ('zero=4'): zero needs 0, 1, 2, 3 or a sharding "
            "strategy (no_shard, optim, optim_grads, optim_grads_params), "
            "got '4'");
  EXPECT_EQ(parseError("schedule=zb"),
            "column 1 ('schedule=zb'): schedule needs gpipe, 1f1b, "
            "interleaved or zb-h1, got 'zb'");
  EXPECT_EQ(parseError("recompute=some"),
            "column 1 ('recompute=some'): recompute needs none, selective or "
            "full, got 'some'");
  EXPECT_EQ(parseError("data_parallel_sharding_strategy=2"),
            "column 1 ('data_parallel_sharding_strategy=2'): "
            "data_parallel_sharding_strategy needs no_shard, optim, "
            "optim_grads or optim_grads_params, got '2'");
}

TEST(PlanSpec, CanonicalText) {
  EXPECT_EQ(toString(PlanSpec()), "tp=1");
  EXPECT_EQ(toString(parse("gbs=8,mbs=1,zero=1,dp=2,sp,tp=2")),
            "tp=2,sp,dp=2,zero=1,gbs=8");
  EXPECT_EQ(toString(parse("recompute=selective,schedule=interleaved,cp=2,"
                           "vpp=2,pp=4,sp,tp=4,zero=1,gbs=512,dp=2,"
                           "mbs=2,etp=1,ep=2,vocab_multiple=64,"
                           "vpp_layers=2")),
            "tp=4,sp,pp=4,vpp=2,vpp_layers=2,cp=2,dp=2,ep=2,etp=1,zero=1,mbs=2,"
            "gbs=512,schedule=interleaved,recompute=selective,"
            "vocab_multiple=64");
  // Aliases print as the canonical keys.
  EXPECT_EQ(toString(parse("--tensor-model-parallel-size 2 "
                           "--sequence-parallel --use-megatron-fsdp")),
            "tp=2,sp,zero=3");
}

TEST(PlanSpec, RoundTrip) {
  std::vector<std::string> specs = {
      "",
      "tp=1",
      "sp",
      "dp=1",
      "etp=1",
      "mbs=1",
      "gbs=1",
      "tp=2,sp,dp=2,zero=1,mbs=1,gbs=8",
      "tp=8,sp,pp=4,vpp=2,cp=2,dp=2,zero=1,mbs=1,gbs=512,schedule=1f1b,"
      "recompute=selective",
      "pp=2,vpp_layers=3,schedule=gpipe,recompute=full",
      "ep=8,etp=2,tp=4,sp,zero=3,schedule=zb-h1,vocab_multiple=1",
      "sp=false,zero=0,recompute=none,vpp=1,schedule=interleaved",
  };
  for (const std::string &text : specs) {
    PlanSpec spec = parse(text);
    std::string printed = toString(spec);
    EXPECT_EQ(parse(printed), spec) << text << " printed as " << printed;
    EXPECT_EQ(toString(parse(printed)), printed);
  }
}

TEST(PlanSpec, KeyTable) {
  llvm::ArrayRef<PlanKeyInfo> keys = getPlanKeys();
  std::vector<std::string> names;
  for (const PlanKeyInfo &key : keys) {
    names.push_back(key.name.str());
    EXPECT_FALSE(key.description.empty()) << key.name.str();
    EXPECT_FALSE(key.megatronFlags.empty()) << key.name.str();
    // Every alias parses to its key.
    for (llvm::StringRef alias : key.aliases) {
      std::string value = key.valueHint.empty() ? "" : "=2";
      if (key.name == "zero")
        value = alias == "use_distributed_optimizer" ? "" : "=optim_grads";
      if (key.name == "recompute")
        value = alias == "recompute_activations" ? "" : "=selective";
      if (key.name == "cp_comm")
        value = "=a2a";
      if (key.name == "dispatcher")
        value = "=allgather";
      EXPECT_NE(parse(alias.str() + value), PlanSpec()) << alias.str() << value;
      EXPECT_NE(toString(parse(alias.str() + value)).find(key.name.str()),
                std::string::npos)
          << alias.str();
    }
  }
  EXPECT_EQ(
      names,
      (std::vector<std::string>{
          "tp",         "sp",           "pp",          "vpp",
          "vpp_layers", "first_layers", "last_layers", "cp",
          "cp_comm",    "cp_a2a",       "dp",          "ep",
          "etp",        "dispatcher",   "zero",        "mbs",
          "gbs",        "schedule",     "recompute",   "vocab_multiple"}));
}

} // namespace
