//===- LoaderTest.cpp - Loader and verifier tests -------------------------===//

#include "ProgramBuilder.h"
#include "loom/runtime/Program.h"

#include <gtest/gtest.h>

#include <algorithm>

using namespace loom::runtime;
using loom::test::ProgramBuilder;
using loom::test::TAttr;

namespace {

/// x[2,3] @ w[3,4] -> y[2,4], then gelu and an all_reduce over tp.
ProgramBuilder smallProgram() {
  ProgramBuilder b("small");
  b.mesh = {{"dp", 1}, {"tp", 1}};
  uint32_t x = b.input("x", DType::F32, {2, 3});
  std::vector<float> wv(12, 0.5f);
  uint32_t w = b.constantF32("w", {3, 4}, wv);
  uint32_t t = b.buffer("t", DType::F32, {2, 4});
  uint32_t y = b.output("y", DType::F32, {2, 4});
  int32_t tp = b.comm({"tp"});
  b.op(Opcode::Matmul, {x, w}, {t}, {TAttr::B("transpose_rhs", false)});
  b.op(Opcode::Gelu, {t}, {t}, {TAttr::S("approximate", "tanh")});
  b.op(Opcode::AllReduce, {t}, {y}, {TAttr::S("reduction", "sum")}, tp);
  return b;
}

std::string loadError(const std::vector<uint8_t> &bytes) {
  try {
    Program::load(bytes.data(), bytes.size());
  } catch (const ProgramError &e) {
    return e.what();
  }
  return "";
}

std::string loadError(const ProgramBuilder &b) { return loadError(b.finish()); }

TEST(Loader, LoadsValidProgram) {
  auto bytes = smallProgram().finish();
  auto p = Program::load(bytes.data(), bytes.size());
  EXPECT_EQ(p->name(), "small");
  EXPECT_EQ(p->buffers().size(), 4u);
  EXPECT_EQ(p->instructions().size(), 3u);
  EXPECT_EQ(p->communicators()[0].size, 1);
  EXPECT_EQ(p->findInput("x"), 0);
  EXPECT_EQ(p->findOutput("y"), 3);
  EXPECT_EQ(p->findOutput("nope"), -1);
  EXPECT_EQ(verifyProgram(bytes.data(), bytes.size()), "");
}

TEST(Loader, StableDump) {
  auto bytes = smallProgram().finish();
  auto p = Program::load(bytes.data(), bytes.size());
  const char *golden = R"(loom.program "small" version 1.4
mesh @world [dp=1, tp=1]
arena 160
constants 48
buffer %0 "x" input f32[2,3] offset 0 size 24
buffer %1 "w" constant f32[3,4] offset 0 size 48
buffer %2 "t" arena f32[2,4] offset 64 size 32
buffer %3 "y" output f32[2,4] offset 128 size 32
comm #0 @world [tp] size 1
input "x" = %0
output "y" = %3
0: %2 = matmul(%0, %1) {transpose_rhs = false} loc("test.mlir:1:1")
1: %2 = gelu(%2) {approximate = "tanh"} loc("test.mlir:2:1")
2: %3 = all_reduce(%2) comm #0 {reduction = "sum"} loc("test.mlir:3:1")
)";
  EXPECT_EQ(p->dump(), golden);
}

TEST(Loader, DumpShowsRankDependentAttributes) {
  ProgramBuilder b;
  b.mesh = {{"cp", 2}};
  uint32_t x = b.input("x", DType::F32, {8, 2});
  uint32_t y = b.output("y", DType::F32, {4, 2});
  b.op(Opcode::Slice, {x}, {y},
       {TAttr::Is("offsets", {0, 0}).term("cp", {4, 0}),
        TAttr::Is("sizes", {4, 2})});
  auto bytes = b.finish();
  auto p = Program::load(bytes.data(), bytes.size());
  EXPECT_NE(p->dump().find("offsets = [0, 0] + [4, 0] * cp"), std::string::npos)
      << p->dump();
}

TEST(Loader, RejectsEveryTruncation) {
  auto bytes = smallProgram().finish();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + n);
    std::string err = loadError(cut);
    EXPECT_NE(err, "") << "truncated to " << n << " bytes";
  }
}

