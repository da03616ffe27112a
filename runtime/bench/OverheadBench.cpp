//===- OverheadBench.cpp - Per-instruction overhead of the executor -------===//
//
// Runs a program of tiny element-wise instructions (4 floats each) and prints
// the wall time per instruction: essentially the executor's dispatch cost.
//
// usage: loom-bench-overhead [INSTRUCTIONS=10000] [RUNS=200]
//
//===----------------------------------------------------------------------===//

#include "ProgramBuilder.h"
#include "loom/runtime/Runtime.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

using namespace loom::runtime;
using namespace loom::test;

int main(int argc, char **argv) {
  int count = argc > 1 ? std::atoi(argv[1]) : 10000;
  int runs = argc > 2 ? std::atoi(argv[2]) : 200;

  // Four tiny buffers and a rotating mix of cheap ops.
  ProgramBuilder b("tiny_ops");
  uint32_t x = b.input("x", DType::F32, {4});
  uint32_t t0 = b.buffer("t0", DType::F32, {4});
  uint32_t t1 = b.buffer("t1", DType::F32, {4});
  uint32_t y = b.output("y", DType::F32, {4});
  b.op(Opcode::Copy, {x}, {t0});
  b.op(Opcode::Fill, {}, {t1}, {TAttr::F("value", 1)});
  for (int i = 2; i < count - 1; ++i) {
    switch (i % 4) {
    case 0:
      b.op(Opcode::Add, {t0, t1}, {t0});
      break;
    case 1:
      b.op(Opcode::Scale, {t0}, {t1}, {TAttr::F("factor", 0.5)});
      break;
    case 2:
      b.op(Opcode::Mul, {t0, t1}, {t1});
      break;
    default:
      b.op(Opcode::Silu, {t1}, {t0});
      break;
    }
  }
  b.op(Opcode::Copy, {t0}, {y});
  auto bytes = b.finish();
  auto prog = Program::load(bytes.data(), bytes.size());
  Executor exec(prog, {});
  std::vector<float> in = {0.1f, 0.2f, 0.3f, 0.4f};
  exec.setInput("x", in.data(), 16);
  exec.run(); // warm up

  double best = 1e30, total = 0;
  for (int r = 0; r < runs; ++r) {
    auto t = std::chrono::steady_clock::now();
    exec.run();
    double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t)
            .count();
    best = std::min(best, s);
    total += s;
  }
  size_t n = prog->instructions().size();
  std::printf(
      "tiny-op program: %zu instructions (add/scale/mul/silu on f32[4]), "
      "%d runs\n",
      n, runs);
  std::printf("per instruction: best %.3f us, mean %.3f us\n", best / n * 1e6,
              total / runs / n * 1e6);
  return 0;
}
