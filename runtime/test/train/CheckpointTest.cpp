//===- CheckpointTest.cpp - Saving, loading and damaged checkpoints -------===//

#include "loom/runtime/train/Checkpoint.h"

#include "loom/runtime/Npy.h"

#include "TrainTestUtil.h"

using namespace loom::runtime;
using namespace loom::test;
namespace fs = std::filesystem;

namespace {

Checkpoint sample(int64_t step) {
  Checkpoint c;
  c.step = step;
  c.dataPosition = step * 8;
  c.seed = UINT64_MAX;
  c.model = "tiny-llama";
  c.programId = "3f2a9c";
  c.tensors["layers.0.w"] =
      HostTensor::f32({2, 3}, {1, 2, 3, 4, 5, float(step)});
  HostTensor count(DType::I64, {});
  count.as<int64_t>()[0] = step;
  c.tensors["adam.step"] = count;
  return c;
}

void expectSame(const Checkpoint &a, const Checkpoint &b) {
  EXPECT_EQ(a.step, b.step);
  EXPECT_EQ(a.dataPosition, b.dataPosition);
  EXPECT_EQ(a.seed, b.seed);
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.programId, b.programId);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto &[name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    const HostTensor &u = b.tensors.at(name);
    EXPECT_EQ(t.dtype, u.dtype) << name;
    EXPECT_EQ(t.shape, u.shape) << name;
    EXPECT_EQ(t.bytes, u.bytes) << name;
  }
}

TEST(Checkpoint, SavesMegatronsLayoutAndLoadsItBack) {
  TempDir dir;
  std::string ckpt = dir / "ckpt"; // created by the first save
  EXPECT_EQ(latestCheckpointStep(ckpt), std::nullopt);
  saveCheckpoint(ckpt, sample(100));
  EXPECT_EQ(readFile(ckpt + "/latest_checkpointed_iteration.txt"), "100\n");
  EXPECT_EQ(checkpointIterationDir(ckpt, 100), ckpt + "/iter_0000100");
  EXPECT_EQ(checkpointIterationDir(ckpt, 123456789), ckpt + "/iter_123456789");
  EXPECT_EQ(
      readFile(ckpt + "/iter_0000100/metadata.json"),
      "{\n"
      "  \"format\": \"loom-checkpoint\",\n"
      "  \"version\": 1,\n"
      "  \"step\": 100,\n"
      "  \"data_position\": 800,\n"
      "  \"seed\": 18446744073709551615,\n"
      "  \"model\": \"tiny-llama\",\n"
      "  \"program\": \"3f2a9c\",\n"
      "  \"tensors\": [\n"
      "    {\"name\": \"adam.step\", \"dtype\": \"i64\", \"shape\": []},\n"
      "    {\"name\": \"layers.0.w\", \"dtype\": \"f32\", \"shape\": "
      "[2, 3]}\n"
      "  ]\n"
      "}\n");
  HostTensor w = readNpy(ckpt + "/iter_0000100/layers.0.w.npy");
  EXPECT_EQ(w.toF32(), (std::vector<float>{1, 2, 3, 4, 5, 100}));

  saveCheckpoint(ckpt, sample(200));
  EXPECT_EQ(latestCheckpointStep(ckpt), 200);
  expectSame(loadCheckpoint(ckpt), sample(200));
  expectSame(loadCheckpoint(ckpt, 100), sample(100));
  // Nothing else is left in the directory.
  std::vector<std::string> names;
  for (const auto &e : fs::directory_iterator(ckpt))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"iter_0000100", "iter_0000200",
                                             "latest_checkpointed_iteration."
                                             "txt"}));
}

TEST(Checkpoint, ResavingAnIterationReplacesIt) {
  TempDir dir;
  Checkpoint c = sample(5);
  saveCheckpoint(dir.path(), c);
  c.tensors.erase("adam.step");
  c.tensors["other"] = HostTensor::f32({1}, {7});
  saveCheckpoint(dir.path(), c);
  expectSame(loadCheckpoint(dir.path()), c);
  EXPECT_FALSE(fs::exists(dir / "iter_0000005/adam.step.npy"));
  // An empty checkpoint is a checkpoint.
  Checkpoint empty;
  saveCheckpoint(dir.path(), empty);
  expectSame(loadCheckpoint(dir.path()), empty);
}