TEST(Loader, RefusesEveryBitFlip) {
  // The checksum catches every flip that the structure does not.
  auto bytes = smallProgram().finish();
  for (size_t i = 0; i < bytes.size() * 8; ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    std::string err = verifyProgram(bad.data(), bad.size());
    EXPECT_EQ(err.rfind("invalid Loom program", 0), 0u)
        << "bit " << i << ": " << err;
  }
}

TEST(Loader, SurvivesEveryBitFlipOfAResealedProgram) {
  // Past the checksum (a flip the writer sealed), the verifier's rules:
  // rejected with a message or a valid program, never a crash.
  auto bytes = smallProgram().finish();
  size_t rejected = 0;
  for (size_t i = 0; i < bytes.size() * 8; ++i) {
    std::vector<uint8_t> bad = bytes;
    bad[i / 8] ^= static_cast<uint8_t>(1u << (i % 8));
    sealProgram(bad);
    std::string err = verifyProgram(bad.data(), bad.size());
    if (!err.empty()) {
      EXPECT_EQ(err.rfind("invalid Loom program", 0), 0u) << err;
      ++rejected;
    }
  }
  EXPECT_GT(rejected, bytes.size() * 2);
}

TEST(Loader, ChecksumNamesTheDamage) {
  // A letter of the program's name: the file stays well-formed.
  auto bytes = smallProgram().finish();
  std::string name = "small";
  auto at = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  ASSERT_NE(at, bytes.end());
  *at = 't';
  EXPECT_NE(loadError(bytes).find("the checksum does not match: the file is "
                                  "damaged"),
            std::string::npos)
      << loadError(bytes);
  auto legacy = smallProgram();
  legacy.major = 1;
  legacy.minor = 0;
  legacy.instrs[0].attrs = {TAttr::B("transpose_b", false)};
  auto old = legacy.finish();
  std::shared_ptr<const Program> program =
      Program::load(old.data(), old.size());
  EXPECT_FALSE(program->hasChecksum());
  auto current = smallProgram().finish();
  EXPECT_TRUE(Program::load(current.data(), current.size())->hasChecksum());
}

TEST(Loader, RejectsWrongIdentifier) {
  auto bytes = smallProgram().finish();
  bytes[8] = 'X';
  EXPECT_NE(loadError(bytes).find("identifier"), std::string::npos);
}

TEST(Loader, RejectsOtherMajorVersion) {
  auto b = smallProgram();
  b.major = 2;
  b.minor = 0;
  EXPECT_NE(loadError(b).find("format version 2.0 is not supported"),
            std::string::npos);
  b.major = 1;
  b.minor = 7; // newer minor versions load
  EXPECT_EQ(loadError(b), "");
}

TEST(Loader, RejectsOffsetOutsideArena) {
  auto b = smallProgram();
  b.buffers[2].offset = 4096;
  std::string err = loadError(b);
  EXPECT_NE(err.find("buffer 2 't': bytes [4096, 4128) lie outside the arena "
                     "of 160 bytes"),
            std::string::npos)
      << err;
}

TEST(Loader, RejectsHugeOffsetWithoutOverflow) {
  auto b = smallProgram();
  b.buffers[2].offset = ~uint64_t(0) - 7;
  EXPECT_NE(loadError(b).find("outside the arena"), std::string::npos);
}

TEST(Loader, RejectsConstantOutsideBlob) {
  auto b = smallProgram();
  b.buffers[1].offset = 64;
  EXPECT_NE(loadError(b).find("outside the constants blob"), std::string::npos);
}

TEST(Loader, RejectsSizeInconsistentWithShape) {
  auto b = smallProgram();
  b.buffers[2].size = 31;
  EXPECT_NE(
      loadError(b).find("byte size 31 does not match f32[2,4] (32 bytes)"),
      std::string::npos);
}

TEST(Loader, RejectsMisalignedOffset) {
  auto b = smallProgram();
  b.buffers[2].offset = 66;
  EXPECT_NE(loadError(b).find("not aligned"), std::string::npos);
}

