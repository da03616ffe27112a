//===- JobFilesTest.cpp - What a job reads and writes ---------------------===//

#include "loom/runtime/launch/JobFiles.h"

#include "LaunchTestUtil.h"

#include <sys/stat.h>

using namespace loom::runtime;
using namespace loom::test;
namespace fs = std::filesystem;

namespace {

/// The message of what `fn` throws, or "" if nothing.
template <typename Fn> std::string error(Fn fn) {
  try {
    fn();
  } catch (const std::exception &e) {
    return e.what();
  }
  return "";
}

void touch(const std::string &path, const std::string &text = "old") {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(JobFiles, NamesThatAreNotFileNamesAreRefused) {
  EXPECT_EQ(fileNameProblem("loss"), "");
  EXPECT_EQ(fileNameProblem("layers.0.attn..weight"), "");
  EXPECT_EQ(fileNameProblem(""), "it is empty");
  EXPECT_EQ(fileNameProblem(".."), "it is '..'");
  EXPECT_EQ(fileNameProblem("."), "it is '.'");
  for (const std::string name : std::vector<std::string>{
           "../../x", "a/b", "/etc/passwd", "a\\b", std::string("a\0b", 3)})
    EXPECT_EQ(fileNameProblem(name), "it holds a path separator or NUL")
        << name;
}

TEST(JobFiles, InputsMustNameTheProgramsInputs) {
  TempDir dir;
  auto program = allReduceSum(2);
  auto check = [&](const std::string &in) {
    return error([&] { checkInputs(*program, in, 2); });
  };
  EXPECT_EQ(check(dir / "none"),
            "--inputs " + (dir / "none") + ": No such file or directory");
  touch(dir / "file");
  EXPECT_EQ(check(dir / "file"),
            "--inputs " + (dir / "file") + " is not a directory");
  writeX(dir / "ok", {1, 2});
  writeX(dir / "ok/rank1", {1, 2});
  touch(dir / "ok/README.txt"); // not a .npy: left alone
  touch(dir / "ok/rank01/x.npy");
  EXPECT_EQ(check(dir / "ok"), "");
  touch(dir / "typo/xx.npy");
  EXPECT_EQ(check(dir / "typo"), "--inputs " + (dir / "typo/xx.npy") +
                                     " is named after no input or parameter "
                                     "of the program (they are x)");
  touch(dir / "shard/rank1/y.npy");
  EXPECT_EQ(check(dir / "shard"), "--inputs " + (dir / "shard/rank1/y.npy") +
                                      " is named after no input or "
                                      "parameter of the program (they are x)");
  fs::create_directories(dir / "dirnpy/x.npy");
  EXPECT_EQ(check(dir / "dirnpy"),
            "--inputs " + (dir / "dirnpy/x.npy") + " is not a regular file");
  fs::create_directories(dir / "fifo");
  ASSERT_EQ(::mkfifo((dir / "fifo/x.npy").c_str(), 0600), 0);
  EXPECT_EQ(check(dir / "fifo"),
            "--inputs " + (dir / "fifo/x.npy") + " is not a regular file");
  writeX(dir / "ranks/rank2", {1, 2});
  EXPECT_EQ(check(dir / "ranks"), "--inputs " + (dir / "ranks/rank2") +
                                      " is for rank 2, but the job has 2 "
                                      "rank(s)");
}

TEST(JobFiles, OutputPlacesAreCheckedBeforeAnyStep) {
  TempDir dir;
  auto program = allReduceSum(2);
  auto check = [&](const std::string &out, const std::string &trace = "") {
    LaunchOptions options;
    options.outputsDir = out;
    options.tracePath = trace;
    return error([&] { checkOutputs(options, *program, {0, 1}); });
  };
  EXPECT_EQ(check(dir / "new"), "");
  EXPECT_EQ(check(dir / "no/such/out"),
            "--outputs " + (dir / "no/such/out") + " cannot be created: " +
                (dir / "no/such") + " is not a directory");
  touch(dir / "file");
  EXPECT_EQ(check(dir / "file"),
            "--outputs " + (dir / "file") + " is not a directory");
  fs::create_directories(dir / "taken/rank1/y.npy");
  EXPECT_EQ(check(dir / "taken"), "--outputs: cannot write " +
                                      (dir / "taken/rank1/y.npy") +
                                      ": a directory is in its place");
  EXPECT_EQ(check("", dir / "no/trace.json"),
            "--trace " + (dir / "no/trace.json") + ": " + (dir / "no") +
                " is not a directory");
}

TEST(JobFiles, OutputsMoveIntoPlaceAsOneSet) {
  TempDir dir;
  auto program = allReduceSum(2);
  LaunchOptions options;
  options.outputsDir = dir / "out/";
  options.tracePath = dir / "trace.json";
  touch(dir / "out/y.npy");
  touch(dir / "out/keep.txt", "mine");
  {
    JobFiles files(options, *program, {0, 1});
    std::string staging = files.rankOptions().outputsDir;
    // Beside the target, hidden, on the same file system.
    EXPECT_EQ(fs::path(staging).parent_path(), fs::path(dir.path()));
    EXPECT_EQ(fs::path(staging).filename().string().rfind(".out.", 0), 0u);
    for (int rank : {0, 1})
      for (const char *name : {"y", "loss"})
        touch(rankFile(staging, rank, name), name + std::to_string(rank));
    files.stageTrace("{}");
    EXPECT_EQ(readFile(dir / "out/y.npy"), "old");
    EXPECT_FALSE(fs::exists(options.tracePath));
    files.commit();
    EXPECT_FALSE(fs::exists(staging));
  }
  EXPECT_EQ(readFile(dir / "out/y.npy"), "y0");
  EXPECT_EQ(readFile(dir / "out/rank1/loss.npy"), "loss1");
  EXPECT_EQ(readFile(dir / "out/keep.txt"), "mine");
  EXPECT_EQ(readFile(options.tracePath), "{}");
}

TEST(JobFiles, AnIncompleteSetChangesNothing) {
  TempDir dir;
  auto program = allReduceSum(2);
  LaunchOptions options;
  options.outputsDir = dir / "out";
  options.tracePath = dir / "trace.json";
  touch(dir / "out/y.npy");
  std::string staging;
  {
    JobFiles files(options, *program, {0, 1});
    staging = files.rankOptions().outputsDir;
    // Rank 1 failed after rank 0 had written everything.
    for (const char *name : {"y", "loss"})
      touch(rankFile(staging, 0, name), "new");
    files.stageTrace("{}");
    EXPECT_EQ(error([&] { files.commit(); }), "rank 1 wrote no output 'y'");
  }
  EXPECT_EQ(readFile(dir / "out/y.npy"), "old");
  EXPECT_FALSE(fs::exists(dir / "out/loss.npy"));
  EXPECT_FALSE(fs::exists(options.tracePath));
  // Nothing staged is left behind.
  EXPECT_FALSE(fs::exists(staging));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()),
                          fs::directory_iterator()),
            1);
}

} // namespace