TEST(Checkpoint, LeftoversOfACrashedSaveAreRemoved) {
  TempDir dir;
  saveCheckpoint(dir.path(), sample(1));
  fs::create_directories(dir / ".staging.iter_0000002.abcdef/x");
  saveCheckpoint(dir.path(), sample(2));
  EXPECT_FALSE(fs::exists(dir / ".staging.iter_0000002.abcdef"));
}

TEST(Checkpoint, WhatCannotBeSavedIsRefusedBeforeWriting) {
  TempDir dir;
  Checkpoint c = sample(1);
  c.tensors["../escape"] = HostTensor::f32({1}, {1});
  EXPECT_EQ(errorOf([&] { saveCheckpoint(dir.path(), c); }),
            dir.path() + ": cannot save tensor \"../escape\": it holds a path "
                         "separator or NUL");
  c = sample(1);
  c.tensors["short"] = HostTensor::f32({4}, {1, 2, 3, 4});
  c.tensors["short"].bytes.resize(3);
  EXPECT_EQ(errorOf([&] { saveCheckpoint(dir.path(), c); }),
            dir.path() + ": cannot save tensor \"short\": 3 bytes for f32[4]");
  c = sample(1);
  c.model = "bad\xff";
  EXPECT_EQ(errorOf([&] { saveCheckpoint(dir.path(), c); }),
            dir.path() + ": cannot save the metadata: byte 3 of \"bad\"... is "
                         "not valid UTF-8");
  c = sample(-1);
  EXPECT_EQ(errorOf([&] { saveCheckpoint(dir.path(), c); }),
            dir.path() + ": cannot save step -1 at data position -8 (both "
                         "must be >= 0)");
  EXPECT_TRUE(fs::is_empty(dir.path()));
  writeFile(dir / "file", "");
  EXPECT_NE(errorOf([&] { saveCheckpoint(dir / "file", sample(1)); }), "");
}

TEST(Checkpoint, DamagedLatestFilesAreNamed) {
  TempDir dir;
  std::string latest = dir / "latest_checkpointed_iteration.txt";
  EXPECT_EQ(errorOf([&] { loadCheckpoint(dir.path()); }),
            dir.path() + ": no checkpoint (" + latest + " does not exist)");
  saveCheckpoint(dir.path(), sample(3));
  for (const auto &[text, why] :
       std::vector<std::pair<std::string, std::string>>{
           {"", "empty (it should hold the step number of the latest "
                "checkpoint)"},
           {"\n", "empty (it should hold the step number of the latest "
                  "checkpoint)"},
           {"abc", "expected a step number, found \"abc\""},
           {"3x", "expected a step number, found \"3x\""},
           {"-3", "expected a step number, found \"-3\""},
           {"+3", "expected a step number, found \"+3\""},
           {"3 4", "expected a step number, found \"3 4\""},
           {"99999999999999999999", "expected a step number, found "
                                    "\"99999999999999999999\""},
           {"release", "names a Megatron release checkpoint, not a Loom "
                       "checkpoint"},
       }) {
    writeFile(latest, text);
    EXPECT_EQ(errorOf([&] { loadCheckpoint(dir.path()); }), latest + ": " + why)
        << text;
  }
  writeFile(latest, " 3 \n"); // Megatron strips whitespace too
  EXPECT_EQ(loadCheckpoint(dir.path()).step, 3);
  writeFile(latest, "4");
  EXPECT_EQ(errorOf([&] { loadCheckpoint(dir.path()); }),
            (dir / "iter_0000004") +
                ": the checkpoint of step 4 is missing (or not a directory)");
  writeFile(latest, std::string(5000, '1'));
  EXPECT_EQ(errorOf([&] { loadCheckpoint(dir.path()); }),
            latest + ": too large (5000 bytes) to hold a step number");
}