TEST(Loader, RejectsBadIds) {
  auto b = smallProgram();
  b.buffers[1].id = 7;
  EXPECT_NE(loadError(b).find("does not equal its index"), std::string::npos);

  auto c = smallProgram();
  c.instrs[1].operands = {42};
  std::string err = loadError(c);
  EXPECT_NE(err.find("instruction 1 (gelu) at test.mlir:2:1: operand 0 is "
                     "buffer 42, but there are only 4 buffers"),
            std::string::npos)
      << err;
}

TEST(Loader, RejectsUnknownOpcodeAndDType) {
  auto b = smallProgram();
  b.instrs[0].op = static_cast<Opcode>(999);
  EXPECT_NE(loadError(b).find("unknown opcode 999"), std::string::npos);
  auto c = smallProgram();
  c.buffers[2].dtype = static_cast<DType>(9);
  EXPECT_NE(loadError(c).find("unknown dtype 9"), std::string::npos);
}

TEST(Loader, RejectsMatmulDimMismatch) {
  ProgramBuilder b;
  uint32_t a = b.input("a", DType::F32, {2, 3});
  uint32_t w = b.input("w", DType::F32, {4, 5});
  uint32_t y = b.output("y", DType::F32, {2, 5});
  b.op(Opcode::Matmul, {a, w}, {y}, {}, -1, "model.mlir:7:3");
  std::string err = loadError(b);
  EXPECT_NE(err.find("instruction 0 (matmul) at model.mlir:7:3: contraction "
                     "dims differ: operand 0 (buffer 0 'a', f32[2,3]) has K = "
                     "3, operand 1 (buffer 1 'w', f32[4,5]) has K = 4"),
            std::string::npos)
      << err;
  b.instrs[0].attrs = {TAttr::B("transpose_rhs", true)};
  b.buffers[1].shape = {5, 3};
  b.buffers[1].size = 60;
  EXPECT_EQ(loadError(b), "");
}

TEST(Loader, RejectsAttributeProblems) {
  auto b = smallProgram();
  b.instrs[1].attrs = {TAttr::S("approximate", "fast")};
  EXPECT_NE(loadError(b).find("approximate must be one of none, tanh; got "
                              "'fast'"),
            std::string::npos);
  b.instrs[1].attrs = {TAttr::I("approximate", 1)};
  EXPECT_NE(loadError(b).find("must be of kind string, got int"),
            std::string::npos);
  b.instrs[1].attrs = {TAttr::F("alpha", 1)};
  EXPECT_NE(loadError(b).find("gelu has no attribute 'alpha'"),
            std::string::npos);

  ProgramBuilder c;
  uint32_t x = c.input("x", DType::F32, {4});
  uint32_t y = c.output("y", DType::F32, {4});
  c.op(Opcode::Scale, {x}, {y});
  EXPECT_NE(loadError(c).find("scale requires attribute 'factor' (float)"),
            std::string::npos);
  c.instrs[0].attrs = {TAttr::F("factor", 2).term("x", {1})};
  EXPECT_NE(loadError(c).find("depends on mesh 0, but the program has 0 "
                              "meshes"),
            std::string::npos);
}

TEST(Loader, RejectsBadCommunicators) {
  auto b = smallProgram();
  b.instrs[2].comm = 3;
  EXPECT_NE(loadError(b).find("all_reduce needs a communicator; id 3"),
            std::string::npos);
  auto c = smallProgram();
  c.comms[0].second = {"pp"};
  EXPECT_NE(loadError(c).find(
                "axis 'pp' is not an axis of mesh 'world' [dp=1, tp=1]"),
            std::string::npos);
  auto e = smallProgram();
  e.comms[0].first = 1;
  EXPECT_NE(loadError(e).find("communicator 0: names mesh 1, but the program "
                              "has 1 meshes"),
            std::string::npos);
  auto d = smallProgram();
  d.instrs[1].comm = 0;
  EXPECT_NE(loadError(d).find("gelu is not a collective"), std::string::npos);
}

TEST(Loader, BindingNamesAreFileNames) {
  for (const char *bad : {"../../x", "..", "a/b", "a\\b"}) {
    auto b = smallProgram();
    b.outputs[0].first = bad;
    EXPECT_NE(loadError(b).find("output '" + std::string(bad) +
                                "' must not be '.', '..' or contain"),
              std::string::npos)
        << bad;
  }
}

