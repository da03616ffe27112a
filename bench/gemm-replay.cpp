//===- gemm-replay.cpp - A program's contractions alone through OpenBLAS --===//
//
// Times cblas_sgemm on exactly the contractions a Loom program's matmul,
// attention and attention_grad instructions issue on the CPU backend, and
// nothing else: the same shapes, leading dimensions, transposes and
// accumulations, on arrays of the same sizes, threaded as the backend
// threads them (a matmul is one sgemm call on OpenBLAS's threads; attention
// runs its (batch, head, block of 64 query rows) tasks and attention_grad
// its (batch, kv head) tasks across OpenMP threads, each issuing
// single-threaded sgemms). The softmax, masks and every other kernel are
// left out. bench/train-step.py writes the list from the program and builds
// this file against the OpenBLAS that loom-run loads.
//
// usage: gemm-replay RUNS < LIST, one instruction a line:
//   matmul TA TB BATCH M N K SHARED   (SHARED: the rhs is one 2-D weight)
//   attention NB SQ HQ HKV SK D CAUSAL
//   attention_grad NB SQ HQ HKV SK D CAUSAL
// prints the best of RUNS runs of the whole list, and its time per kind.
//
//===----------------------------------------------------------------------===//

#include <algorithm>
#include <cblas.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <omp.h>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr int64_t kBlock = 64; // CpuLinalg.cpp's kCausalBlock
constexpr int64_t kGradBlock = kBlock / 2;

std::vector<float> randomArray(size_t n, unsigned seed) {
  std::vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (float &x : v)
    x = dist(rng);
  return v;
}

void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
          const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
          int64_t ldc, float beta = 0.0f) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
              tb ? CblasTrans : CblasNoTrans, int(m), int(n), int(k), alpha, a,
              int(lda), b, int(ldb), beta, c, int(ldc));
}

struct Instr {
  std::string kind;
  std::vector<int64_t> a; // the line's integers
  std::vector<std::vector<float>> arrays;
  double flops = 0;
  int64_t calls = 0;

  void prepare(unsigned seed) {
    if (kind == "matmul") {
      int64_t batch = a[2], m = a[3], n = a[4], k = a[5];
      bool shared = a[6];
      arrays.push_back(randomArray(batch * m * k, seed));
      arrays.push_back(randomArray((shared ? 1 : batch) * k * n, seed + 1));
      arrays.push_back(std::vector<float>(batch * m * n));
      flops = 2.0 * batch * m * n * k;
      return;
    }
    int64_t nb = a[0], sq = a[1], hq = a[2], hkv = a[3], sk = a[4], d = a[5];
    int threads = omp_get_max_threads();
    arrays.push_back(randomArray(nb * sq * hq * d, seed));           // q
    arrays.push_back(randomArray(nb * sk * hkv * d, seed + 1));      // k
    arrays.push_back(randomArray(nb * sk * hkv * d, seed + 2));      // v
    arrays.push_back(std::vector<float>(nb * sq * hq * d));          // o / dq
    arrays.push_back(std::vector<float>(threads * 2 * kBlock * sk)); // scores
    if (kind == "attention_grad") {
      arrays.push_back(randomArray(nb * sq * hq * d, seed + 3)); // do
      arrays.push_back(std::vector<float>(nb * sk * hkv * d));   // dk
      arrays.push_back(std::vector<float>(nb * sk * hkv * d));   // dv
    }
  }

  void run() {
    if (kind == "matmul")
      runMatmul();
    else if (kind == "attention")
      runAttention();
    else
      runAttentionGrad();
  }

  /// CpuLinalg.cpp's matmulK.
  void runMatmul() {
    bool ta = a[0], tb = a[1], shared = a[6];
    int64_t batch = a[2], m = a[3], n = a[4], k = a[5];
    const float *x = arrays[0].data(), *w = arrays[1].data();
    float *y = arrays[2].data();
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    if (shared && !ta) {
      gemm(false, tb, batch * m, n, k, 1.0f, x, lda, w, ldb, y, n);
      calls = 1;
      return;
    }
    for (int64_t i = 0; i < batch; ++i)
      gemm(ta, tb, m, n, k, 1.0f, x + i * m * k, lda,
           w + (shared ? 0 : i * k * n), ldb, y + i * m * n, n);
    calls = batch;
  }

  /// CpuLinalg.cpp's attentionK without the softmax.
  void runAttention() {
    int64_t nb = a[0], sq = a[1], hq = a[2], hkv = a[3], sk = a[4], d = a[5];
    bool causal = a[6];
    const float *q = arrays[0].data(), *k = arrays[1].data(),
                *v = arrays[2].data();
    float *o = arrays[3].data(), *scratch = arrays[4].data();
    int64_t group = hq / hkv, blocks = (sq + kBlock - 1) / kBlock;
    int64_t tasks = nb * hq * blocks;
    double f = 0;
#pragma omp parallel for schedule(static) reduction(+ : f)
    for (int64_t t = 0; t < tasks; ++t) {
      int64_t b = t / (hq * blocks), h = t / blocks % hq;
      int64_t q0 = t % blocks * kBlock, kh = h / group;
      float *s = scratch + omp_get_thread_num() * kBlock * sk;
      int64_t rows = std::min(kBlock, sq - q0);
      int64_t keys = causal ? std::min(q0 + rows, sk) : sk;
      gemm(false, true, rows, keys, d, 0.125f,
           q + (b * sq * hq + h) * d + q0 * hq * d, hq * d,
           k + (b * sk * hkv + kh) * d, hkv * d, s, keys);
      gemm(false, false, rows, d, keys, 1.0f, s, keys,
           v + (b * sk * hkv + kh) * d, hkv * d,
           o + (b * sq * hq + h) * d + q0 * hq * d, hq * d);
      f += 4.0 * rows * keys * d;
    }
    flops = f;
    calls = 2 * tasks;
  }