TEST(Checkpoint, DamagedIterationsAreNamed) {
  TempDir dir;
  saveCheckpoint(dir.path(), sample(7));
  std::string iter = dir / "iter_0000007", meta = iter + "/metadata.json";
  std::string good = readFile(meta);
  auto load = [&] { return errorOf([&] { loadCheckpoint(dir.path()); }); };

  writeFile(meta, good.substr(0, good.size() / 2));
  EXPECT_EQ(load().rfind(meta + ": line ", 0), 0u) << load();
  writeFile(meta, "[]");
  EXPECT_EQ(load(), meta + ": not a JSON object");
  writeFile(meta, "{\"format\": \"other\"}");
  EXPECT_EQ(load(), meta + ": not a Loom checkpoint (format is not "
                           "\"loom-checkpoint\")");
  auto edit = [&](const std::string &from, const std::string &to) {
    std::string text = good;
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    writeFile(meta, text);
  };
  edit("\"version\": 1", "\"version\": 2");
  EXPECT_EQ(load(), meta + ": checkpoint version 2 is not supported (this "
                           "reader knows 1)");
  edit("\"step\": 7", "\"step\": 8");
  EXPECT_EQ(load(), meta + ": holds step 8, but its directory is that of "
                           "step 7");
  edit("\"step\": 7", "\"step\": \"7\"");
  EXPECT_EQ(load(), meta + ": step: expected an integer in [-2^63, 2^63), got "
                           "a string");
  edit("  \"seed\": 18446744073709551615,\n", "");
  EXPECT_EQ(load(), meta + ": no \"seed\" field");
  edit("\"data_position\": 56", "\"data_position\": -1");
  EXPECT_EQ(load(), meta + ": data_position -1 is negative");
  edit("\"dtype\": \"i64\"", "\"dtype\": \"u8\"");
  EXPECT_EQ(load(), meta + ": tensors[0]: unknown dtype \"u8\"");
  edit("\"shape\": [2, 3]", "\"shape\": [3, 2]");
  EXPECT_EQ(load(), iter + "/layers.0.w.npy: holds f32[2,3], but "
                           "metadata.json says f32[3,2]");
  edit("\"name\": \"adam.step\"", "\"name\": \"..\"");
  EXPECT_EQ(load(), meta + ": tensors[0]: tensor name \"..\": it is '..'");
  edit("\"name\": \"layers.0.w\"", "\"name\": \"adam.step\"");
  EXPECT_EQ(load(), meta + ": tensor \"adam.step\" is listed twice");
  writeFile(meta, good);
  EXPECT_EQ(load(), "");

  std::string npy = iter + "/layers.0.w.npy", bytes = readFile(npy);
  writeFile(npy, bytes.substr(0, bytes.size() - 1));
  EXPECT_EQ(load(), npy + ": truncated data: 23 bytes for 24");
  fs::remove(npy);
  EXPECT_EQ(load(), npy + ": missing (metadata.json lists tensor "
                          "\"layers.0.w\")");
  fs::remove(meta);
  EXPECT_EQ(load(), meta + ": cannot open: No such file or directory");
}

TEST(Checkpoint, MismatchesNameTheModelOrProgram) {
  Checkpoint c = sample(9);
  EXPECT_EQ(checkpointMismatch("ck", c, "tiny-llama", "3f2a9c"), "");
  EXPECT_EQ(checkpointMismatch("ck", c, "llama3-8b", "3f2a9c"),
            "ck/iter_0000009: a checkpoint of model \"tiny-llama\", not of "
            "\"llama3-8b\"");
  EXPECT_EQ(checkpointMismatch("ck", c, "tiny-llama", "77"),
            "ck/iter_0000009: saved by another training program (3f2a9c, this "
            "run's is 77): the model's sizes, precision or optimizer differ");
}

} // namespace