TEST(Loader, MeshesSpanTheSameRanks) {
  auto b = smallProgram();
  b.moreMeshes = {{"experts", {{"ep", 2}}}};
  EXPECT_NE(loadError(b).find("mesh 'experts' has 2 ranks but mesh 'world' "
                              "has 1; the meshes of a program span the same "
                              "ranks"),
            std::string::npos);
  b.moreMeshes = {{"world", {{"ep", 1}}}};
  EXPECT_NE(loadError(b).find("mesh 'world' is declared twice"),
            std::string::npos);
  b.moreMeshes = {{"experts", {{"ep", 1}}}};
  EXPECT_EQ(loadError(b), "");
}

/// A pipeline program of `stageCount` stage programs over `mesh`.
ProgramBuilder
pipelineProgram(std::vector<std::pair<std::string, int64_t>> mesh,
                int stageCount) {
  ProgramBuilder p("step");
  p.mesh = mesh;
  for (int s = 0; s < stageCount; ++s) {
    ProgramBuilder stage("step_pp" + std::to_string(s));
    stage.mesh = mesh;
    uint32_t x = stage.input("x", DType::F32, {4});
    uint32_t y = stage.output("y" + std::to_string(s), DType::F32, {4});
    stage.op(Opcode::Neg, {x}, {y});
    p.stages.push_back(stage.finish());
  }
  return p;
}

TEST(Loader, PipelineProgramHoldsOneProgramPerStage) {
  std::vector<uint8_t> bytes =
      pipelineProgram({{"pp", 2}, {"tp", 2}}, 2).finish();
  auto program = Program::load(bytes.data(), bytes.size());
  ASSERT_TRUE(program->isPipeline());
  ASSERT_EQ(program->stages().size(), 2u);
  // Megatron order: tp fastest, so ranks 0-1 are stage 0, 2-3 stage 1.
  EXPECT_EQ(program->stageOf(1), 0u);
  EXPECT_EQ(program->stageOf(2), 1u);
  EXPECT_EQ(programForRank(program, 3)->name(), "step_pp1");
  EXPECT_NE(program->dump().find("stage 1\nloom.program \"step_pp1\""),
            std::string::npos);
}

TEST(Loader, RejectsMalformedPipelinePrograms) {
  // A stage per pp coordinate, no more and no fewer.
  EXPECT_NE(loadError(pipelineProgram({{"pp", 2}}, 3))
                .find("the program has 3 stages for a 'pp' axis of size 2"),
            std::string::npos);
  EXPECT_NE(loadError(pipelineProgram({{"dp", 2}}, 2))
                .find("a pipeline program's mesh [dp=2] has no 'pp' axis"),
            std::string::npos);
  // Stages run on the program's mesh.
  ProgramBuilder other = pipelineProgram({{"pp", 2}}, 2);
  ProgramBuilder wrong("step_pp1");
  wrong.mesh = {{"pp", 2}, {"tp", 2}};
  wrong.op(Opcode::Neg, {wrong.input("x", DType::F32, {4})},
           {wrong.output("y", DType::F32, {4})});
  other.stages[1] = wrong.finish();
  EXPECT_NE(loadError(other).find("stage 1 runs on mesh [pp=2, tp=2], not the "
                                  "program's [pp=2]"),
            std::string::npos);
  // A damaged stage is named.
  ProgramBuilder damaged = pipelineProgram({{"pp", 2}}, 2);
  damaged.stages[0].resize(damaged.stages[0].size() - 8);
  EXPECT_NE(loadError(damaged).find("stage 0: "), std::string::npos);
  // Stages do not nest (nor recurse as deep as a file lets them).
  ProgramBuilder nested = pipelineProgram({{"pp", 2}}, 2);
  nested.stages[0] = pipelineProgram({{"pp", 2}}, 2).finish();
  EXPECT_NE(loadError(nested).find("stage 0: a pipeline program's stage holds "
                                   "stages of its own"),
            std::string::npos);
  // Nothing of its own beside the stages.
  ProgramBuilder mixed = pipelineProgram({{"pp", 2}}, 2);
  mixed.op(Opcode::Neg, {mixed.input("x", DType::F32, {4})},
           {mixed.output("y", DType::F32, {4})});
  EXPECT_NE(loadError(mixed).find("holds its stages' programs and no buffers"),
            std::string::npos);
}

