//===- Launcher.cpp - Ranks as threads, or this process's rank ------------===//

#include "loom/runtime/launch/Launcher.h"

#include "loom/runtime/comm/ExecutorComms.h"
#include "loom/runtime/comm/LocalCommunicator.h"
#include "loom/runtime/launch/Trace.h"
#ifdef LOOM_HAVE_GLOO
#include "loom/runtime/comm/GlooCommunicator.h"
#endif

#include <thread>

using namespace loom::runtime;

static std::string joinFailures(const std::vector<std::string> &failures,
                                bool timedOut) {
  std::string text = timedOut ? "the job exceeded its timeout" : "";
  for (const std::string &failure : failures)
    text += (text.empty() ? "" : "\n") + failure;
  return text;
}

LaunchError::LaunchError(std::vector<std::string> failures, bool timedOut)
    : std::runtime_error(joinFailures(failures, timedOut)),
      failures_(std::move(failures)), timedOut_(timedOut) {}

std::vector<RankResult>
loom::runtime::runLocalThreads(const LaunchOptions &options,
                               std::shared_ptr<const Program> program) {
  LocalWorldOptions worldOptions;
  worldOptions.deadline = options.deadline;
  auto world = LocalWorld::create(options.nproc, worldOptions);
  std::vector<std::string> errors(options.nproc);
  std::vector<RankResult> results(options.nproc);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < options.nproc; ++rank) {
    threads.emplace_back([&, rank] {
      try {
        std::shared_ptr<CommunicatorProvider> provider = world->provider(rank);
        results[rank] = runRank(options, program, rank, options.nproc,
                                executorCommunicators(provider));
      } catch (const std::exception &e) {
        errors[rank] = "rank " + std::to_string(rank) + ": " + e.what();
        // The others' collectives fail now instead of at their deadline.
        world->abort(rank,
                     "rank " + std::to_string(rank) + " failed: " + e.what());
      }
    });
  }
  for (std::thread &t : threads)
    t.join();
  std::vector<std::string> failures;
  for (std::string &error : errors)
    if (!error.empty())
      failures.push_back(std::move(error));
  if (!failures.empty())
    throw LaunchError(std::move(failures));
  if (!options.tracePath.empty())
    writeTrace(options.tracePath, results, /*complete=*/true);
  return results;
}

RankResult loom::runtime::runGlooRank(const LaunchOptions &options,
                                      std::shared_ptr<const Program> program,
                                      const LaunchInfo &launch) {
  try {
#ifdef LOOM_HAVE_GLOO
    // A job of the wrong size fails on every rank at once, not at the
    // rendezvous with ranks that have already given up.
    meshRankFor(*program, launch.rank, launch.worldSize);
    GlooOptions gloo = glooOptionsFromLaunch(launch, options.deadline);
    std::shared_ptr<CommunicatorProvider> provider =
        createGlooCommunicators(gloo);
    RankResult result =
        runRank(options, std::move(program), launch.rank, launch.worldSize,
                executorCommunicators(provider));
    // Rank 0 serves the rendezvous store: nobody leaves before all are done.
    provider->world()->barrier();
    if (!options.tracePath.empty())
      writeTrace(rankTracePartPath(options.tracePath, launch.rank), {result},
                 /*complete=*/false);
    return result;
#else
    (void)options;
    (void)program;
    throw std::runtime_error(
        "this runtime was built without Gloo, which ranks in separate "
        "processes need");
#endif
  } catch (const std::exception &e) {
    throw LaunchError(
        {"rank " + std::to_string(launch.rank) + ": " + e.what()});
  }
}

std::vector<RankResult>
loom::runtime::runHere(const LaunchOptions &options,
                       std::shared_ptr<const Program> program) {
  if (needsSpawn(options))
    throw std::invalid_argument(
        "a job of processes is started with spawnProcesses(), not run here");
  if (options.nproc > 0 && options.comm == LaunchComm::Local)
    return runLocalThreads(options, std::move(program));
  if (isSpawnedRank() || launchEnvironmentPresent())
    return {runGlooRank(options, std::move(program), detectLaunch())};
  RankResult result = runRank(options, std::move(program), 0, 1, nullptr);
  if (!options.tracePath.empty())
    writeTrace(options.tracePath, {result}, /*complete=*/true);
  return {result};
}

bool loom::runtime::needsSpawn(const LaunchOptions &options) {
  return options.nproc > 0 && options.comm == LaunchComm::Gloo &&
         !isSpawnedRank();
}
