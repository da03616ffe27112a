//===- SeedCorpus.cpp - Writes valid Loom programs as fuzzer seeds --------===//
//
// Usage: loom-fuzz-seeds DIR. Writes a few small programs covering most
// opcodes, attribute kinds, rank-dependent terms and collectives.
//
//===----------------------------------------------------------------------===//

#include "ProgramBuilder.h"

#include <cstdio>
#include <fstream>

using namespace loom::test;
using loom::runtime::DType;
using loom::runtime::Opcode;

static void write(const std::string &dir, const std::string &name,
                  const ProgramBuilder &b) {
  auto bytes = b.finish();
  std::ofstream(dir + "/" + name + ".loom", std::ios::binary)
      .write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::string dir = argv[1];
  {
    ProgramBuilder b("mlp");
    b.mesh = {{"dp", 2}, {"tp", 2}};
    int32_t tp = b.comm({"tp"});
    uint32_t x = b.input("x", DType::F32, {4, 8});
    std::vector<float> wv(64, 0.25f);
    uint32_t w = b.constantF32("w", {8, 8}, wv);
    uint32_t t = b.buffer("t", DType::F32, {4, 8});
    uint32_t n = b.parameter("n", DType::F32, {8});
    uint32_t y = b.output("y", DType::F32, {4, 8});
    b.op(Opcode::Matmul, {x, w}, {t}, {TAttr::B("transpose_rhs", true)});
    b.op(Opcode::Gelu, {t}, {t}, {TAttr::S("approximate", "tanh")});
    b.op(Opcode::RmsNorm, {t, n}, {t}, {TAttr::F("epsilon", 1e-5)});
    b.op(Opcode::AllReduce, {t}, {y}, {TAttr::S("reduction", "sum")}, tp);
    write(dir, "mlp", b);
  }
  {
    ProgramBuilder b("shapes");
    b.mesh = {{"cp", 2}};
    uint32_t x = b.input("x", DType::BF16, {2, 4, 2, 4});
    uint32_t s = b.buffer("s", DType::BF16, {2, 2, 2, 4});
    uint32_t r = b.buffer("r", DType::BF16, {2, 2, 2, 4});
    uint32_t t = b.buffer("t", DType::BF16, {4, 2, 2, 2});
    uint32_t y = b.output("y", DType::BF16, {4, 2, 4});
    b.op(Opcode::Slice, {x}, {s},
         {TAttr::Is("offsets", {0, 0, 0, 0}).term("cp", {0, 2, 0, 0}),
          TAttr::Is("sizes", {2, 2, 2, 4})});
    b.op(Opcode::Rope, {s}, {r},
         {TAttr::F("theta", 1e4),
          TAttr::I("position_offset", 0).term("cp", {2}, 1)});
    b.op(Opcode::Transpose, {r}, {t}, {TAttr::Is("permutation", {3, 0, 1, 2})});
    b.op(Opcode::Reshape, {t}, {y});
    write(dir, "shapes", b);
  }
  {
    ProgramBuilder b("moe");
    b.mesh = {{"ep", 2}};
    int32_t ep = b.comm({"ep"});
    uint32_t x = b.input("x", DType::F32, {4, 8});
    uint32_t l = b.input("l", DType::F32, {4, 2});
    uint32_t w = b.buffer("w", DType::F32, {4, 1});
    uint32_t i = b.buffer("i", DType::I32, {4, 1});
    uint32_t d = b.buffer("d", DType::F32, {2, 4, 8});
    uint32_t a = b.buffer("a", DType::F32, {2, 4, 8});
    uint32_t g = b.parameter("g", DType::F32, {2, 8, 8});
    uint32_t e = b.buffer("e", DType::F32, {2, 4, 8});
    uint32_t y = b.output("y", DType::F32, {4, 8});
    b.op(Opcode::Router, {l}, {w, i},
         {TAttr::I("top_k", 1), TAttr::B("softmax_before_topk", true)});
    b.op(Opcode::Dispatch, {x, i}, {d},
         {TAttr::I("num_experts", 2), TAttr::I("capacity", 4)});
    b.op(Opcode::AllToAll, {d}, {a},
         {TAttr::I("split_dim", 0), TAttr::I("concat_dim", 0)}, ep);
    b.op(Opcode::GroupedMatmul, {a, g}, {e});
    b.op(Opcode::Combine, {e, w, i}, {y});
    write(dir, "moe", b);
  }
  {
    ProgramBuilder b("pipeline");
    b.mesh = {{"pp", 2}, {"tp", 1}};
    int32_t pp = b.comm({"pp"});
    uint32_t x = b.input("x", DType::F16, {2, 2});
    uint32_t ids = b.input("ids", DType::I64, {2});
    uint32_t y = b.output("y", DType::F16, {2, 2});
    uint32_t loss = b.output("loss", DType::F32, {});
    b.op(Opcode::EventRecord, {}, {}, {TAttr::I("event", 0)});
    b.op(Opcode::GroupStart, {}, {});
    b.op(Opcode::Send, {x}, {}, {TAttr::I("peer_shift", 1)}, pp).stream = 1;
    b.op(Opcode::Recv, {}, {y}, {TAttr::I("peer_shift", -1)}, pp).stream = 1;
    b.op(Opcode::GroupEnd, {}, {});
    b.op(Opcode::EventWait, {}, {}, {TAttr::I("event", 0)});
    b.op(Opcode::CrossEntropy, {y, ids}, {loss});
    write(dir, "pipeline", b);
  }
  return 0;
}