TEST(Loader, ReadsTheOneMeshOfFormat1_0) {
  auto b = smallProgram();
  b.major = 1;
  b.minor = 0;
  b.instrs[0].attrs = {TAttr::B("transpose_b", false)};
  std::vector<uint8_t> bytes = b.finish();
  auto program = Program::load(bytes.data(), bytes.size());
  ASSERT_EQ(program->meshes().size(), 1u);
  EXPECT_EQ(program->meshes()[0].name, "mesh");
  EXPECT_EQ(program->communicators()[0].axisNames,
            std::vector<std::string>{"tp"});
}

TEST(Loader, RejectsCollectiveShapeMismatch) {
  ProgramBuilder b;
  b.mesh = {{"tp", 4}};
  uint32_t x = b.input("x", DType::F32, {2, 3});
  uint32_t y = b.output("y", DType::F32, {2, 6});
  int32_t tp = b.comm({"tp"});
  b.op(Opcode::AllGather, {x}, {y}, {TAttr::I("gather_dim", 1)}, tp);
  EXPECT_NE(loadError(b).find("must have shape [2,12]"), std::string::npos);
  b.buffers[1].shape = {2, 12};
  b.buffers[1].size = 96;
  b.arenaTop = 256;
  EXPECT_EQ(loadError(b), "");
}

TEST(Loader, RejectsUnbalancedGroups) {
  ProgramBuilder b;
  b.mesh = {{"pp", 2}};
  uint32_t x = b.input("x", DType::F32, {4});
  uint32_t y = b.output("y", DType::F32, {4});
  int32_t pp = b.comm({"pp"});
  b.op(Opcode::GroupStart, {}, {});
  b.op(Opcode::Send, {x}, {}, {TAttr::I("peer_shift", 1)}, pp);
  b.op(Opcode::Recv, {}, {y}, {TAttr::I("peer_shift", -1)}, pp);
  EXPECT_NE(loadError(b).find(
                "instruction 0 (group_start) at test.mlir:1:1: group_start "
                "has no matching group_end"),
            std::string::npos);
  b.op(Opcode::GroupEnd, {}, {});
  EXPECT_EQ(loadError(b), "");
  b.op(Opcode::GroupEnd, {}, {});
  EXPECT_NE(loadError(b).find("group_end without a matching group_start"),
            std::string::npos);
}

TEST(Loader, RejectsReadBeforeWrite) {
  ProgramBuilder b;
  uint32_t x = b.input("x", DType::F32, {4});
  uint32_t t = b.buffer("t", DType::F32, {4});
  uint32_t y = b.output("y", DType::F32, {4});
  b.op(Opcode::Add, {x, t}, {y});
  EXPECT_NE(loadError(b).find("operand 1 (buffer 1 't', f32[4]) is read "
                              "before any instruction writes it"),
            std::string::npos);
}

TEST(Loader, RejectsPartialOverlap) {
  ProgramBuilder b;
  uint32_t x = b.input("x", DType::F32, {8});
  uint32_t y = b.bufferAt("y", DType::F32, {8}, 16, BufferKind::Output);
  b.outputs.push_back({"y", y});
  b.op(Opcode::Silu, {x}, {y});
  EXPECT_NE(loadError(b).find("only an exact in-place alias is allowed"),
            std::string::npos);
}

TEST(Loader, RejectsOverlapWithParameter) {
  ProgramBuilder b;
  uint32_t w = b.parameter("w", DType::F32, {8});
  b.bufferAt("t", DType::F32, {4}, 8);
  (void)w;
  EXPECT_NE(loadError(b).find(
                "overlaps parameter buffer 0 'w' (it persists across runs)"),
            std::string::npos);
}

TEST(Loader, RejectsEventWaitWithoutRecord) {
  ProgramBuilder b;
  b.op(Opcode::EventWait, {}, {}, {TAttr::I("event", 3)});
  EXPECT_NE(loadError(b).find("waits on event 3"), std::string::npos);
}

