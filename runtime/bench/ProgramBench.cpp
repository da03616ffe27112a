//===- ProgramBench.cpp - A program vs. its matmuls alone through OpenBLAS ===//
//
// Loads a compiled program, binds seeded inputs, and times run() (best of
// RUNS). Then it replays only the program's matmul and grouped-matmul
// instructions as cblas_sgemm calls on plain arrays of the same shapes, and
// prints both times and their ratio: how much the rest of the program (and
// the runtime itself) costs on top of the matmuls.
//
// usage: loom-bench-program PROGRAM.loom [RUNS=10]
//
//===----------------------------------------------------------------------===//

#include "BenchUtil.h"
#include "loom/runtime/KernelMath.h"
#include "loom/runtime/Runtime.h"
#include "loom/runtime/SeededInputs.h"

#include <algorithm>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

using namespace loom::runtime;
using loom::bench::bestOf;

namespace {

/// One sgemm of the replay: C[m, n] = op(A)[m, k] · op(B)[k, n], `batch` times.
struct Gemm {
  int batch, m, n, k;
  bool transA, transB;
  std::vector<float> a, b, c;
};

Gemm gemmFor(const Program &program, const InstrInfo &instr) {
  const BufferInfo &a = program.buffers()[instr.operands[0]];
  const BufferInfo &b = program.buffers()[instr.operands[1]];
  const BufferInfo &c = program.buffers()[instr.results[0]];
  Gemm g;
  if (instr.op == Opcode::GroupedMatmul) {
    g.transA = false;
    g.transB = instr.getBool("transpose_weight");
    g.batch = static_cast<int>(a.shape[0]);
    g.m = static_cast<int>(a.shape[1]);
    g.k = static_cast<int>(a.shape[2]);
    g.n = static_cast<int>(c.shape[2]);
  } else {
    g.transA = instr.getBool("transpose_lhs");
    g.transB = instr.getBool("transpose_rhs");
    math::MatmulDims d = math::matmulDims(
        a.shape.data(), static_cast<int>(a.shape.size()), b.shape.data(),
        static_cast<int>(b.shape.size()), g.transA, g.transB);
    g.batch = static_cast<int>(d.batch);
    g.m = static_cast<int>(d.m);
    g.n = static_cast<int>(d.n);
    g.k = static_cast<int>(d.k);
    // A weight shared by the batch is one big [batch·m, k] x [k, n] product,
    // as the CPU backend computes it.
    if (b.shape.size() == 2 && !g.transA) {
      g.m *= g.batch;
      g.batch = 1;
    }
  }
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1, 1);
  g.a.resize(size_t(g.batch) * g.m * g.k);
  g.b.resize(size_t(g.batch) * g.k * g.n);
  g.c.resize(size_t(g.batch) * g.m * g.n);
  for (float &x : g.a)
    x = dist(rng);
  for (float &x : g.b)
    x = dist(rng);
  return g;
}

void runGemm(Gemm &g) {
  for (int i = 0; i < g.batch; ++i)
    cblas_sgemm(CblasRowMajor, g.transA ? CblasTrans : CblasNoTrans,
                g.transB ? CblasTrans : CblasNoTrans, g.m, g.n, g.k, 1.0f,
                g.a.data() + size_t(i) * g.m * g.k, g.transA ? g.m : g.k,
                g.b.data() + size_t(i) * g.k * g.n, g.transB ? g.k : g.n, 0.0f,
                g.c.data() + size_t(i) * g.m * g.n, g.n);
}

} // namespace

int main(int argc, char **argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: loom-bench-program PROGRAM.loom [RUNS=10]\n");
    return 2;
  }
  int runs = argc > 2 ? std::atoi(argv[2]) : 10;
  try {
    auto program = Program::loadFile(argv[1]);
    Executor exec(program, ExecutorOptions{});
    for (const Binding &binding : program->inputs())
      exec.setInput(binding.name,
                    seededInput(*program, program->buffers()[binding.buffer],
                                /*seed=*/0));
    exec.run(); // warm up
    double programTime = bestOf(runs, [&] { exec.run(); });

    std::vector<Gemm> gemms;
    double flops = 0;
    for (const InstrInfo &instr : program->instructions())
      if (instr.op == Opcode::Matmul || instr.op == Opcode::GroupedMatmul) {
        gemms.push_back(gemmFor(*program, instr));
        const Gemm &g = gemms.back();
        flops += 2.0 * g.batch * g.m * g.n * g.k;
      }
    for (Gemm &g : gemms)
      runGemm(g); // warm up
    double matmulTime = bestOf(runs, [&] {
      for (Gemm &g : gemms)
        runGemm(g);
    });
    std::printf("program %s: %zu instructions, %zu matmuls (%.2f GFLOP)\n",
                program->name().c_str(), program->instructions().size(),
                gemms.size(), flops / 1e9);
    std::printf("  loom program run:     %9.3f ms\n", programTime * 1e3);
    std::printf("  its matmuls, OpenBLAS: %9.3f ms\n", matmulTime * 1e3);
    std::printf("  ratio program/matmuls: %9.3f\n", programTime / matmulTime);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "loom-bench-program: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