  /// CpuLinalg.cpp's attentionGradK without the softmax and dS.
  void runAttentionGrad() {
    int64_t nb = a[0], sq = a[1], hq = a[2], hkv = a[3], sk = a[4], d = a[5];
    bool causal = a[6];
    const float *q = arrays[0].data(), *k = arrays[1].data(),
                *v = arrays[2].data(), *dout = arrays[5].data();
    float *dq = arrays[3].data(), *scratch = arrays[4].data();
    float *dk = arrays[6].data(), *dv = arrays[7].data();
    int64_t group = hq / hkv, qs = hq * d, ks = hkv * d;
    double f = 0;
    int64_t n = 0;
#pragma omp parallel for schedule(static) reduction(+ : f, n)
    for (int64_t t = 0; t < nb * hkv; ++t) {
      int64_t b = t / hkv, kh = t % hkv;
      float *p = scratch + omp_get_thread_num() * 2 * kBlock * sk;
      float *dp = p + kGradBlock * sk;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const float *qb = q + b * sq * qs + h * d;
        const float *dob = dout + b * sq * qs + h * d;
        float *dqb = dq + b * sq * qs + h * d;
        const float *kb = k + b * sk * ks + kh * d;
        const float *vb = v + b * sk * ks + kh * d;
        float *dkb = dk + b * sk * ks + kh * d;
        float *dvb = dv + b * sk * ks + kh * d;
        for (int64_t q0 = 0; q0 < sq; q0 += kGradBlock) {
          int64_t rows = std::min(kGradBlock, sq - q0);
          int64_t keys = causal ? std::min(q0 + rows, sk) : sk;
          gemm(false, true, rows, keys, d, 0.125f, qb + q0 * qs, qs, kb, ks, p,
               keys);
          gemm(false, true, rows, keys, d, 1.0f, dob + q0 * qs, qs, vb, ks, dp,
               keys);
          gemm(false, false, rows, d, keys, 0.125f, dp, keys, kb, ks,
               dqb + q0 * qs, qs);
          gemm(true, false, keys, d, rows, 0.125f, dp, keys, qb + q0 * qs, qs,
               dkb, ks, 1.0f);
          gemm(true, false, keys, d, rows, 1.0f, p, keys, dob + q0 * qs, qs,
               dvb, ks, 1.0f);
          f += 10.0 * rows * keys * d;
          n += 5;
        }
      }
    }
    flops = f;
    calls = n;
  }
};

double seconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace

int main(int argc, char **argv) {
  int runs = argc > 1 ? std::atoi(argv[1]) : 5;
  std::vector<Instr> list;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    Instr instr;
    if (!(in >> instr.kind))
      continue;
    for (int64_t x; in >> x;)
      instr.a.push_back(x);
    if ((instr.kind != "matmul" && instr.kind != "attention" &&
         instr.kind != "attention_grad") ||
        instr.a.size() != 7) {
      std::fprintf(stderr, "gemm-replay: bad line: %s\n", line.c_str());
      return 2;
    }
    list.push_back(std::move(instr));
  }
  for (size_t i = 0; i < list.size(); ++i)
    list[i].prepare(static_cast<unsigned>(3 * i + 1));
  for (Instr &instr : list) // warm up
    instr.run();
  double best = 1e30;
  std::map<std::string, double> bestKinds;
  for (int r = 0; r < runs; ++r) {
    std::map<std::string, double> kinds;
    double start = seconds();
    for (Instr &instr : list) {
      double t0 = seconds();
      instr.run();
      kinds[instr.kind] += seconds() - t0;
    }
    double total = seconds() - start;
    if (total < best) {
      best = total;
      bestKinds = kinds;
    }
  }
  double flops = 0;
  int64_t calls = 0;
  for (const Instr &instr : list) {
    flops += instr.flops;
    calls += instr.calls;
  }
  std::printf("openblas: %s, %s, %d threads\n", openblas_get_config(),
              openblas_get_parallel() == 2   ? "OpenMP"
              : openblas_get_parallel() == 1 ? "pthreads"
                                             : "sequential",
              omp_get_max_threads());
  std::printf("contractions: %zu instructions, %lld sgemm calls, %.1f GFLOP\n",
              list.size(), static_cast<long long>(calls), flops / 1e9);
  for (const auto &[kind, t] : bestKinds)
    std::printf("kind %s %.3f ms\n", kind.c_str(), t * 1e3);
  std::printf("total %.3f ms (best of %d), %.1f GFLOP/s\n", best * 1e3, runs,
              flops / best / 1e9);
  return 0;
}