TEST(Loader, RejectsSliceOutOfBoundsForSomeRank) {
  ProgramBuilder b;
  b.mesh = {{"cp", 4}};
  uint32_t x = b.input("x", DType::F32, {8});
  uint32_t y = b.output("y", DType::F32, {4});
  b.op(Opcode::Slice, {x}, {y},
       {TAttr::Is("offsets", {0}).term("cp", {2}), TAttr::Is("sizes", {4})});
  EXPECT_NE(loadError(b).find("slice [0..6, +4) is out of bounds"),
            std::string::npos);
}

// Context parallelism: some rank's queries would stand past the keys.
TEST(Loader, RejectsQueryOffsetPastTheKeysForSomeRank) {
  ProgramBuilder b;
  b.mesh = {{"cp", 4}};
  uint32_t q = b.input("q", DType::F32, {1, 4, 2, 8});
  uint32_t k = b.input("k", DType::F32, {1, 8, 2, 8});
  uint32_t o = b.output("o", DType::F32, {1, 4, 2, 8});
  b.op(Opcode::Attention, {q, k, k}, {o},
       {TAttr::B("causal", true), TAttr::I("query_offset", 0).term("cp", {4})});
  EXPECT_NE(loadError(b).find("query positions [0..12, +4) lie outside the 8 "
                              "key positions"),
            std::string::npos)
      << loadError(b);
}

// Expert parallelism: some rank's block of experts past total_experts.
TEST(Loader, RejectsExpertBlockPastTheExpertsForSomeRank) {
  ProgramBuilder b;
  b.mesh = {{"dp", 4}};
  uint32_t x = b.input("x", DType::F32, {8, 4});
  uint32_t ids = b.input("ids", DType::I32, {8, 2});
  uint32_t y = b.output("y", DType::F32, {2, 8, 4});
  b.op(Opcode::Dispatch, {x, ids}, {y},
       {TAttr::I("num_experts", 2), TAttr::I("capacity", 8),
        TAttr::I("expert_start", 0).term("dp", {2}),
        TAttr::I("total_experts", 6)});
  EXPECT_NE(loadError(b).find("experts [0..6, +2) lie outside the 6 experts "
                              "(total_experts)"),
            std::string::npos)
      << loadError(b);
}

// Token groups that do not divide the tokens or an expert's slots.
TEST(Loader, RejectsTokenGroupsThatDoNotDivide) {
  for (int64_t groups : {0, 3}) {
    ProgramBuilder b;
    uint32_t x = b.input("x", DType::F32, {8, 4});
    uint32_t ids = b.input("ids", DType::I32, {8, 2});
    uint32_t y = b.output("y", DType::F32, {2, 4, 4});
    b.op(Opcode::Dispatch, {x, ids}, {y},
         {TAttr::I("num_experts", 2), TAttr::I("capacity", 4),
          TAttr::I("token_groups", groups)});
    EXPECT_NE(loadError(b).find("token_groups (" + std::to_string(groups) +
                                ") must be >= 1 and divide the 8 tokens and "
                                "the 4 slots of each expert"),
              std::string::npos)
        << loadError(b);
  }
}

TEST(Loader, RejectsUnboundInput) {
  ProgramBuilder b;
  b.buffer("x", DType::F32, {4}, BufferKind::Input);
  EXPECT_NE(loadError(b).find("has no input binding"), std::string::npos);
}

TEST(Loader, LoadFileReportsMissingFile) {
  try {
    Program::loadFile("/nonexistent/p.loom");
    FAIL();
  } catch (const ProgramError &e) {
    EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos);
  }
}

} // namespace

namespace {

/// Inputs the fuzzer once crashed on (runtime/test/fuzz-regressions).
TEST(Loader, RejectsFuzzerRegressions) {
  struct Case {
    const char *file, *message;
  } cases[] = {
      {"misaligned-vector.loom", "shape vector is misaligned"},
      {"shape-overflow.loom", "more than 2^50 elements"},
  };
  for (const Case &c : cases) {
    std::string path =
        std::string(LOOM_TEST_DATA_DIR) + "/fuzz-regressions/" + c.file;
    try {
      Program::loadFile(path);
      ADD_FAILURE() << path << " loaded";
    } catch (const ProgramError &e) {
      EXPECT_NE(std::string(e.what()).find(c.message), std::string::npos)
          << e.what();
    }
  }
}

} // namespace
