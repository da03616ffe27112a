//===- Checkpoint.cpp - Saving and resuming a training run ----------------===//

#include "loom/runtime/train/Checkpoint.h"

#include "loom/runtime/AtomicFile.h"
#include "loom/runtime/Npy.h"
#include "loom/runtime/train/Json.h"

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace loom::runtime;
namespace fs = std::filesystem;

void (*loom::runtime::checkpointSaveProbe)(const char *point) = nullptr;

namespace {

constexpr const char *kFormat = "loom-checkpoint";
constexpr int64_t kVersion = 1;
constexpr const char *kStagingPrefix = ".staging.";

/// What is wrong with `name` as the <name> of <name>.npy, or "": the rule of
/// launch/JobFiles.h's fileNameProblem, restated so that checkpoints need
/// no more than loom_support (a tensor named "../x" must not land outside
/// the checkpoint).
std::string tensorNameProblem(const std::string &name) {
  if (name.empty())
    return "it is empty";
  if (name == "." || name == "..")
    return "it is '" + name + "'";
  if (name.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
    return "it holds a path separator or NUL";
  return "";
}

/// The DType that dtypeName() calls `name`.
bool dtypeOfName(const std::string &name, DType &out) {
  for (DType t : {DType::F32, DType::BF16, DType::F16, DType::I32, DType::I64})
    if (name == dtypeName(t)) {
      out = t;
      return true;
    }
  return false;
}

[[noreturn]] void fail(const std::string &path, const std::string &why) {
  throw CheckpointError(path + ": " + why);
}

std::string errnoText() { return std::strerror(errno); }

/// Flushes a directory's entries (new names, renames) to disk.
void syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    fail(dir, "cannot open to flush: " + errnoText());
  if (::fsync(fd) != 0) {
    std::string why = errnoText();
    ::close(fd);
    fail(dir, "cannot flush: " + why);
  }
  ::close(fd);
}

std::string readText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    fail(path, "cannot open: " + errnoText());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    fail(path, "cannot read");
  return text.str();
}

/// "[2, 3]" in JSON, "[2,3]" as HostTensor::typeStr writes it.
std::string shapeText(const std::vector<int64_t> &shape,
                      const char *separator = ", ") {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? separator : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string metadataJson(const Checkpoint &c) {
  std::string j = "{\n";
  j += "  \"format\": " + jsonQuote(kFormat) + ",\n";
  j += "  \"version\": " + std::to_string(kVersion) + ",\n";
  j += "  \"step\": " + std::to_string(c.step) + ",\n";
  j += "  \"data_position\": " + std::to_string(c.dataPosition) + ",\n";
  j += "  \"seed\": " + std::to_string(c.seed) + ",\n";
  j += "  \"model\": " + jsonQuote(c.model) + ",\n";
  j += "  \"program\": " + jsonQuote(c.programId) + ",\n";
  j += "  \"tensors\": [";
  bool first = true;
  for (const auto &[name, t] : c.tensors) {
    j += first ? "\n" : ",\n";
    first = false;
    j += "    {\"name\": " + jsonQuote(name) +
         ", \"dtype\": " + jsonQuote(dtypeName(t.dtype)) +
         ", \"shape\": " + shapeText(t.shape) + "}";
  }
  j += first ? "]\n" : "\n  ]\n";
  return j + "}\n";
}

void probe(const char *point) {
  if (checkpointSaveProbe)
    checkpointSaveProbe(point);
}

/// Removes what crashed saves left: staging directories and temporary
/// latest files, which are never loaded.
void removeLeftovers(const std::string &dir) {
  std::string latestTemp =
      fs::path(latestCheckpointFile(dir)).filename().string() + ".tmp.";
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(kStagingPrefix, 0) == 0 || name.rfind(latestTemp, 0) == 0)
      fs::remove_all(entry.path(), ec);
  }
}

/// Moves `staging` to `target`, replacing an existing `target` without a
/// moment in which `target` is missing (the latest file may name it).
void moveIntoPlace(const std::string &staging, const std::string &target) {
  if (::rename(staging.c_str(), target.c_str()) == 0)
    return;
  if (errno != EEXIST && errno != ENOTEMPTY)
    fail(target, "cannot move " + staging + " into place: " + errnoText());
  if (::renameat2(AT_FDCWD, staging.c_str(), AT_FDCWD, target.c_str(),
                  RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS)
      fail(target, "cannot exchange it with " + staging + ": " + errnoText());
    // A filesystem without RENAME_EXCHANGE: the old copy goes aside first,
    // leaving a moment without `target`.
    std::string aside = staging + ".old";
    if (::rename(target.c_str(), aside.c_str()) != 0 ||
        ::rename(staging.c_str(), target.c_str()) != 0)
      fail(target, "cannot replace it with " + staging + ": " + errnoText());
    std::error_code ec;
    fs::remove_all(aside, ec);
    return;
  }
  // `staging` now holds the replaced iteration.
  probe("exchanged with the old iteration");
  std::error_code ec;
  fs::remove_all(staging, ec);
}

