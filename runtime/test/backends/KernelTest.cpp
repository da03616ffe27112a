//===- KernelTest.cpp - CPU kernels against independent references --------===//
//
// Each kernel runs as a one-instruction program through the executor; the
// expected values are hand-computed or come from reference loops written here
// in double precision from docs/OpSemantics.md (never from KernelMath.h).
//
//===----------------------------------------------------------------------===//

#include "TestUtil.h"

#include <algorithm>
#include <numeric>

using namespace loom::runtime;
using namespace loom::test;

namespace {

std::vector<double> toD(const std::vector<float> &v) {
  return std::vector<double>(v.begin(), v.end());
}

//===- DType conversions --------------------------------------------------===//

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32ToBf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16ToF32(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(f32ToBf16(1.00390625f), 0x3f80);
  // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even.
  EXPECT_EQ(f32ToBf16(1.01171875f), 0x3f82);
  EXPECT_EQ(f32ToBf16(-2.0f), 0xc000);
  EXPECT_TRUE(std::isnan(bf16ToF32(f32ToBf16(NAN))));
  EXPECT_EQ(bf16ToF32(f32ToBf16(INFINITY)), INFINITY);
  EXPECT_EQ(dtypeSize(DType::BF16), 2u);
  EXPECT_STREQ(dtypeName(DType::I64), "i64");
}

TEST(DType, F16MatchesIeeeBinary16) {
  EXPECT_EQ(f32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(f32ToF16(-2.5f), 0xc100);
  EXPECT_EQ(f32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(f32ToF16(65520.0f), 0x7c00);              // rounds to inf
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -25)), 0x0000); // tie to even: 0
  EXPECT_EQ(f32ToF16(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp -> 2
  EXPECT_EQ(f32ToF16(std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  EXPECT_EQ(f16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16ToF32(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16ToF32(0x7c00), INFINITY);
  EXPECT_TRUE(std::isnan(f16ToF32(0x7e00)));
  // Every f16 value survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
      continue; // NaNs
    ASSERT_EQ(f32ToF16(f16ToF32(static_cast<uint16_t>(h))), h) << h;
  }
}

//===- fill / copy --------------------------------------------------------===//

TEST(Kernels, Fill) {
  auto r = runOp(Opcode::Fill, {},
                 {
                     {DType::F32, {3}},
                 },
                 {TAttr::F("value", -1.5)});
  expectNear(r[0], {-1.5, -1.5, -1.5}, 0);
  auto i = runOp(Opcode::Fill, {}, {{DType::I64, {2}}}, {TAttr::F("value", 7)});
  EXPECT_EQ(i[0].as<int64_t>()[1], 7);
}

TEST(Kernels, CopyConverts) {
  auto x = tensorF32({2, 2}, {1.0f, 1.00390625f, -3.25f, 1e-3f});
  auto r = runOp(Opcode::Copy, {x}, {{DType::BF16, {4}}});
  EXPECT_EQ(r[0].as<uint16_t>()[0], 0x3f80);
  EXPECT_EQ(r[0].as<uint16_t>()[1], 0x3f80);
  EXPECT_EQ(r[0].as<uint16_t>()[2], 0xc050);
  auto ids = tensorInt<int64_t>(DType::I64, {3}, {-2, 0, 5});
  auto f = runOp(Opcode::Copy, {ids}, {{DType::F32, {3}}});
  expectNear(f[0], {-2, 0, 5}, 0);
  auto back = runOp(Opcode::Copy, {f[0]}, {{DType::I32, {3}}});
  EXPECT_EQ(back[0].as<int32_t>()[2], 5);
}

//===- element-wise -------------------------------------------------------===//

TEST(Kernels, Binary) {
  auto x = randomF32({3, 5}, 1), y = randomF32({3, 5}, 2, 0.5f, 2.0f);
  auto xv = x.toF32(), yv = y.toF32();
  struct Case {
    Opcode op;
    double (*f)(double, double);
  } cases[] = {
      {Opcode::Add, [](double a, double b) { return a + b; }},
      {Opcode::Sub, [](double a, double b) { return a - b; }},
      {Opcode::Mul, [](double a, double b) { return a * b; }},
      {Opcode::Div, [](double a, double b) { return a / b; }},
  };
  for (const Case &c : cases) {
    std::vector<double> want(xv.size());
    for (size_t i = 0; i < want.size(); ++i)
      want[i] = c.f(xv[i], yv[i]);
    auto r = runOp(c.op, {x, y}, {{DType::F32, {3, 5}}});
    expectNear(r[0], want, 1e-6, opcodeName(c.op));
  }
}

TEST(Kernels, BinaryBf16RoundsOnStore) {
  // 1 + 1/256 in bf16 is a tie and rounds to 1 (even).
  auto x = tensorF32({2}, {1.0f, 2.0f}).convert(DType::BF16);
  auto y = tensorF32({2}, {0.00390625f, 0.5f}).convert(DType::BF16);
  auto r = runOp(Opcode::Add, {x, y}, {{DType::BF16, {2}}});
  expectNear(r[0], {1.0, 2.5}, 0);
}

TEST(Kernels, ScaleAndActivations) {
  auto x = tensorF32({6}, {-3.0f, -1.0f, -0.1f, 0.0f, 0.7f, 2.5f});
  auto xv = x.toF32();
  std::vector<double> scale, erfG, tanhG, silu;
  for (double v : xv) {
    scale.push_back(v * 0.25);
    erfG.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
    tanhG.push_back(
        0.5 * v *
        (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))));
    silu.push_back(v / (1 + std::exp(-v)));
  }
  expectNear(runOp(Opcode::Scale, {x}, {{DType::F32, {6}}},
                   {TAttr::F("factor", 0.25)})[0],
             scale, 1e-7);
  expectNear(runOp(Opcode::Gelu, {x}, {{DType::F32, {6}}})[0], erfG, 1e-6);
  expectNear(runOp(Opcode::Gelu, {x}, {{DType::F32, {6}}},
                   {TAttr::S("approximate", "tanh")})[0],
             tanhG, 1e-6);
  expectNear(runOp(Opcode::Silu, {x}, {{DType::F32, {6}}})[0], silu, 1e-6);
  // Hand-computed: gelu(1) = 0.8413447460685429, silu(1) = 0.7310585786300049.
  auto one = tensorF32({1}, {1.0f});
  expectNear(runOp(Opcode::Gelu, {one}, {{DType::F32, {1}}})[0],
             {0.8413447460685429}, 1e-6);
  expectNear(runOp(Opcode::Silu, {one}, {{DType::F32, {1}}})[0],
             {0.7310585786300049}, 1e-6);
}

TEST(Kernels, Neg) {
  auto x = tensorF32({4}, {-2.5f, 0.0f, 1.0f, 3.25f});
  expectNear(runOp(Opcode::Neg, {x}, {{DType::F32, {4}}})[0],
             {2.5, 0.0, -1.0, -3.25}, 0);
  auto h = x.convert(DType::BF16);
  expectNear(runOp(Opcode::Neg, {h}, {{DType::BF16, {4}}})[0],
             {2.5, 0.0, -1.0, -3.25}, 0);
}

TEST(Kernels, Swiglu) {
  auto g = randomF32({4, 3}, 3), u = randomF32({4, 3}, 4);
  auto gv = g.toF32(), uv = u.toF32();
  std::vector<double> want;
  for (size_t i = 0; i < gv.size(); ++i)
    want.push_back(gv[i] / (1 + std::exp(-double(gv[i]))) * uv[i]);
  expectNear(runOp(Opcode::Swiglu, {g, u}, {{DType::F32, {4, 3}}})[0], want,
             1e-6);
}

//===- normalization, softmax, rope ---------------------------------------===//

TEST(Kernels, RmsNorm) {
  auto x = randomF32({2, 3, 8}, 5), w = randomF32({8}, 6);
  auto xv = x.toF32(), wv = w.toF32();
  std::vector<double> want;
  for (int r = 0; r < 6; ++r) {
    double ss = 0;
    for (int i = 0; i < 8; ++i)
      ss += double(xv[r * 8 + i]) * xv[r * 8 + i];
    double inv = 1 / std::sqrt(ss / 8 + 1e-5);
    for (int i = 0; i < 8; ++i)
      want.push_back(xv[r * 8 + i] * inv * wv[i]);
  }
  expectNear(runOp(Opcode::RmsNorm, {x, w}, {{DType::F32, {2, 3, 8}}},
                   {TAttr::F("epsilon", 1e-5)})[0],
             want, 1e-5);
  // Hand-computed: x = [3, 4], w = 1, eps = 0: rms = sqrt(12.5).
  auto h =
      runOp(Opcode::RmsNorm, {tensorF32({2}, {3, 4}), tensorF32({2}, {1, 1})},
            {{DType::F32, {2}}}, {TAttr::F("epsilon", 0)});
  expectNear(h[0], {3 / std::sqrt(12.5), 4 / std::sqrt(12.5)}, 1e-6);
}

TEST(Kernels, LayerNorm) {
  auto x = randomF32({4, 6}, 7), w = randomF32({6}, 8), b = randomF32({6}, 9);
  auto xv = x.toF32(), wv = w.toF32(), bv = b.toF32();
  std::vector<double> want, wantNoBias;
  for (int r = 0; r < 4; ++r) {
    double mean = 0, var = 0;
    for (int i = 0; i < 6; ++i)
      mean += xv[r * 6 + i];
    mean /= 6;
    for (int i = 0; i < 6; ++i)
      var += (xv[r * 6 + i] - mean) * (xv[r * 6 + i] - mean);
    var /= 6;
    for (int i = 0; i < 6; ++i) {
      double n = (xv[r * 6 + i] - mean) / std::sqrt(var + 1e-5) * wv[i];
      wantNoBias.push_back(n);
      want.push_back(n + bv[i]);
    }
  }
  expectNear(runOp(Opcode::LayerNorm, {x, w, b}, {{DType::F32, {4, 6}}},
                   {TAttr::F("epsilon", 1e-5)})[0],
             want, 1e-5);
  expectNear(runOp(Opcode::LayerNorm, {x, w}, {{DType::F32, {4, 6}}},
                   {TAttr::F("epsilon", 1e-5)})[0],
             wantNoBias, 1e-5);
}

TEST(Kernels, Softmax) {
  // Hand-computed: softmax([1, 2, 3]).
  auto s =
      runOp(Opcode::Softmax, {tensorF32({3}, {1, 2, 3})}, {{DType::F32, {3}}});
  expectNear(s[0],
             {0.09003057317038046, 0.24472847105479767, 0.6652409557748219},
             1e-6);
  // Along axis 1 of [2, 3, 4]; large values check max subtraction.
  auto x = randomF32({2, 3, 4}, 10, 50, 60);
  auto xv = x.toF32();
  std::vector<double> want(xv.size());
  for (int a = 0; a < 2; ++a)
    for (int c = 0; c < 4; ++c) {
      double mx = -1e30, sum = 0;
      for (int b = 0; b < 3; ++b)
        mx = std::max(mx, double(xv[(a * 3 + b) * 4 + c]));
      for (int b = 0; b < 3; ++b)
        sum += std::exp(xv[(a * 3 + b) * 4 + c] - mx);
      for (int b = 0; b < 3; ++b)
        want[(a * 3 + b) * 4 + c] =
            std::exp(xv[(a * 3 + b) * 4 + c] - mx) / sum;
    }
  expectNear(runOp(Opcode::Softmax, {x}, {{DType::F32, {2, 3, 4}}},
                   {TAttr::I("axis", 1)})[0],
             want, 1e-5);
}

TEST(Kernels, Rope) {
  const int B = 1, S = 3, N = 2, D = 4;
  auto x = randomF32({B, S, N, D}, 11);
  auto xv = x.toF32();
  double theta = 10000;
  int offset = 5;
  auto ref = [&](double theta, int offset) {
    std::vector<double> want(xv.size());
    for (int s = 0; s < S; ++s)
      for (int n = 0; n < N; ++n)
        for (int i = 0; i < D / 2; ++i) {
          double f = std::pow(theta, -2.0 * i / D);
          double a = (s + offset) * f;
          int base = (s * N + n) * D;
          double x1 = xv[base + i], x2 = xv[base + i + D / 2];
          want[base + i] = x1 * std::cos(a) - x2 * std::sin(a);
          want[base + i + D / 2] = x2 * std::cos(a) + x1 * std::sin(a);
        }
    return want;
  };
  expectNear(
      runOp(Opcode::Rope, {x}, {{DType::F32, {B, S, N, D}}},
            {TAttr::F("theta", theta), TAttr::I("position_offset", offset)})[0],
      ref(theta, offset), 1e-5);
  // The kernel keeps the last table of angles: another theta, then the
  // inverse rotation with the same table, which undoes it.
  auto r = runOp(Opcode::Rope, {x}, {{DType::F32, {B, S, N, D}}},
                 {TAttr::F("theta", 500.0), TAttr::I("position_offset", 7)})[0];
  expectNear(r, ref(500.0, 7), 1e-5);
  expectNear(runOp(Opcode::Rope, {r}, {{DType::F32, {B, S, N, D}}},
                   {TAttr::F("theta", 500.0), TAttr::I("position_offset", 7),
                    TAttr::B("inverse", true)})[0],
             toD(xv), 1e-5);
  // Position 0 is the identity.
  auto y = runOp(Opcode::Rope, {x}, {{DType::F32, {B, S, N, D}}},
                 {TAttr::F("theta", theta)})[0];
  for (int i = 0; i < N * D; ++i)
    EXPECT_FLOAT_EQ(y.as<float>()[i], xv[i]);
}

//===- attention, loss, embedding -----------------------------------------===//

std::vector<double> refAttention(const std::vector<float> &q,
                                 const std::vector<float> &k,
                                 const std::vector<float> &v, int B, int S,
                                 int Hq, int Hkv, int D, bool causal,
                                 double scale) {
  std::vector<double> out(B * S * Hq * D, 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < Hq; ++h) {
      int kh = h / (Hq / Hkv);
      for (int i = 0; i < S; ++i) {
        std::vector<double> sc(S);
        double mx = -1e300;
        int valid = causal ? i + 1 : S;
        for (int j = 0; j < valid; ++j) {
          double dot = 0;
          for (int d = 0; d < D; ++d)
            dot += double(q[((b * S + i) * Hq + h) * D + d]) *
                   k[((b * S + j) * Hkv + kh) * D + d];
          sc[j] = dot * scale;
          mx = std::max(mx, sc[j]);
        }
        double sum = 0;
        for (int j = 0; j < valid; ++j)
          sum += (sc[j] = std::exp(sc[j] - mx));
        for (int j = 0; j < valid; ++j)
          for (int d = 0; d < D; ++d)
            out[((b * S + i) * Hq + h) * D + d] +=
                sc[j] / sum * v[((b * S + j) * Hkv + kh) * D + d];
      }
    }
  return out;
}

TEST(Kernels, Attention) {
  const int B = 2, S = 5, Hq = 4, Hkv = 2, D = 3;
  auto q = randomF32({B, S, Hq, D}, 12), k = randomF32({B, S, Hkv, D}, 13),
       v = randomF32({B, S, Hkv, D}, 14);
  for (bool causal : {false, true}) {
    auto want = refAttention(q.toF32(), k.toF32(), v.toF32(), B, S, Hq, Hkv, D,
                             causal, 1 / std::sqrt(3.0));
    auto r = runOp(Opcode::Attention, {q, k, v}, {{DType::F32, {B, S, Hq, D}}},
                   {TAttr::B("causal", causal)});
    expectNear(r[0], want, 1e-5, causal ? "causal" : "full");
  }
  auto want = refAttention(q.toF32(), k.toF32(), v.toF32(), B, S, Hq, Hkv, D,
                           true, 0.5);
  auto r = runOp(Opcode::Attention, {q, k, v}, {{DType::F32, {B, S, Hq, D}}},
                 {TAttr::B("causal", true), TAttr::F("scale", 0.5)});
  expectNear(r[0], want, 1e-5, "scale");
}

/// Rows [from, from + n) of dimension 1 of a [B, S, H, D] f32 tensor.
HostTensor sequenceRows(const HostTensor &t, int64_t from, int64_t n) {
  int64_t b = t.shape[0], s = t.shape[1], row = t.shape[2] * t.shape[3];
  std::vector<float> all = t.toF32(), piece;
  for (int64_t i = 0; i < b; ++i)
    piece.insert(piece.end(), all.begin() + (i * s + from) * row,
                 all.begin() + (i * s + from + n) * row);
  return HostTensor::f32({b, n, t.shape[2], t.shape[3]}, piece);
}

std::vector<double> toDoubles(const HostTensor &t) {
  std::vector<float> f = t.toF32();
  return std::vector<double>(f.begin(), f.end());
}

/// Random q, k, v and output cotangent, and the whole attention's output
/// and gradients: what the piece-wise forms must reassemble.
struct WholeAttention {
  HostTensor q, k, v, dout, o;
  std::vector<HostTensor> grads;

  WholeAttention(int64_t B, int64_t S, int64_t D, int64_t hq, int64_t hkv,
                 bool causal, uint32_t &seed)
      : q(randomF32({B, S, hq, D}, seed++)),
        k(randomF32({B, S, hkv, D}, seed++)),
        v(randomF32({B, S, hkv, D}, seed++)),
        dout(randomF32({B, S, hq, D}, seed++)) {
    std::vector<TAttr> attrs = {TAttr::B("causal", causal)};
    o = runOp(Opcode::Attention, {q, k, v}, {{DType::F32, {B, S, hq, D}}},
              attrs)[0];
    grads = runOp(Opcode::AttentionGrad, {q, k, v, o, dout},
                  {{DType::F32, {B, S, hq, D}},
                   {DType::F32, {B, S, hkv, D}},
                   {DType::F32, {B, S, hkv, D}}},
                  attrs);
  }
};

// Context parallelism's all-gather form: each rank computes its piece of
// the queries (at query_offset) against all keys. The pieces' outputs and
// query gradients are the rows of the whole attention's, and their key and
// value gradients sum to the whole ones; odd head counts, GQA ratios 1, 2
// and 3, 2 to 4 pieces, causal or not.
TEST(Kernels, AttentionQueryPiecesAreTheWholeAttention) {
  const int64_t B = 2, S = 12, D = 5;
  struct Heads {
    int64_t q, kv;
  };
  uint32_t seed = 40;
  for (Heads h : {Heads{3, 1}, Heads{6, 3}, Heads{5, 5}, Heads{6, 2}})
    for (int64_t pieces : {2, 3, 4})
      for (bool causal : {true, false}) {
        std::string what =
            "hq=" + std::to_string(h.q) + " hkv=" + std::to_string(h.kv) +
            " pieces=" + std::to_string(pieces) + (causal ? " causal" : "");
        SCOPED_TRACE(what);
        WholeAttention whole(B, S, D, h.q, h.kv, causal, seed);
        const HostTensor &q = whole.q, &k = whole.k, &v = whole.v,
                         &dout = whole.dout, &o = whole.o;
        const std::vector<HostTensor> &grads = whole.grads;
        int64_t n = S / pieces;
        std::vector<double> dk(B * S * h.kv * D), dv(dk.size());
        for (int64_t r = 0; r < pieces; ++r) {
          std::vector<TAttr> piece = {TAttr::B("causal", causal),
                                      TAttr::I("query_offset", r * n)};
          HostTensor qr = sequenceRows(q, r * n, n);
          HostTensor orow = runOp(Opcode::Attention, {qr, k, v},
                                  {{DType::F32, {B, n, h.q, D}}}, piece)[0];
          expectNear(orow, toDoubles(sequenceRows(o, r * n, n)), 1e-5,
                     "output rows");
          auto g = runOp(Opcode::AttentionGrad,
                         {qr, k, v, orow, sequenceRows(dout, r * n, n)},
                         {{DType::F32, {B, n, h.q, D}},
                          {DType::F32, {B, S, h.kv, D}},
                          {DType::F32, {B, S, h.kv, D}}},
                         piece);
          expectNear(g[0], toDoubles(sequenceRows(grads[0], r * n, n)), 1e-5,
                     "dq rows");
          std::vector<float> gk = g[1].toF32(), gv = g[2].toF32();
          for (size_t i = 0; i < dk.size(); ++i) {
            dk[i] += gk[i];
            dv[i] += gv[i];
          }
        }
        expectNear(grads[1], dk, 1e-5, "dk = sum of the pieces'");
        expectNear(grads[2], dv, 1e-5, "dv = sum of the pieces'");
      }
}

// Ring attention's blocks: each piece of the queries against each block of
// the keys (attention_block, at its offsets), merged by log-sum-exp, is the
// whole attention's rows; the blocks' gradients (attention_block_grad,
// from the merged output and log-sum-exp) sum to the whole gradients.
TEST(Kernels, AttentionBlocksMergeToTheWholeAttention) {
  const int64_t B = 2, S = 12, D = 5;
  struct Heads {
    int64_t q, kv;
  };
  uint32_t seed = 90;
  for (Heads h : {Heads{3, 1}, Heads{6, 3}, Heads{5, 5}})
    for (int64_t pieces : {2, 3, 4})
      for (bool causal : {true, false}) {
        SCOPED_TRACE(
            "hq=" + std::to_string(h.q) + " hkv=" + std::to_string(h.kv) +
            " pieces=" + std::to_string(pieces) + (causal ? " causal" : ""));
        WholeAttention whole(B, S, D, h.q, h.kv, causal, seed);
        const HostTensor &q = whole.q, &k = whole.k, &v = whole.v,
                         &dout = whole.dout, &o = whole.o;
        const std::vector<HostTensor> &grads = whole.grads;
        int64_t n = S / pieces, rowSize = h.q * D;
        std::vector<double> dk(B * S * h.kv * D), dv(dk.size());
        for (int64_t r = 0; r < pieces; ++r) {
          HostTensor qr = sequenceRows(q, r * n, n);
          // Merge the blocks: running output and log-sum-exp per query row.
          std::vector<double> merged(B * n * rowSize, 0.0),
              lse(B * n * h.q, -INFINITY);
          std::vector<HostTensor> blockOut, blockLse;
          for (int64_t s = 0; s < pieces; ++s) {
            std::vector<TAttr> attrs = {TAttr::B("causal", causal),
                                        TAttr::I("query_offset", r * n),
                                        TAttr::I("key_offset", s * n)};
            auto part = runOp(
                Opcode::AttentionBlock,
                {qr, sequenceRows(k, s * n, n), sequenceRows(v, s * n, n)},
                {{DType::F32, {B, n, h.q, D}}, {DType::F32, {B, n, h.q}}},
                attrs);
            blockOut.push_back(part[0]);
            blockLse.push_back(part[1]);
          }
          for (int64_t i = 0; i < B * n * h.q; ++i) {
            double total = -INFINITY;
            for (const HostTensor &l : blockLse) {
              double x = l.as<float>()[i];
              if (x == -INFINITY)
                continue;
              total = total == -INFINITY
                          ? x
                          : std::max(total, x) +
                                std::log1p(std::exp(-std::abs(total - x)));
            }
            lse[i] = total;
            for (size_t s = 0; s < blockOut.size(); ++s) {
              double x = blockLse[s].as<float>()[i];
              if (x == -INFINITY)
                continue;
              for (int64_t e = 0; e < D; ++e)
                merged[i * D + e] +=
                    std::exp(x - total) * blockOut[s].as<float>()[i * D + e];
            }
          }
          expectNear(
              HostTensor::f32({B, n, h.q, D},
                              std::vector<float>(merged.begin(), merged.end())),
              toDoubles(sequenceRows(o, r * n, n)), 1e-5, "merged output rows");
          HostTensor orow = sequenceRows(o, r * n, n);
          HostTensor lseRow = HostTensor::f32(
              {B, n, h.q}, std::vector<float>(lse.begin(), lse.end()));
          std::vector<double> dq(B * n * rowSize, 0.0);
          for (int64_t s = 0; s < pieces; ++s) {
            auto g = runOp(
                Opcode::AttentionBlockGrad,
                {qr, sequenceRows(k, s * n, n), sequenceRows(v, s * n, n), orow,
                 sequenceRows(dout, r * n, n), lseRow},
                {{DType::F32, {B, n, h.q, D}},
                 {DType::F32, {B, n, h.kv, D}},
                 {DType::F32, {B, n, h.kv, D}}},
                {TAttr::B("causal", causal), TAttr::I("query_offset", r * n),
                 TAttr::I("key_offset", s * n)});
            std::vector<float> gq = g[0].toF32(), gk = g[1].toF32(),
                               gv = g[2].toF32();
            for (size_t i = 0; i < dq.size(); ++i)
              dq[i] += gq[i];
            // Block s's rows of dk and dv, back at their place.
            int64_t kvRow = h.kv * D;
            for (int64_t b = 0; b < B; ++b)
              for (int64_t j = 0; j < n * kvRow; ++j) {
                dk[(b * S + s * n) * kvRow + j] += gk[b * n * kvRow + j];
                dv[(b * S + s * n) * kvRow + j] += gv[b * n * kvRow + j];
              }
          }
          expectNear(HostTensor::f32({B, n, h.q, D},
                                     std::vector<float>(dq.begin(), dq.end())),
                     toDoubles(sequenceRows(grads[0], r * n, n)), 1e-5,
                     "dq rows = sum of the blocks'");
        }
        expectNear(grads[1], dk, 1e-5, "dk = sum of the blocks'");
        expectNear(grads[2], dv, 1e-5, "dv = sum of the blocks'");
      }
}

TEST(Kernels, AttentionBf16) {
  const int B = 1, S = 4, H = 2, D = 8;
  auto q = randomF32({B, S, H, D}, 15).convert(DType::BF16);
  auto k = randomF32({B, S, H, D}, 16).convert(DType::BF16);
  auto v = randomF32({B, S, H, D}, 17).convert(DType::BF16);
  auto want = refAttention(q.toF32(), k.toF32(), v.toF32(), B, S, H, H, D, true,
                           1 / std::sqrt(8.0));
  auto r = runOp(Opcode::Attention, {q, k, v}, {{DType::BF16, {B, S, H, D}}},
                 {TAttr::B("causal", true)});
  expectNear(r[0], want, 1e-2);
}

TEST(Kernels, CrossEntropy) {
  // Hand-computed: logits [[0, 0], [1, 2]], targets [0, 1]:
  // (log 2 + (log(e + e^2) - 2)) / 2.
  auto l = tensorF32({2, 2}, {0, 0, 1, 2});
  auto t = tensorInt<int>(DType::I32, {2}, {0, 1});
  double want =
      (std::log(2.0) + std::log(std::exp(1.0) + std::exp(2.0)) - 2) / 2;
  expectNear(runOp(Opcode::CrossEntropy, {l, t}, {{DType::F32, {}}})[0], {want},
             1e-6);
  // Random [2, 3, 7] with i64 targets.
  auto x = randomF32({2, 3, 7}, 18, -5, 5);
  auto xv = x.toF32();
  std::vector<int64_t> tv = {0, 6, 3, 2, 2, 5};
  double sum = 0;
  for (int p = 0; p < 6; ++p) {
    double mx = -1e300, s = 0;
    for (int i = 0; i < 7; ++i)
      mx = std::max(mx, double(xv[p * 7 + i]));
    for (int i = 0; i < 7; ++i)
      s += std::exp(xv[p * 7 + i] - mx);
    sum += std::log(s) + mx - xv[p * 7 + tv[p]];
  }
  expectNear(runOp(Opcode::CrossEntropy,
                   {x, tensorInt<int64_t>(DType::I64, {2, 3}, tv)},
                   {{DType::F32, {}}})[0],
             {sum / 6}, 1e-5);
}

TEST(Kernels, CrossEntropyTargetOutOfRangeNamesInstruction) {
  auto l = tensorF32({2, 3}, {0, 0, 0, 0, 0, 0});
  auto t = tensorInt<int>(DType::I32, {2}, {1, 3});
  try {
    runOp(Opcode::CrossEntropy, {l, t}, {{DType::F32, {}}}, {},
          "loss.mlir:9:2");
    FAIL() << "expected an error";
  } catch (const ExecutionError &e) {
    EXPECT_STREQ(e.what(), "instruction 0 (cross_entropy) at loss.mlir:9:2: "
                           "cross_entropy target 3 at position 1 is outside "
                           "[0, 3)");
  }
}

TEST(Kernels, Embedding) {
  auto table = tensorF32({3, 2}, {0, 1, 10, 11, 20, 21});
  auto ids = tensorInt<int>(DType::I32, {2, 2}, {2, 0, 1, 2});
  expectNear(
      runOp(Opcode::Embedding, {table, ids}, {{DType::F32, {2, 2, 2}}})[0],
      {20, 21, 0, 1, 10, 11, 20, 21}, 0);
  auto bad = tensorInt<int64_t>(DType::I64, {2}, {0, -1});
  try {
    runOp(Opcode::Embedding, {table, bad}, {{DType::F32, {2, 2}}}, {},
          "embed.mlir:3:7");
    FAIL() << "expected an error";
  } catch (const ExecutionError &e) {
    EXPECT_STREQ(e.what(), "instruction 0 (embedding) at embed.mlir:3:7: "
                           "embedding id -1 at position 1 is outside [0, 3)");
  }
}

//===- matmul -------------------------------------------------------------===//

/// c[b] = op(a[b]) · op(b[b or shared]); a is [batch, M, K] (or [.., K, M]).
std::vector<double> refMatmul(const std::vector<float> &a,
                              const std::vector<float> &b, int batch, int M,
                              int N, int K, bool ta, bool tb, bool sharedB) {
  std::vector<double> c(batch * M * N);
  for (int p = 0; p < batch; ++p)
    for (int i = 0; i < M; ++i)
      for (int j = 0; j < N; ++j) {
        double s = 0;
        for (int k = 0; k < K; ++k) {
          double av = ta ? a[p * M * K + k * M + i] : a[p * M * K + i * K + k];
          int bo = sharedB ? 0 : p * K * N;
          double bv = tb ? b[bo + j * K + k] : b[bo + k * N + j];
          s += av * bv;
        }
        c[p * M * N + i * N + j] = s;
      }
  return c;
}

TEST(Kernels, MatmulHandComputed) {
  auto a = tensorF32({2, 2}, {1, 2, 3, 4});
  auto b = tensorF32({2, 2}, {5, 6, 7, 8});
  expectNear(runOp(Opcode::Matmul, {a, b}, {{DType::F32, {2, 2}}})[0],
             {19, 22, 43, 50}, 0);
  expectNear(runOp(Opcode::Matmul, {a, b}, {{DType::F32, {2, 2}}},
                   {TAttr::B("transpose_lhs", true),
                    TAttr::B("transpose_rhs", true)})[0],
             {23, 31, 34, 46}, 0);
}

TEST(Kernels, MatmulVariants) {
  const int M = 3, N = 5, K = 4;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (bool shared : {false, true}) {
        std::vector<int64_t> as = ta ? std::vector<int64_t>{2, 3, K, M}
                                     : std::vector<int64_t>{2, 3, M, K};
        std::vector<int64_t> bs =
            tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
        if (!shared)
          bs.insert(bs.begin(), {2, 3});
        auto a = randomF32(as, 20), b = randomF32(bs, 21);
        auto want = refMatmul(a.toF32(), b.toF32(), 6, M, N, K, ta, tb, shared);
        auto r = runOp(
            Opcode::Matmul, {a, b}, {{DType::F32, {2, 3, M, N}}},
            {TAttr::B("transpose_lhs", ta), TAttr::B("transpose_rhs", tb)});
        std::string what = std::string("ta=") + (ta ? "1" : "0") +
                           " tb=" + (tb ? "1" : "0") +
                           " shared=" + (shared ? "1" : "0");
        expectNear(r[0], want, 1e-5, what.c_str());
      }
}

TEST(Kernels, MatmulHalfPrecision) {
  for (DType t : {DType::BF16, DType::F16}) {
    auto a = randomF32({4, 8}, 22).convert(t),
         b = randomF32({8, 3}, 23).convert(t);
    auto want = refMatmul(a.toF32(), b.toF32(), 1, 4, 3, 8, false, false, true);
    auto r = runOp(Opcode::Matmul, {a, b}, {{t, {4, 3}}});
    expectNear(r[0], want, t == DType::BF16 ? 1e-2 : 2e-3, dtypeName(t));
  }
}

TEST(Kernels, GroupedMatmul) {
  const int E = 3, C = 2, K = 4, N = 5;
  for (bool tw : {false, true}) {
    auto x = randomF32({E, C, K}, 24);
    auto w = randomF32(
        tw ? std::vector<int64_t>{E, N, K} : std::vector<int64_t>{E, K, N}, 25);
    auto want = refMatmul(x.toF32(), w.toF32(), E, C, N, K, false, tw, false);
    auto r = runOp(Opcode::GroupedMatmul, {x, w}, {{DType::F32, {E, C, N}}},
                   {TAttr::B("transpose_weight", tw)});
    expectNear(r[0], want, 1e-5);
  }
}

//===- shape ops ----------------------------------------------------------===//

TEST(Kernels, ReshapeCopies) {
  auto x = randomF32({2, 6}, 26);
  auto r = runOp(Opcode::Reshape, {x}, {{DType::F32, {3, 4}}});
  expectNear(r[0], toD(x.toF32()), 0);
}

TEST(Kernels, Transpose) {
  auto x = randomF32({2, 3, 4}, 27);
  auto xv = x.toF32();
  std::vector<double> want;
  // permutation [2, 0, 1]: y[k][i][j] = x[i][j][k]
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        want.push_back(xv[(i * 3 + j) * 4 + k]);
  expectNear(runOp(Opcode::Transpose, {x}, {{DType::F32, {4, 2, 3}}},
                   {TAttr::Is("permutation", {2, 0, 1})})[0],
             want, 0);
  // bf16 (2-byte elements) and i64 (8-byte) move the same way.
  auto h = runOp(Opcode::Transpose,
                 {tensorF32({2, 2}, {1, 2, 3, 4}).convert(DType::BF16)},
                 {{DType::BF16, {2, 2}}}, {TAttr::Is("permutation", {1, 0})});
  expectNear(h[0], {1, 3, 2, 4}, 0);
  auto l = runOp(Opcode::Transpose,
                 {tensorInt<int64_t>(DType::I64, {2, 2}, {1, 2, 3, 4})},
                 {{DType::I64, {2, 2}}}, {TAttr::Is("permutation", {1, 0})});
  EXPECT_EQ(l[0].as<int64_t>()[1], 3);
}

TEST(Kernels, Slice) {
  auto x = tensorF32({3, 4}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  expectNear(
      runOp(Opcode::Slice, {x}, {{DType::F32, {2, 2}}},
            {TAttr::Is("offsets", {1, 1}), TAttr::Is("sizes", {2, 2})})[0],
      {5, 6, 9, 10}, 0);
}

TEST(Kernels, Concat) {
  auto a = tensorF32({2, 1}, {1, 2}), b = tensorF32({2, 2}, {3, 4, 5, 6});
  expectNear(runOp(Opcode::Concat, {a, b}, {{DType::F32, {2, 3}}},
                   {TAttr::I("dim", 1)})[0],
             {1, 3, 4, 2, 5, 6}, 0);
  expectNear(runOp(Opcode::Concat, {b, b}, {{DType::F32, {4, 2}}},
                   {TAttr::I("dim", -2)})[0],
             {3, 4, 5, 6, 3, 4, 5, 6}, 0);
}

TEST(Kernels, Broadcast) {
  auto x = tensorF32({3}, {1, 2, 3});
  expectNear(runOp(Opcode::Broadcast, {x}, {{DType::F32, {2, 3}}},
                   {TAttr::Is("dims", {1})})[0],
             {1, 2, 3, 1, 2, 3}, 0);
  auto c = tensorF32({2, 1}, {7, 8});
  expectNear(runOp(Opcode::Broadcast, {c}, {{DType::F32, {2, 2, 3}}},
                   {TAttr::Is("dims", {0, 2})})[0],
             {7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8}, 0);
}

TEST(Kernels, Reduce) {
  auto x = tensorF32({2, 3}, {1, 5, 3, -4, 2, 0});
  expectNear(runOp(Opcode::Reduce, {x}, {{DType::F32, {2}}},
                   {TAttr::S("kind", "sum"), TAttr::Is("dims", {1})})[0],
             {9, -2}, 0);
  expectNear(runOp(Opcode::Reduce, {x}, {{DType::F32, {1, 3}}},
                   {TAttr::S("kind", "max"), TAttr::Is("dims", {0}),
                    TAttr::B("keep_dims", true)})[0],
             {1, 5, 3}, 0);
  expectNear(runOp(Opcode::Reduce, {x}, {{DType::F32, {}}},
                   {TAttr::S("kind", "mean"), TAttr::Is("dims", {0, 1})})[0],
             {7.0 / 6}, 1e-6);
  auto y = randomF32({2, 3, 4}, 28);
  auto yv = y.toF32();
  std::vector<double> want(3, 0);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        want[b] += yv[(a * 3 + b) * 4 + c];
  expectNear(runOp(Opcode::Reduce, {y}, {{DType::F32, {3}}},
                   {TAttr::S("kind", "sum"), TAttr::Is("dims", {0, 2})})[0],
             want, 1e-5);
}

// sum_squares is mul(x, x) then reduce sum, bit for bit (each square rounded
// to f32, then added in sum's order): over whole rows in chunks (more than
// one kSumChunk), a middle dimension, non-adjacent dimensions, a scalar.
TEST(Kernels, ReduceSumSquaresIsMulThenSum) {
  auto unfused = [](const HostTensor &x, std::vector<int64_t> outShape,
                    std::vector<int64_t> dims) {
    auto sq = runOp(Opcode::Mul, {x, x}, {{DType::F32, x.shape}})[0];
    return runOp(Opcode::Reduce, {sq}, {{DType::F32, outShape}},
                 {TAttr::S("kind", "sum"), TAttr::Is("dims", dims)})[0];
  };
  auto fused = [](const HostTensor &x, std::vector<int64_t> outShape,
                  std::vector<int64_t> dims) {
    return runOp(Opcode::Reduce, {x}, {{DType::F32, outShape}},
                 {TAttr::S("kind", "sum_squares"), TAttr::Is("dims", dims)})[0];
  };
  auto big = randomF32({3, 10007}, 41);
  auto y = randomF32({2, 3, 4}, 42);
  auto s = tensorF32({}, {-3});
  struct Case {
    const HostTensor *x;
    std::vector<int64_t> out, dims;
  } cases[] = {{&big, {}, {0, 1}}, {&big, {3}, {1}},    {&y, {2, 4}, {1}},
               {&y, {3}, {0, 2}},  {&y, {}, {0, 1, 2}}, {&s, {}, {}}};
  for (const Case &c : cases) {
    auto want = unfused(*c.x, c.out, c.dims).toF32();
    auto got = fused(*c.x, c.out, c.dims).toF32();
    EXPECT_EQ(got, want);
  }
  // And against the math: Σ x² in double.
  auto xv = y.toF32();
  std::vector<double> want(3, 0);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        want[b] += double(xv[(a * 3 + b) * 4 + c]) * xv[(a * 3 + b) * 4 + c];
  expectNear(fused(y, {3}, {0, 2}), want, 1e-5);
  expectNear(fused(s, {}, {}), {9}, 0);
}

//===- mixture of experts -------------------------------------------------===//

TEST(Kernels, RouterSoftmaxThenTopK) {
  // Token 0 has a tie between experts 1 and 3: the lower index comes first.
  auto l = tensorF32({2, 4}, {0, 2, 1, 2, 3, 0, 0, 1});
  auto r =
      runOp(Opcode::Router, {l}, {{DType::F32, {2, 2}}, {DType::I32, {2, 2}}},
            {TAttr::I("top_k", 2), TAttr::B("softmax_before_topk", true)});
  double z0 = 1 + 2 * std::exp(2.0) + std::exp(1.0);
  double z1 = std::exp(3.0) + 2 + std::exp(1.0);
  expectNear(r[0],
             {std::exp(2.0) / z0, std::exp(2.0) / z0, std::exp(3.0) / z1,
              std::exp(1.0) / z1},
             1e-6);
  const int32_t *idx = r[1].as<int32_t>();
  EXPECT_EQ(std::vector<int>(idx, idx + 4), (std::vector<int>{1, 3, 0, 3}));
  auto n =
      runOp(Opcode::Router, {l}, {{DType::F32, {2, 2}}, {DType::I32, {2, 2}}},
            {TAttr::I("top_k", 2), TAttr::B("softmax_before_topk", true),
             TAttr::B("normalize", true)});
  double e3 = std::exp(3.0), e1 = std::exp(1.0);
  expectNear(n[0], {0.5, 0.5, e3 / (e3 + e1), e1 / (e3 + e1)}, 1e-6);
}

TEST(Kernels, RouterTopKThenSoftmax) {
  auto l = tensorF32({1, 4}, {0.5f, -1.0f, 2.0f, 1.0f});
  auto r =
      runOp(Opcode::Router, {l}, {{DType::F32, {1, 2}}, {DType::I32, {1, 2}}},
            {TAttr::I("top_k", 2)});
  double z = std::exp(2.0) + std::exp(1.0);
  expectNear(r[0], {std::exp(2.0) / z, std::exp(1.0) / z}, 1e-6);
  EXPECT_EQ(r[1].as<int32_t>()[0], 2);
  EXPECT_EQ(r[1].as<int32_t>()[1], 3);
}

TEST(Kernels, DispatchAndCombine) {
  // T = 3 tokens, k = 2, E = 2 experts, capacity 2: expert 0 gets tokens
  // 0, 1 and drops token 2's slot.
  auto x = tensorF32({3, 2}, {1, 2, 3, 4, 5, 6});
  auto ids = tensorInt<int>(DType::I32, {3, 2}, {0, 1, 0, 1, 0, 1});
  auto d = runOp(Opcode::Dispatch, {x, ids}, {{DType::F32, {2, 2, 2}}},
                 {TAttr::I("num_experts", 2), TAttr::I("capacity", 2)});
  expectNear(d[0], {1, 2, 3, 4, 1, 2, 3, 4}, 0);
  auto ids2 = tensorInt<int>(DType::I32, {3, 2}, {1, 0, 1, 1, 0, 1});
  auto d2 = runOp(Opcode::Dispatch, {x, ids2}, {{DType::F32, {2, 3, 2}}},
                  {TAttr::I("num_experts", 2), TAttr::I("capacity", 3)});
  // expert 0: token 0 (slot 0), token 2 (slot 1), slot 2 empty;
  // expert 1: token 0, token 1, token 1 (capacity 3), token 2 dropped.
  expectNear(d2[0], {1, 2, 5, 6, 0, 0, 1, 2, 3, 4, 3, 4}, 0);

  auto y = tensorF32({2, 3, 2}, {1, 1, 2, 2, 3, 3, 10, 10, 20, 20, 30, 30});
  auto w = tensorF32({3, 2}, {0.5f, 0.25f, 1, 2, 4, 8});
  auto c = runOp(Opcode::Combine, {y, w, ids2}, {{DType::F32, {3, 2}}});
  // token 0: 0.5 * y[1,0] + 0.25 * y[0,0] = 5.25
  // token 1: 1 * y[1,1] + 2 * y[1,2] = 80; token 2: 4 * y[0,1] + (dropped)
  expectNear(c[0], {5.25, 5.25, 80, 80, 8, 8}, 1e-6);
}

TEST(Kernels, DispatchExpertOutOfRange) {
  auto x = tensorF32({1, 2}, {1, 2});
  auto ids = tensorInt<int>(DType::I32, {1, 1}, {2});
  EXPECT_THROW(runOp(Opcode::Dispatch, {x, ids}, {{DType::F32, {2, 1, 2}}},
                     {TAttr::I("num_experts", 2), TAttr::I("capacity", 1)}),
               ExecutionError);
}

/// Rows [start, start + size) of `cap` slots of h elements of an [E, cap, h]
/// tensor.
std::vector<float> expertRows(const HostTensor &t, int64_t start, int64_t size,
                              int64_t cap, int64_t h) {
  std::vector<float> v = t.toF32();
  return std::vector<float>(v.begin() + start * cap * h,
                            v.begin() + (start + size) * cap * h);
}

TEST(Kernels, ExpertBlocksAreTheWholeMoE) {
  // E = 6 experts, top-2, T = 10 tokens: expert 3 gets six choices, 0 four,
  // so capacity 2 drops some (in token order, then choice order).
  const int64_t e = 6, k = 2, t = 10, h = 3;
  auto ids = tensorInt<int>(DType::I32, {t, k}, {0, 3, 3, 1, 3, 5, 2, 3, 0, 1,
                                                 4, 3, 1, 0, 5, 4, 3, 2, 0, 4});
  auto x = randomF32({t, h}, 41), w = randomF32({t, k}, 42),
       dout = randomF32({t, h}, 43);
  for (int64_t cap : {t, int64_t{2}}) {
    SCOPED_TRACE("capacity " + std::to_string(cap));
    auto y = randomF32({e, cap, h}, 44);
    auto whole = runOp(Opcode::Dispatch, {x, ids}, {{DType::F32, {e, cap, h}}},
                       {TAttr::I("num_experts", e), TAttr::I("capacity", cap)});
    auto wholeSum = runOp(Opcode::Combine, {y, w, ids}, {{DType::F32, {t, h}}});
    auto wholeGrad = runOp(Opcode::CombineGrad, {y, w, ids, dout},
                           {{DType::F32, {e, cap, h}}, {DType::F32, {t, k}}});
    for (int64_t size : {2, 3}) {
      SCOPED_TRACE("blocks of " + std::to_string(size));
      std::vector<double> sum(t * h, 0.0), dw(t * k, 0.0);
      for (int64_t start = 0; start < e; start += size) {
        SCOPED_TRACE("expert_start " + std::to_string(start));
        std::vector<TAttr> block = {TAttr::I("expert_start", start),
                                    TAttr::I("total_experts", e)};
        std::vector<TAttr> dispatchAttrs = block;
        dispatchAttrs.push_back(TAttr::I("num_experts", size));
        dispatchAttrs.push_back(TAttr::I("capacity", cap));
        auto d = runOp(Opcode::Dispatch, {x, ids},
                       {{DType::F32, {size, cap, h}}}, dispatchAttrs);
        EXPECT_EQ(d[0].toF32(), expertRows(whole[0], start, size, cap, h));

        std::vector<float> yv = expertRows(y, start, size, cap, h);
        auto yb = tensorF32({size, cap, h}, yv);
        auto c =
            runOp(Opcode::Combine, {yb, w, ids}, {{DType::F32, {t, h}}}, block);
        std::vector<float> cv = c[0].toF32();
        for (int64_t i = 0; i < t * h; ++i)
          sum[i] += cv[i];

        auto g =
            runOp(Opcode::CombineGrad, {yb, w, ids, dout},
                  {{DType::F32, {size, cap, h}}, {DType::F32, {t, k}}}, block);
        EXPECT_EQ(g[0].toF32(), expertRows(wholeGrad[0], start, size, cap, h));
        std::vector<float> gv = g[1].toF32();
        for (int64_t i = 0; i < t * k; ++i)
          dw[i] += gv[i];
      }
      expectNear(wholeSum[0], sum, 1e-6, "combine");
      expectNear(wholeGrad[1], dw, 1e-6, "combine_grad dweights");
    }
  }
}

/// Rows [row, row + n) of a [rows, width] tensor.
std::vector<float> tokenRows(const HostTensor &t, int64_t row, int64_t n,
                             int64_t width) {
  std::vector<float> v = t.toF32();
  return std::vector<float>(v.begin() + row * width,
                            v.begin() + (row + n) * width);
}

/// Slots [slot, slot + n) of every expert of an [E, cap, h] tensor.
std::vector<float> expertSlots(const HostTensor &t, int64_t e, int64_t cap,
                               int64_t slot, int64_t n, int64_t h) {
  std::vector<float> v = t.toF32(), out;
  for (int64_t x = 0; x < e; ++x)
    out.insert(out.end(), v.begin() + (x * cap + slot) * h,
               v.begin() + (x * cap + slot + n) * h);
  return out;
}

TEST(Kernels, TokenGroupsAreSeparateDispatches) {
  // token_groups = G: each group of t/G tokens fills its own cap/G slots of
  // every expert, as G dispatches of its tokens alone (capacity cap/G)
  // would; combine and combine_grad replay the same slots.
  const int64_t e = 6, k = 2, t = 10, h = 3;
  const std::vector<int> choices = {0, 3, 3, 1, 3, 5, 2, 3, 0, 1,
                                    4, 3, 1, 0, 5, 4, 3, 2, 0, 4};
  auto ids = tensorInt<int>(DType::I32, {t, k}, choices);
  auto x = randomF32({t, h}, 51), w = randomF32({t, k}, 52),
       dout = randomF32({t, h}, 53);
  for (int64_t groups : {2, 5}) {
    for (int64_t groupCap : {1, 2}) {
      int64_t cap = groups * groupCap, n = t / groups;
      SCOPED_TRACE(std::to_string(groups) + " groups of capacity " +
                   std::to_string(groupCap));
      auto y = randomF32({e, cap, h}, 54);
      std::vector<TAttr> grouped = {TAttr::I("token_groups", groups)};
      std::vector<TAttr> dispatchAttrs = grouped;
      dispatchAttrs.push_back(TAttr::I("num_experts", e));
      dispatchAttrs.push_back(TAttr::I("capacity", cap));
      auto d = runOp(Opcode::Dispatch, {x, ids}, {{DType::F32, {e, cap, h}}},
                     dispatchAttrs);
      auto c =
          runOp(Opcode::Combine, {y, w, ids}, {{DType::F32, {t, h}}}, grouped);
      auto g =
          runOp(Opcode::CombineGrad, {y, w, ids, dout},
                {{DType::F32, {e, cap, h}}, {DType::F32, {t, k}}}, grouped);
      for (int64_t group = 0; group < groups; ++group) {
        SCOPED_TRACE("group " + std::to_string(group));
        auto xg = tensorF32({n, h}, tokenRows(x, group * n, n, h));
        auto wg = tensorF32({n, k}, tokenRows(w, group * n, n, k));
        auto dg = tensorF32({n, h}, tokenRows(dout, group * n, n, h));
        auto idg = tensorInt<int>(
            DType::I32, {n, k},
            std::vector<int>(choices.begin() + group * n * k,
                             choices.begin() + (group + 1) * n * k));
        auto yg =
            tensorF32({e, groupCap, h},
                      expertSlots(y, e, cap, group * groupCap, groupCap, h));
        auto alone =
            runOp(Opcode::Dispatch, {xg, idg}, {{DType::F32, {e, groupCap, h}}},
                  {TAttr::I("num_experts", e), TAttr::I("capacity", groupCap)});
        EXPECT_EQ(expertSlots(d[0], e, cap, group * groupCap, groupCap, h),
                  alone[0].toF32());
        auto sum =
            runOp(Opcode::Combine, {yg, wg, idg}, {{DType::F32, {n, h}}});
        EXPECT_EQ(tokenRows(c[0], group * n, n, h), sum[0].toF32());
        auto grad =
            runOp(Opcode::CombineGrad, {yg, wg, idg, dg},
                  {{DType::F32, {e, groupCap, h}}, {DType::F32, {n, k}}});
        EXPECT_EQ(expertSlots(g[0], e, cap, group * groupCap, groupCap, h),
                  grad[0].toF32());
        EXPECT_EQ(tokenRows(g[1], group * n, n, k), grad[1].toF32());
      }
    }
  }
}

TEST(Kernels, ExpertIndexOutsideTheWholeMoE) {
  // Index 4 is outside the block [0, 2) but inside the 5 experts: no slot;
  // index 5 is outside the whole op.
  auto x = tensorF32({3, 2}, {1, 2, 3, 4, 5, 6});
  auto ids = tensorInt<int>(DType::I32, {3, 1}, {1, 4, 5});
  std::vector<TAttr> attrs = {
      TAttr::I("num_experts", 2), TAttr::I("capacity", 2),
      TAttr::I("expert_start", 0), TAttr::I("total_experts", 5)};
  try {
    runOp(Opcode::Dispatch, {x, ids}, {{DType::F32, {2, 2, 2}}}, attrs);
    ADD_FAILURE() << "no error for expert index 5 of 5 experts";
  } catch (const ExecutionError &e) {
    EXPECT_NE(std::string(e.what()).find(
                  "dispatch expert index 5 at position 2 is outside [0, 5)"),
              std::string::npos)
        << e.what();
  }
  auto ok = tensorInt<int>(DType::I32, {3, 1}, {1, 4, 0});
  auto d = runOp(Opcode::Dispatch, {x, ok}, {{DType::F32, {2, 2, 2}}}, attrs);
  expectNear(d[0], {5, 6, 0, 0, 1, 2, 0, 0}, 0);
}

//===- optimizer ----------------------------------------------------------===//

TEST(Kernels, AdamW) {
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  auto p = randomF32({5}, 29), g = randomF32({5}, 30), m = randomF32({5}, 31),
       v = randomF32({5}, 32, 0.0f, 1.0f);
  auto pv = p.toF32(), gv = g.toF32(), mv = m.toF32(), vv = v.toF32();
  const int t = 3;
  std::vector<double> wp, wm, wv;
  for (int i = 0; i < 5; ++i) {
    double pp = pv[i] * (1 - lr * wd);
    double mm = b1 * mv[i] + (1 - b1) * gv[i];
    double v2 = b2 * vv[i] + (1 - b2) * gv[i] * gv[i];
    pp -= lr * (mm / (1 - std::pow(b1, t))) /
          (std::sqrt(v2 / (1 - std::pow(b2, t))) + eps);
    wp.push_back(pp);
    wm.push_back(mm);
    wv.push_back(v2);
  }
  auto step = tensorInt<int64_t>(DType::I64, {}, {t});
  auto rate = tensorF32({}, {static_cast<float>(lr)});
  std::vector<TAttr> attrs = {TAttr::F("beta1", b1), TAttr::F("beta2", b2),
                              TAttr::F("epsilon", eps),
                              TAttr::F("weight_decay", wd)};
  auto r =
      runOp(Opcode::AdamW, {p, g, m, v, step, rate},
            {{DType::F32, {5}}, {DType::F32, {5}}, {DType::F32, {5}}}, attrs);
  expectNear(r[0], wp, 1e-6, "param");
  expectNear(r[1], wm, 1e-6, "m");
  expectNear(r[2], wv, 1e-6, "v");
  // bf16 parameters with f32 moments.
  auto pb = p.convert(DType::BF16);
  auto rb =
      runOp(Opcode::AdamW, {pb, g.convert(DType::BF16), m, v, step, rate},
            {{DType::BF16, {5}}, {DType::F32, {5}}, {DType::F32, {5}}}, attrs);
  expectNear(rb[0], wp, 1e-2, "bf16 param");
  auto zero = tensorInt<int>(DType::I32, {1}, {0});
  EXPECT_THROW(runOp(Opcode::AdamW, {p, g, m, v, zero, rate},
                     {{DType::F32, {5}}, {DType::F32, {5}}, {DType::F32, {5}}},
                     attrs),
               ExecutionError);
}

} // namespace
