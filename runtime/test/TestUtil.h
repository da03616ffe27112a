//===- TestUtil.h - Helpers for runtime tests -------------------*- C++ -*-===//

#ifndef LOOM_RUNTIME_TEST_TESTUTIL_H
#define LOOM_RUNTIME_TEST_TESTUTIL_H

#include "ProgramBuilder.h"
#include "loom/runtime/Runtime.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace loom::test {

using runtime::HostTensor;

inline std::vector<float> randomVec(size_t n, uint32_t seed, float lo = -2,
                                    float hi = 2) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float &x : v)
    x = d(g);
  return v;
}

inline HostTensor tensorF32(std::vector<int64_t> shape, std::vector<float> v) {
  return HostTensor::f32(std::move(shape), v);
}

inline HostTensor randomF32(std::vector<int64_t> shape, uint32_t seed,
                            float lo = -2, float hi = 2) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return HostTensor::f32(shape, randomVec(n, seed, lo, hi));
}

template <typename T>
HostTensor tensorInt(runtime::DType t, std::vector<int64_t> shape,
                     std::vector<T> v) {
  HostTensor r(t, std::move(shape));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == runtime::DType::I32)
      r.as<int32_t>()[i] = static_cast<int32_t>(v[i]);
    else
      r.as<int64_t>()[i] = static_cast<int64_t>(v[i]);
  }
  return r;
}

struct OutSpec {
  runtime::DType dtype;
  std::vector<int64_t> shape;
};

/// Builds and runs a one-instruction program: inputs in0.., outputs out0...
inline std::vector<HostTensor> runOp(Opcode op,
                                     const std::vector<HostTensor> &ins,
                                     const std::vector<OutSpec> &outs,
                                     std::vector<TAttr> attrs = {},
                                     std::string loc = "op.mlir:1:1") {
  ProgramBuilder b("one_op");
  std::vector<uint32_t> in, out;
  for (size_t i = 0; i < ins.size(); ++i)
    in.push_back(b.input("in" + std::to_string(i), ins[i].dtype, ins[i].shape));
  for (size_t i = 0; i < outs.size(); ++i)
    out.push_back(
        b.output("out" + std::to_string(i), outs[i].dtype, outs[i].shape));
  b.op(op, in, out, std::move(attrs), -1, loc);
  auto bytes = b.finish();
  auto prog = runtime::Program::load(bytes.data(), bytes.size());
  runtime::Executor exec(prog, {});
  for (size_t i = 0; i < ins.size(); ++i)
    exec.setInput("in" + std::to_string(i), ins[i]);
  exec.run();
  std::vector<HostTensor> r;
  for (size_t i = 0; i < outs.size(); ++i)
    r.push_back(exec.getOutput("out" + std::to_string(i)));
  return r;
}

inline void expectNear(const HostTensor &got, const std::vector<double> &want,
                       double tol, const char *what = "") {
  std::vector<float> g = got.toF32();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], want[i], tol * (1 + std::fabs(want[i])))
        << what << " element " << i;
}

} // namespace loom::test

#endif // LOOM_RUNTIME_TEST_TESTUTIL_H
