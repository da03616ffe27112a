//===- CheckedMathTest.cpp - Overflow-checked size arithmetic -------------===//

#include "loom/runtime/CheckedMath.h"
#include "loom/runtime/Mesh.h"
#include "loom/runtime/TensorLimits.h"

#include <gtest/gtest.h>

using namespace loom::runtime;

TEST(CheckedMath, AddAndMulRefuseOverflow) {
  int64_t out;
  EXPECT_TRUE(checkedAdd(INT64_MAX - 1, 1, out));
  EXPECT_EQ(out, INT64_MAX);
  EXPECT_FALSE(checkedAdd(INT64_MAX, 1, out));
  EXPECT_FALSE(checkedAdd(INT64_MIN, -1, out));
  EXPECT_TRUE(checkedMul(int64_t(1) << 31, int64_t(1) << 31, out));
  EXPECT_EQ(out, int64_t(1) << 62);
  EXPECT_FALSE(checkedMul(int64_t(1) << 32, int64_t(1) << 32, out));
  EXPECT_FALSE(checkedMul(-(int64_t(1) << 32), int64_t(1) << 32, out));
}

TEST(CheckedMath, AccumulateStopsAtTheLimit) {
  int64_t total = 10;
  EXPECT_TRUE(checkedAccumulate(total, 5, 15));
  EXPECT_EQ(total, 15);
  EXPECT_FALSE(checkedAccumulate(total, 1, 15));
  EXPECT_EQ(total, 15); // unchanged
  total = INT64_MAX;
  EXPECT_FALSE(checkedAccumulate(total, 1));
  EXPECT_EQ(total, INT64_MAX);
}

TEST(CheckedMath, ProductChecksFactorsAndLimit) {
  int64_t ok[] = {4, 8, 16};
  EXPECT_EQ(checkedProduct(ok, 3, 1, 16, 512), 512);
  EXPECT_EQ(checkedProduct(ok, 3, 1, 16, 511), -1);
  EXPECT_EQ(checkedProduct(ok, 3, 1, 8, INT64_MAX), -1); // 16 > maxFactor
  EXPECT_EQ(checkedProduct(ok, 0, 1, 16, 512), 1);       // empty product
  int64_t zero[] = {0, INT64_MAX};
  EXPECT_EQ(checkedProduct(zero, 2, 0, INT64_MAX, INT64_MAX), 0);
  EXPECT_EQ(checkedProduct(zero, 2, 1, INT64_MAX, INT64_MAX), -1);
  // 2^32 · 2^32 wraps to 0 in 64 bits: refused, not 0.
  int64_t wrap[] = {int64_t(1) << 32, int64_t(1) << 32};
  EXPECT_EQ(checkedProduct(wrap, 2, 1, INT64_MAX, INT64_MAX), -1);
}

TEST(CheckedMath, TensorsAndMeshesUseIt) {
  int64_t huge[] = {kMaxTensorDim, kMaxTensorDim};
  EXPECT_EQ(checkedNumElements(huge, 2), -1);
  int64_t fine[] = {int64_t(1) << 25, int64_t(1) << 25};
  EXPECT_EQ(checkedNumElements(fine, 2), kMaxTensorElements);
  int64_t negative[] = {-1, 4};
  EXPECT_EQ(checkedNumElements(negative, 2), -1);
  int64_t axes[] = {int64_t(1) << 32, int64_t(1) << 32};
  EXPECT_EQ(checkedMeshSize(axes, 2, INT64_MAX), -1);
  int64_t world[] = {2, 0};
  EXPECT_EQ(checkedMeshSize(world, 2), -1);
}
