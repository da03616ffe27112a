//===- JsonTest.cpp - The strict JSON reader ------------------------------===//

#include "loom/runtime/train/Json.h"

#include "TrainTestUtil.h"

using namespace loom::runtime;
using namespace loom::test;

namespace {

TEST(Json, ReadsDocuments) {
  JsonValue v = parseJson(" {\"a\": [1, -2, 3.5e-1, true, false, null],\n"
                          "  \"s\": \"x\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d"
                          "\\ude00\", \"o\": {}, \"e\": []} ");
  ASSERT_EQ(v.kind, JsonValue::Kind::Object);
  ASSERT_EQ(v.members.size(), 4u);
  const auto &a = v.find("a")->asArray("a");
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a[0].asInt64("a0"), 1);
  EXPECT_EQ(a[1].asInt64("a1"), -2);
  EXPECT_EQ(a[2].text, "3.5e-1");
  EXPECT_TRUE(a[3].boolean);
  EXPECT_EQ(a[4].kind, JsonValue::Kind::Bool);
  EXPECT_EQ(a[5].kind, JsonValue::Kind::Null);
  EXPECT_EQ(v.find("s")->asString("s"),
            "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("missing"), nullptr);
  EXPECT_EQ(parseJson("\"caf\xc3\xa9\"").text, "caf\xc3\xa9");
}

TEST(Json, IntegersAreExact) {
  EXPECT_EQ(parseJson("9223372036854775807").asInt64("n"), INT64_MAX);
  EXPECT_EQ(parseJson("-9223372036854775808").asInt64("n"), INT64_MIN);
  EXPECT_EQ(parseJson("18446744073709551615").asUInt64("n"), UINT64_MAX);
  EXPECT_EQ(errorOf([] { parseJson("9223372036854775808").asInt64("step"); }),
            "step: expected an integer in [-2^63, 2^63), got "
            "9223372036854775808");
  EXPECT_EQ(errorOf([] { parseJson("-1").asUInt64("seed"); }),
            "seed: expected an integer in [0, 2^64), got -1");
  EXPECT_EQ(errorOf([] { parseJson("1.0").asInt64("step"); }),
            "step: expected an integer in [-2^63, 2^63), got 1.0");
  EXPECT_EQ(errorOf([] { parseJson("\"1\"").asInt64("step"); }),
            "step: expected an integer in [-2^63, 2^63), got a string");
  EXPECT_EQ(errorOf([] { parseJson("{}").asString("model"); }),
            "model: expected a string, got an object");
  EXPECT_EQ(errorOf([] { parseJson("null").asArray("tensors"); }),
            "tensors: expected an array, got null");
}

TEST(Json, WhatALenientReaderWouldGuessAtIsRefused) {
  struct Case {
    std::string text, error;
  };
  for (const Case &c : std::vector<Case>{
           {"", "line 1, column 1: the text ends where a value is expected"},
           {"{\"a\": 1,}", "line 1, column 9: expected a string key"},
           {"[1, 2,]", "line 1, column 7: expected a value"},
           {"[1 2]", "line 1, column 4: expected ',' or ']'"},
           {"{\"a\" 1}", "line 1, column 6: expected ':'"},
           {"{\"a\": 1, \"a\": 2}", "line 1, column 10: duplicate key \"a\""},
           {"{\"a\": 1}\n  x", "line 2, column 3: unexpected text after the "
                               "document"},
           {"// c\n1", "line 1, column 1: expected a value"},
           {"01", "line 1, column 2: a number has a leading zero"},
           {"-", "line 1, column 2: expected a digit"},
           {"1.", "line 1, column 3: expected a digit after '.'"},
           {"1e+", "line 1, column 4: expected a digit in the exponent"},
           {"NaN", "line 1, column 1: expected a value"},
           {"'a'", "line 1, column 1: expected a value"},
           {"\"a\nb\"", "line 1, column 3: a control character inside a "
                        "string (escape it)"},
           {"\"\\x\"", "line 1, column 3: an unknown escape in a string"},
           {"\"\\u12\"", "line 1, column 6: expected four hex digits after "
                         "\\u"},
           {"\"\\udc00\"", "line 1, column 8: a lone low surrogate \\u "
                           "escape"},
           {"\"\\ud800x\"", "line 1, column 8: a high surrogate \\u escape "
                            "without its low half"},
           {"\"\xff\"", "line 1, column 2: invalid UTF-8 inside a string"},
           {"\"\xc0\xaf\"", "line 1, column 2: invalid UTF-8 inside a string"},
           {"\"\xed\xa0\x80\"", "line 1, column 2: invalid UTF-8 inside a "
                                "string"},
           {"\"abc", "line 1, column 5: the text ends inside a string"},
           {"[1", "line 1, column 3: the text ends where ',' or ']' is "
                  "expected"},
           {"tru", "line 1, column 1: expected a value"},
       })
    EXPECT_EQ(errorOf([&] { parseJson(c.text); }), c.error) << c.text;
  EXPECT_EQ(
      errorOf([] { parseJson(std::string(65, '[') + std::string(65, ']')); }),
      "line 1, column 65: nesting deeper than 64");
  EXPECT_EQ(
      errorOf([] { parseJson(std::string(64, '[') + std::string(64, ']')); }),
      "");
}

TEST(Json, QuotedStringsReadBack) {
  std::string text = "a\"b\\c\n\x01\x7f caf\xc3\xa9 \xf0\x9f\x98\x80";
  EXPECT_EQ(jsonQuote(text),
            "\"a\\\"b\\\\c\\u000a\\u0001\x7f caf\xc3\xa9 \xf0\x9f\x98\x80\"");
  EXPECT_EQ(parseJson(jsonQuote(text)).text, text);
  EXPECT_EQ(errorOf([] { jsonQuote("ab\xff"); }),
            "byte 2 of \"ab\"... is not valid UTF-8");
}

} // namespace
