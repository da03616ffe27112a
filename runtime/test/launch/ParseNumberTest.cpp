//===- ParseNumberTest.cpp - Numbers from command-line text ---------------===//

#include "loom/runtime/ParseNumber.h"

#include <gtest/gtest.h>

using namespace loom::runtime;
using namespace std::chrono_literals;

namespace {

/// The value, or the problem, of `text` in [min, max].
std::string integer(const char *text, int64_t min = INT64_MIN,
                    int64_t max = INT64_MAX) {
  int64_t value = 42;
  NumberProblem problem = parseInteger(text, min, max, value);
  return problem ? *problem : std::to_string(value);
}

std::string real(const char *text, double min = 0, double max = 1024) {
  double value = 0;
  NumberProblem problem = parseReal(text, min, max, value);
  return problem ? *problem : std::to_string(value);
}

std::string seconds(const char *text) {
  std::chrono::milliseconds value{0};
  NumberProblem problem = parseSeconds(text, 1ms, 1000000ms, value);
  return problem ? *problem : std::to_string(value.count()) + " ms";
}

TEST(ParseNumber, IntegersAreWholeAndInRange) {
  EXPECT_EQ(integer("0"), "0");
  EXPECT_EQ(integer("-9223372036854775808"), "-9223372036854775808");
  EXPECT_EQ(integer("9223372036854775807"), "9223372036854775807");
  EXPECT_EQ(integer("007"), "7");
  // What std::stol and a cast to int would have taken.
  EXPECT_EQ(integer("12abc"), "needs an integer, got '12abc'");
  EXPECT_EQ(integer(" 1"), "needs an integer, got ' 1'");
  EXPECT_EQ(integer("+1"), "needs an integer, got '+1'");
  EXPECT_EQ(integer(""), "needs an integer, got ''");
  EXPECT_EQ(integer("-"), "needs an integer, got '-'");
  EXPECT_EQ(integer("2147483648", 1, INT32_MAX),
            "must be in [1, 2147483647], got 2147483648");
  EXPECT_EQ(integer("4294967298", 1, 1024),
            "must be in [1, 1024], got 4294967298");
  EXPECT_EQ(integer("99999999999999999999", 1, 1024),
            "must be in [1, 1024], got 99999999999999999999");
  EXPECT_EQ(integer("-9223372036854775809", 0, 10),
            "must be in [0, 10], got -9223372036854775809");
}

TEST(ParseNumber, RealsArePlainDecimalsInRange) {
  EXPECT_EQ(real("1.5"), "1.500000");
  EXPECT_EQ(real("1e-3"), "0.001000");
  EXPECT_EQ(real(".5"), "0.500000");
  for (const char *text : {"inf", "nan", "0x10", "1.5x", "", "e5"})
    EXPECT_EQ(real(text), "needs a number, got '" + std::string(text) + "'");
  EXPECT_EQ(real("1e300"), "must be in [0, 1024], got 1e300");
  EXPECT_EQ(real("1e999"), "must be in [0, 1024], got 1e999");
  EXPECT_EQ(real("-0.5"), "must be in [0, 1024], got -0.5");
}

TEST(ParseNumber, SecondsAreExactToTheMillisecond) {
  EXPECT_EQ(seconds("10"), "10000 ms");
  EXPECT_EQ(seconds("0.25"), "250 ms");
  EXPECT_EQ(seconds("1.5000"), "1500 ms");
  for (const char *text : {"0.0005", "1e3", "-1", "1.", "", "abc", "1s"})
    EXPECT_EQ(seconds(text), "needs a duration in seconds (e.g. 10 or 0.5, "
                             "to the millisecond), got '" +
                                 std::string(text) + "'");
  EXPECT_EQ(seconds("0"), "must be in [0.001, 1000] seconds, got 0");
  EXPECT_EQ(seconds("1001"), "must be in [0.001, 1000] seconds, got 1001");
  // Far past 64 bits of milliseconds: refused, not wrapped into range.
  EXPECT_EQ(seconds("99999999999999999999"),
            "must be in [0.001, 1000] seconds, got 99999999999999999999");
  EXPECT_EQ(seconds("9223372036854775"),
            "must be in [0.001, 1000] seconds, got 9223372036854775");
}

} // namespace