const JsonValue &field(const JsonValue &root, const std::string &key,
                       const std::string &path) {
  const JsonValue *v = root.find(key);
  if (!v)
    fail(path, "no \"" + key + "\" field");
  return *v;
}

/// Parses the latest file's text as Megatron writes it: a step number,
/// possibly surrounded by whitespace.
int64_t parseLatest(const std::string &text, const std::string &path) {
  size_t b = text.find_first_not_of(" \t\r\n");
  size_t e = text.find_last_not_of(" \t\r\n");
  if (b == std::string::npos)
    fail(path, "empty (it should hold the step number of the latest "
               "checkpoint)");
  std::string s = text.substr(b, e - b + 1);
  if (s == "release")
    fail(path, "names a Megatron release checkpoint, not a Loom checkpoint");
  int64_t step = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
  if (ec != std::errc() || end != s.data() + s.size() || step < 0 ||
      s.size() > 19)
    fail(path, "expected a step number, found \"" +
                   (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "\"");
  return step;
}

} // namespace

std::string loom::runtime::checkpointIterationDir(const std::string &dir,
                                                  int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "iter_%07lld",
                static_cast<long long>(step));
  return dir + "/" + name;
}

std::string loom::runtime::latestCheckpointFile(const std::string &dir) {
  return dir + "/latest_checkpointed_iteration.txt";
}

void loom::runtime::saveCheckpoint(const std::string &dir,
                                   const Checkpoint &c) {
  if (c.step < 0 || c.dataPosition < 0)
    fail(dir, "cannot save step " + std::to_string(c.step) +
                  " at data position " + std::to_string(c.dataPosition) +
                  " (both must be >= 0)");
  for (const auto &[name, t] : c.tensors) {
    if (std::string problem = tensorNameProblem(name); !problem.empty())
      fail(dir, "cannot save tensor \"" + name + "\": " + problem);
    if (t.bytes.size() != static_cast<size_t>(t.numel()) * dtypeSize(t.dtype))
      fail(dir, "cannot save tensor \"" + name +
                    "\": " + std::to_string(t.bytes.size()) + " bytes for " +
                    t.typeStr());
  }
  std::string metadata;
  try {
    metadata = metadataJson(c);
  } catch (const JsonError &e) {
    fail(dir, std::string("cannot save the metadata: ") + e.what());
  }

  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    fail(dir, "cannot create the directory: " + ec.message());
  removeLeftovers(dir);
  std::string target = checkpointIterationDir(dir, c.step);
  std::string pattern = dir + "/" + kStagingPrefix +
                        fs::path(target).filename().string() + ".XXXXXX";
  if (!::mkdtemp(pattern.data()))
    fail(dir, "cannot create a staging directory: " + errnoText());
  const std::string &staging = pattern;
  probe("staging created");
  try {
    for (const auto &[name, t] : c.tensors) {
      writeFileAtomically(staging + "/" + name + ".npy", serializeNpy(t));
      probe("tensor written");
    }
    writeFileAtomically(staging + "/metadata.json", metadata);
    probe("metadata written");
    syncDirectory(staging);
    probe("staging flushed");
    moveIntoPlace(staging, target);
    probe("moved into place");
    syncDirectory(dir);
    probe("iteration flushed");
  } catch (const std::runtime_error &e) {
    fs::remove_all(staging, ec);
    if (dynamic_cast<const CheckpointError *>(&e))
      throw;
    fail(dir, std::string("cannot save step ") + std::to_string(c.step) + ": " +
                  e.what());
  }
  // Only now may the latest file name the new iteration.
  try {
    writeFileAtomically(latestCheckpointFile(dir),
                        std::to_string(c.step) + "\n");
  } catch (const std::runtime_error &e) {
    throw CheckpointError(e.what());
  }
  probe("latest written");
  syncDirectory(dir);
}

