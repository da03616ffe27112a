//===- JobFiles.cpp - What a job reads and writes -------------------------===//

#include "loom/runtime/launch/JobFiles.h"

#include "loom/runtime/AtomicFile.h"
#include "loom/runtime/ParseNumber.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>

using namespace loom::runtime;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string &message) {
  throw std::runtime_error(message);
}

/// The staging directories of this process not yet committed or removed,
/// for a watchdog that ends the process without running destructors.
std::mutex liveStagingMutex;
std::vector<std::string> liveStaging;

void forgetStaging(const std::string &dir) {
  std::lock_guard<std::mutex> lock(liveStagingMutex);
  liveStaging.erase(std::remove(liveStaging.begin(), liveStaging.end(), dir),
                    liveStaging.end());
}

/// `path` without trailing slashes ("out/" is "out"; "/" stays).
std::string trimmed(std::string path) {
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  return path;
}

std::string parentOf(const std::string &path) {
  std::string parent = fs::path(trimmed(path)).parent_path().string();
  return parent.empty() ? "." : parent;
}

/// The rank a directory entry "rank<R>" is for, or -1 for other names.
int64_t rankOfEntry(const std::string &name) {
  int64_t rank = -1;
  // Only the spelling the runner reads: "rank01" would never be read.
  if (name.rfind("rank", 0) != 0 ||
      parseInteger(name.substr(4), 0, INT32_MAX, rank) ||
      name.substr(4) != std::to_string(rank))
    return -1;
  return rank;
}

/// The inputs of the program, or of any stage of a pipeline program.
std::vector<std::string> allInputNames(const Program &program) {
  std::vector<std::string> names;
  for (const Binding &b : program.inputs())
    names.push_back(b.name);
  for (const auto &stage : program.stages())
    for (const Binding &b : stage->inputs())
      if (std::find(names.begin(), names.end(), b.name) == names.end())
        names.push_back(b.name);
  return names;
}

std::string inputNames(const Program &program) {
  std::vector<std::string> all = allInputNames(program);
  std::string names;
  for (size_t i = 0; i < all.size() && i < 8; ++i)
    names += (names.empty() ? "" : ", ") + all[i];
  if (all.size() > 8)
    names += ", ...";
  return names;
}

/// Checks the .npy files directly in `dir`; returns its rank<R> entries.
std::vector<std::string> checkNpyFiles(const Program &program,
                                       const std::string &dir) {
  std::vector<std::string> entries, rankDirs;
  for (const fs::directory_entry &e : fs::directory_iterator(dir))
    entries.push_back(e.path().filename().string());
  std::sort(entries.begin(), entries.end());
  for (const std::string &name : entries) {
    std::string path = dir + "/" + name;
    if (rankOfEntry(name) >= 0)
      rankDirs.push_back(name);
    if (name.size() < 4 || name.compare(name.size() - 4, 4, ".npy") != 0)
      continue;
    std::vector<std::string> inputs = allInputNames(program);
    if (std::find(inputs.begin(), inputs.end(),
                  name.substr(0, name.size() - 4)) == inputs.end())
      fail("--inputs " + path +
           " is named after no input or parameter of the program (they are " +
           inputNames(program) + ")");
    if (!fs::is_regular_file(path))
      fail("--inputs " + path + " is not a regular file");
  }
  return rankDirs;
}

/// Where the staging directories for the outputs directory `target` go,
/// and how their names begin: beside the target, so that moving a file into
/// it is a rename; inside it when it is a mount point (another file system
/// than its parent's). The job id in the name lets a launcher remove what
/// the ranks it ended had staged.
struct StagingPlace {
  std::string dir, prefix;
};
StagingPlace stagingPlace(const std::string &target, const std::string &jobId) {
  std::string parent = parentOf(target);
  std::string base = fs::path(target).filename().string();
  struct stat inTarget, inParent;
  bool mounted = ::stat(target.c_str(), &inTarget) == 0 &&
                 ::stat(parent.c_str(), &inParent) == 0 &&
                 inTarget.st_dev != inParent.st_dev;
  std::string job = jobId.empty() ? "" : jobId + ".";
  if (mounted || base == "." || base == "..")
    return {target, ".loom-outputs." + job};
  return {parent, "." + base + ".loom-outputs." + job};
}

} // namespace

std::string loom::runtime::fileNameProblem(const std::string &name) {
  if (name.empty())
    return "it is empty";
  if (name == "." || name == "..")
    return "it is '" + name + "'";
  if (name.find_first_of(std::string("/\\\0", 3)) != std::string::npos)
    return "it holds a path separator or NUL";
  return "";
}

std::string loom::runtime::rankFile(const std::string &dir, int rank,
                                    const std::string &name) {
  std::string base = trimmed(dir);
  if (rank != 0)
    base += "/rank" + std::to_string(rank);
  return base + "/" + name + ".npy";
}

void loom::runtime::checkInputs(const Program &program, const std::string &dir,
                                int worldSize) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    fail("--inputs " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    fail("--inputs " + dir + " is not a directory");
  try {
    for (const std::string &name : checkNpyFiles(program, trimmed(dir))) {
      std::string path = trimmed(dir) + "/" + name;
      if (rankOfEntry(name) >= worldSize)
        fail("--inputs " + path + " is for rank " + name.substr(4) +
             ", but the job has " + std::to_string(worldSize) + " rank(s)");
      if (!fs::is_directory(path))
        fail("--inputs " + path + " is not a directory");
      checkNpyFiles(program, path);
    }
  } catch (const fs::filesystem_error &e) {
    fail("--inputs " + dir + ": " + e.what());
  }
}

