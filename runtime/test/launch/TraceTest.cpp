//===- TraceTest.cpp - The Chrome trace writer ----------------------------===//

#include "loom/runtime/launch/Trace.h"

#include "LaunchTestUtil.h"

#include <filesystem>

using namespace loom::runtime;
using namespace loom::test;

namespace {

/// A one-instruction program whose location needs escaping.
std::shared_ptr<const Program> quotedLocation() {
  ProgramBuilder b;
  uint32_t x = b.input("x", DType::F32, {2});
  uint32_t y = b.output("y", DType::F32, {2});
  b.op(Opcode::Scale, {x}, {y}, {TAttr::F("factor", 2)}, -1,
       "dir\\\"q\".mlir:1:2");
  std::vector<uint8_t> bytes = b.finish();
  return Program::load(bytes.data(), bytes.size());
}

RankResult traced(int rank, std::shared_ptr<const Program> program) {
  RankResult result;
  result.rank = rank;
  result.program = std::move(program);
  TraceEvent event;
  event.instruction = 0;
  event.stream = StreamKind::Compute;
  event.startUs = 1.5 + rank;
  event.durationUs = 0.25;
  result.events = {event};
  return result;
}

TEST(Trace, JsonEscape) {
  EXPECT_EQ(jsonEscape("plain.mlir:3:4"), "plain.mlir:3:4");
  EXPECT_EQ(jsonEscape("a\"b\\c"), "a\\\"b\\\\c");
  EXPECT_EQ(jsonEscape(std::string("\n\t\x01\x1f", 4)),
            "\\u000a\\u0009\\u0001\\u001f");
  // UTF-8 passes through as it is.
  EXPECT_EQ(jsonEscape("\xc3\xa9"), "\xc3\xa9");
}

TEST(Trace, OneRankDocument) {
  std::string expected =
      "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n"
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,"
      "\"args\":{\"name\":\"rank 1\"}},\n"
      "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":0,"
      "\"args\":{\"name\":\"compute\"}},\n"
      "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,"
      "\"args\":{\"name\":\"comm\"}},\n"
      "{\"ph\":\"X\",\"name\":\"scale\",\"pid\":1,\"tid\":0,\"ts\":2.500,"
      "\"dur\":0.250,\"args\":{\"instruction\":0,"
      "\"loc\":\"dir\\\\\\\"q\\\".mlir:1:2\"}}\n"
      "]}\n";
  EXPECT_EQ(renderTrace({traced(1, quotedLocation())}, /*complete=*/true),
            expected);
}

TEST(Trace, MergedPartsEqualTheWholeTrace) {
  TempDir dir;
  std::string path = dir / "trace.json";
  std::vector<RankResult> results = {traced(0, quotedLocation()),
                                     traced(1, quotedLocation())};
  std::filesystem::create_directory(path + ".parts.j");
  for (const RankResult &result : results)
    writeTrace(rankTracePartPath(path, "j", result.rank), {result},
               /*complete=*/false);
  mergeRankTraces(path, "j", 2);
  EXPECT_EQ(readFile(path), renderTrace(results, /*complete=*/true));
  // The parts and their directory are gone.
  EXPECT_FALSE(std::filesystem::exists(path + ".parts.j"));
}

TEST(Trace, MergeNamesTheRankWithoutAPart) {
  TempDir dir;
  std::string path = dir / "trace.json";
  std::filesystem::create_directory(path + ".parts.j");
  writeTrace(rankTracePartPath(path, "j", 0), {traced(0, quotedLocation())},
             /*complete=*/false);
  try {
    mergeRankTraces(path, "j", 2);
    FAIL() << "merged a trace with a missing part";
  } catch (const std::runtime_error &e) {
    EXPECT_EQ(std::string(e.what()), "rank 1 wrote no trace part '" +
                                         rankTracePartPath(path, "j", 1) + "'");
  }
  // Nothing is lost: rank 0's part stays, no trace is written.
  EXPECT_TRUE(std::filesystem::exists(rankTracePartPath(path, "j", 0)));
  EXPECT_FALSE(std::filesystem::exists(path));
}

} // namespace