std::optional<int64_t>
loom::runtime::latestCheckpointStep(const std::string &dir) {
  std::string path = latestCheckpointFile(dir);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR)
      return std::nullopt;
    fail(path, errnoText());
  }
  if (!S_ISREG(st.st_mode))
    fail(path, "not a regular file");
  if (st.st_size > 4096)
    fail(path, "too large (" + std::to_string(st.st_size) +
                   " bytes) to hold a step number");
  return parseLatest(readText(path), path);
}

Checkpoint loom::runtime::loadCheckpoint(const std::string &dir) {
  std::optional<int64_t> step = latestCheckpointStep(dir);
  if (!step)
    fail(dir,
         "no checkpoint (" + latestCheckpointFile(dir) + " does not exist)");
  return loadCheckpoint(dir, *step);
}

Checkpoint loom::runtime::loadCheckpoint(const std::string &dir, int64_t step) {
  std::string iter = checkpointIterationDir(dir, step);
  struct stat st;
  if (::stat(iter.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    fail(iter, "the checkpoint of step " + std::to_string(step) +
                   " is missing (or not a directory)");
  std::string metaPath = iter + "/metadata.json";
  Checkpoint c;
  try {
    JsonValue root = parseJson(readText(metaPath));
    if (root.kind != JsonValue::Kind::Object)
      fail(metaPath, "not a JSON object");
    if (field(root, "format", metaPath).asString("format") != kFormat)
      fail(metaPath, std::string("not a Loom checkpoint (format is not \"") +
                         kFormat + "\")");
    int64_t version = field(root, "version", metaPath).asInt64("version");
    if (version != kVersion)
      fail(metaPath, "checkpoint version " + std::to_string(version) +
                         " is not supported (this reader knows 1)");
    c.step = field(root, "step", metaPath).asInt64("step");
    if (c.step != step)
      fail(metaPath, "holds step " + std::to_string(c.step) +
                         ", but its "
                         "directory is that of step " +
                         std::to_string(step));
    c.dataPosition =
        field(root, "data_position", metaPath).asInt64("data_position");
    if (c.dataPosition < 0)
      fail(metaPath,
           "data_position " + std::to_string(c.dataPosition) + " is negative");
    c.seed = field(root, "seed", metaPath).asUInt64("seed");
    c.model = field(root, "model", metaPath).asString("model");
    c.programId = field(root, "program", metaPath).asString("program");
    const auto &list = field(root, "tensors", metaPath).asArray("tensors");
    for (size_t i = 0; i < list.size(); ++i) {
      std::string what = "tensors[" + std::to_string(i) + "]";
      const JsonValue &entry = list[i];
      if (entry.kind != JsonValue::Kind::Object)
        fail(metaPath, what + ": expected an object");
      std::string name =
          field(entry, "name", metaPath).asString(what + ".name");
      if (std::string problem = tensorNameProblem(name); !problem.empty())
        fail(metaPath, what + ": tensor name \"" + name + "\": " + problem);
      if (c.tensors.count(name))
        fail(metaPath, "tensor \"" + name + "\" is listed twice");
      const std::string &dtypeText =
          field(entry, "dtype", metaPath).asString(what + ".dtype");
      DType dtype;
      if (!dtypeOfName(dtypeText, dtype))
        fail(metaPath, what + ": unknown dtype \"" + dtypeText + "\"");
      std::vector<int64_t> shape;
      for (const JsonValue &d :
           field(entry, "shape", metaPath).asArray(what + ".shape"))
        shape.push_back(d.asInt64(what + ".shape"));
      std::string file = iter + "/" + name + ".npy";
      if (::stat(file.c_str(), &st) != 0)
        fail(file, "missing (metadata.json lists tensor \"" + name + "\")");
      HostTensor t = readNpy(file);
      if (t.dtype != dtype || t.shape != shape)
        fail(file, "holds " + t.typeStr() + ", but metadata.json says " +
                       dtypeName(dtype) + shapeText(shape, ","));
      c.tensors.emplace(std::move(name), std::move(t));
    }
  } catch (const JsonError &e) {
    fail(metaPath, e.what());
  } catch (const NpyError &e) {
    throw CheckpointError(e.what());
  }
  return c;
}

std::string loom::runtime::checkpointMismatch(const std::string &dir,
                                              const Checkpoint &c,
                                              const std::string &model,
                                              const std::string &programId) {
  std::string where = checkpointIterationDir(dir, c.step);
  if (c.model != model)
    return where + ": a checkpoint of model \"" + c.model + "\", not of \"" +
           model + "\"";
  if (c.programId != programId)
    return where + ": saved by another training program (" + c.programId +
           ", this run's is " + programId +
           "): the model's sizes, precision or optimizer differ";
  return "";
}