void loom::runtime::checkOutputs(const LaunchOptions &options,
                                 const Program &program,
                                 const std::vector<int> &ranks) {
  if (!options.outputsDir.empty())
    for (const Binding &b : program.outputs())
      if (std::string problem = fileNameProblem(b.name); !problem.empty())
        fail("the program's output '" + b.name +
             "' cannot name a file in --outputs: " + problem);
  auto isDir = [](const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  auto exists = [](const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0;
  };
  if (!options.outputsDir.empty()) {
    const std::string &dir = options.outputsDir;
    std::string writable = exists(dir) ? dir : parentOf(dir);
    if (exists(dir) && !isDir(dir))
      fail("--outputs " + dir + " is not a directory");
    if (!isDir(writable))
      fail("--outputs " + dir + " cannot be created: " + writable +
           " is not a directory");
    if (::access(writable.c_str(), W_OK | X_OK) != 0)
      fail("--outputs " + dir + ": " + writable + " is not writable");
    for (int rank : ranks) {
      std::string rankDir = trimmed(dir) + "/rank" + std::to_string(rank);
      if (rank != 0 && exists(rankDir) && !isDir(rankDir))
        fail("--outputs: " + rankDir + " is not a directory");
      for (const Binding &b : program.outputs())
        if (isDir(rankFile(dir, rank, b.name)))
          fail("--outputs: cannot write " + rankFile(dir, rank, b.name) +
               ": a directory is in its place");
    }
  }
  if (!options.tracePath.empty()) {
    if (isDir(options.tracePath))
      fail("--trace " + options.tracePath + " is a directory");
    if (!isDir(parentOf(options.tracePath)))
      fail("--trace " + options.tracePath + ": " + parentOf(options.tracePath) +
           " is not a directory");
  }
}

JobFiles::JobFiles(const LaunchOptions &options, const Program &program,
                   std::vector<int> ranks, const std::string &jobId)
    : rankOptions_(options), ranks_(std::move(ranks)),
      tracePath_(options.tracePath) {
  checkOutputs(options, program, ranks_);
  if (options.outputsDir.empty())
    return;
  for (int rank : ranks_) {
    for (const Binding &b : program.forRank(rank).outputs())
      outputs_[rank].push_back(b.name);
  }
  target_ = trimmed(options.outputsDir);
  StagingPlace place = stagingPlace(target_, jobId);
  std::string pattern = place.dir + "/" + place.prefix + "XXXXXX";
  if (!::mkdtemp(pattern.data()))
    fail("--outputs " + options.outputsDir +
         ": cannot create a staging directory " + pattern + ": " +
         std::strerror(errno));
  staging_ = pattern;
  rankOptions_.outputsDir = staging_;
  std::lock_guard<std::mutex> lock(liveStagingMutex);
  liveStaging.push_back(staging_);
}

JobFiles::~JobFiles() {
  std::error_code ignored;
  if (!staging_.empty())
    fs::remove_all(staging_, ignored);
  forgetStaging(staging_);
  if (!stagedTrace_.empty())
    fs::remove(stagedTrace_, ignored);
}

void JobFiles::stageTrace(const std::string &text) {
  if (!tracePath_.empty())
    stagedTrace_ = writeTemporaryBeside(tracePath_, text);
}

void JobFiles::commit() {
  auto move = [](const std::string &from, const std::string &to) {
    if (std::rename(from.c_str(), to.c_str()) != 0)
      fail("cannot move " + from + " to " + to + ": " + std::strerror(errno));
  };
  if (!staging_.empty()) {
    // Everything that can fail is checked before the first file moves.
    std::error_code error;
    for (int rank : ranks_) {
      fs::path dir = fs::path(rankFile(target_, rank, "x")).parent_path();
      fs::create_directories(dir, error);
      if (!fs::is_directory(dir))
        fail("cannot create the output directory " + dir.string());
      for (const std::string &name : outputs_[rank]) {
        std::string to = rankFile(target_, rank, name);
        if (!fs::is_regular_file(rankFile(staging_, rank, name)))
          fail("rank " + std::to_string(rank) + " wrote no output '" + name +
               "'");
        if (fs::is_directory(to))
          fail("cannot write " + to + ": a directory is in its place");
      }
    }
    for (int rank : ranks_)
      for (const std::string &name : outputs_[rank])
        move(rankFile(staging_, rank, name), rankFile(target_, rank, name));
    fs::remove_all(staging_, error);
    forgetStaging(staging_);
    staging_.clear();
  }
  if (!stagedTrace_.empty()) {
    move(stagedTrace_, tracePath_);
    stagedTrace_.clear();
  }
}

void loom::runtime::removeStagedOutputs(const std::string &outputsDir,
                                        const std::string &jobId) {
  if (outputsDir.empty() || jobId.empty())
    return;
  StagingPlace place = stagingPlace(trimmed(outputsDir), jobId);
  std::error_code error;
  std::vector<fs::path> staged;
  for (const fs::directory_entry &entry :
       fs::directory_iterator(place.dir, error))
    if (entry.path().filename().string().rfind(place.prefix, 0) == 0)
      staged.push_back(entry.path());
  for (const fs::path &dir : staged)
    fs::remove_all(dir, error);
}

void loom::runtime::removeLiveStagedOutputs() {
  std::lock_guard<std::mutex> lock(liveStagingMutex);
  std::error_code ignored;
  for (const std::string &dir : liveStaging)
    fs::remove_all(dir, ignored);
}
