//===- MatmulBench.cpp - Matmul-heavy program vs. OpenBLAS alone ----------===//
//
// Runs a chain of LAYERS matmuls h = h · W_i ([M, K] x [K, K]) as a Loom
// program, and the same cblas_sgemm calls on plain arrays in the same
// process, and prints both times (best of RUNS) and their ratio.
//
// usage: loom-bench-matmul [M=512] [K=512] [LAYERS=8] [RUNS=30]
//
//===----------------------------------------------------------------------===//

#include "BenchUtil.h"
#include "ProgramBuilder.h"
#include "loom/runtime/Runtime.h"

#include <algorithm>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

using namespace loom::runtime;
using loom::bench::bestOf;
using namespace loom::test;

int main(int argc, char **argv) {
  int m = argc > 1 ? std::atoi(argv[1]) : 512;
  int k = argc > 2 ? std::atoi(argv[2]) : 512;
  int layers = argc > 3 ? std::atoi(argv[3]) : 8;
  int runs = argc > 4 ? std::atoi(argv[4]) : 30;

  ProgramBuilder b("matmul_chain");
  uint32_t x = b.input("x", DType::F32, {m, k});
  std::vector<uint32_t> w;
  for (int i = 0; i < layers; ++i)
    w.push_back(b.parameter("w" + std::to_string(i), DType::F32, {k, k}));
  uint32_t h0 = b.buffer("h0", DType::F32, {m, k});
  uint32_t h1 = b.buffer("h1", DType::F32, {m, k});
  uint32_t y = b.output("y", DType::F32, {m, k});
  uint32_t cur = x;
  for (int i = 0; i < layers; ++i) {
    uint32_t next = i + 1 == layers ? y : (i % 2 ? h1 : h0);
    b.op(Opcode::Matmul, {cur, w[i]}, {next});
    cur = next;
  }
  auto bytes = b.finish();
  auto prog = Program::load(bytes.data(), bytes.size());
  Executor exec(prog, {});

  std::mt19937 g(1);
  std::uniform_real_distribution<float> d(-0.05f, 0.05f);
  std::vector<float> xs(size_t(m) * k);
  for (float &v : xs)
    v = d(g);
  std::vector<std::vector<float>> ws(layers, std::vector<float>(size_t(k) * k));
  for (auto &wv : ws)
    for (float &v : wv)
      v = d(g);
  exec.setInput("x", xs.data(), xs.size() * 4);
  for (int i = 0; i < layers; ++i)
    exec.setInput("w" + std::to_string(i), ws[i].data(), ws[i].size() * 4);

  // Plain OpenBLAS on the same shapes.
  std::vector<float> a = xs, c(size_t(m) * k);
  auto direct = [&] {
    const float *in = a.data();
    std::vector<float> *out = &c;
    std::vector<float> tmp(size_t(m) * k);
    for (int i = 0; i < layers; ++i) {
      float *o = (i % 2 ? tmp : c).data();
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, k, 1.0f, in,
                  k, ws[i].data(), k, 0.0f, o, k);
      in = o;
    }
    (void)out;
  };

  exec.run();
  direct();
  // Alternate run by run so both see the same machine noise; keep the best.
  double tl = 1e30, td = 1e30;
  for (int r = 0; r < runs; ++r) {
    tl = std::min(tl, bestOf(1, [&] { exec.run(); }));
    td = std::min(td, bestOf(1, direct));
  }
  double flops = 2.0 * m * k * k * layers;
  std::printf("matmul chain: %d x [%d x %d] . [%d x %d] f32, best of %d\n",
              layers, m, k, k, k, runs);
  std::printf("loom program : %9.3f ms  (%.2f GFLOP/s)\n", tl * 1e3,
              flops / tl * 1e-9);
  std::printf("openblas only: %9.3f ms  (%.2f GFLOP/s)\n", td * 1e3,
              flops / td * 1e-9);
  std::printf("ratio program/openblas: %.3f\n", tl / td);
  return 0;
}
