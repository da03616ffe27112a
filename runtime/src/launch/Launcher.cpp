//===- Launcher.cpp - Ranks as threads, or this process's rank ------------===//

#include "loom/runtime/launch/Launcher.h"

#include "loom/runtime/comm/ExecutorComms.h"
#include "loom/runtime/comm/LocalCommunicator.h"
#include "loom/runtime/launch/JobFiles.h"
#include "loom/runtime/launch/Trace.h"
#ifdef LOOM_HAVE_GLOO
#include "loom/runtime/comm/GlooCommunicator.h"
#include "loom/runtime/comm/JoinJob.h"
#endif

#include <filesystem>
#include <thread>

using namespace loom::runtime;

static std::string joinFailures(const std::vector<std::string> &failures,
                                bool timedOut) {
  std::string text = timedOut ? "the job exceeded its timeout" : "";
  for (const std::string &failure : failures)
    text += (text.empty() ? "" : "\n") + failure;
  return text;
}

LaunchError::LaunchError(std::vector<std::string> failures, bool timedOut,
                         int signal)
    : std::runtime_error(joinFailures(failures, timedOut)),
      failures_(std::move(failures)), timedOut_(timedOut), signal_(signal) {}

static std::vector<int> ranksBelow(int n) {
  std::vector<int> ranks(n);
  for (int rank = 0; rank < n; ++rank)
    ranks[rank] = rank;
  return ranks;
}

void loom::runtime::checkLaunch(const LaunchOptions &options,
                                const Program &program) {
  if (options.nproc < 1 || options.nproc > kMaxLocalRanks)
    throw std::invalid_argument(
        "a launch starts 1 to " + std::to_string(kMaxLocalRanks) +
        " ranks on one machine, not " + std::to_string(options.nproc));
  meshRankFor(program, 0, options.nproc);
  if (!options.inputsDir.empty())
    checkInputs(program, options.inputsDir, options.nproc);
  checkOutputs(options, program, ranksBelow(options.nproc));
}

std::vector<RankResult>
loom::runtime::runLocalThreads(const LaunchOptions &options,
                               std::shared_ptr<const Program> program) {
  checkLaunch(options, *program);
  JobFiles files(options, *program, ranksBelow(options.nproc));
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
        results[rank] = runRank(files.rankOptions(), program, rank,
                                options.nproc, executorCommunicators(provider));
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
    files.stageTrace(renderTrace(results, /*complete=*/true));
  files.commit();
  return results;
}

RankResult loom::runtime::runGlooRank(const LaunchOptions &options,
                                      std::shared_ptr<const Program> program,
                                      const LaunchInfo &launch) {
#ifdef LOOM_HAVE_GLOO
  std::shared_ptr<RendezvousStore> store;
#endif
  try {
#ifdef LOOM_HAVE_GLOO
    // A job of the wrong size, or files that cannot be read or written, fail
    // on every rank at once, not at the rendezvous with ranks that have
    // already given up or after the steps.
    meshRankFor(*program, launch.rank, launch.worldSize);
    if (!options.inputsDir.empty())
      checkInputs(*program, options.inputsDir, launch.worldSize);
    JobFiles files(options, *program, {launch.rank}, launch.jobId);
    GlooOptions gloo = glooOptionsFromLaunch(launch, options.deadline);
    store = gloo.store;
    JobMember me{launch.rank, launch.worldSize, program->contentHash(),
                 launch.jobId.empty() ? "this job (no job id)"
                                      : "job '" + launch.jobId + "'"};
    if (launch.worldSize > 1)
      joinJob(*gloo.store, gloo.prefix, me, options.deadline);
    std::shared_ptr<CommunicatorProvider> provider =
        createGlooCommunicators(gloo);
    RankResult result =
        runRank(files.rankOptions(), std::move(program), launch.rank,
                launch.worldSize, executorCommunicators(provider));
    if (!options.tracePath.empty()) {
      std::string part =
          rankTracePartPath(options.tracePath, launch.jobId, launch.rank);
      // Every rank makes the parts' directory; the first one wins.
      std::filesystem::create_directories(
          std::filesystem::path(part).parent_path());
      writeTrace(part, {result}, /*complete=*/false);
    }
    // Every rank has staged its outputs (a rank that failed fails this
    // barrier for all): only now do they replace the last run's. Rank 0
    // also serves the rendezvous store: nobody leaves before all are done.
    if (launch.worldSize > 1)
      checkJobAlone(*gloo.store, gloo.prefix, me, options.deadline);
    provider->world()->barrier();
    files.commit();
    return result;
#else
    (void)options;
    (void)program;
    throw std::runtime_error(
        "this runtime was built without Gloo, which ranks in separate "
        "processes need");
#endif
  } catch (const std::exception &e) {
#ifdef LOOM_HAVE_GLOO
    // A rank 0 that serves the store keeps it up a moment after it failed,
    // so that the others can still read its claim and failure report.
    if (store && launch.rank == 0 && !launch.launcherServesStore)
      std::this_thread::sleep_for(GlooOptions().reportGrace);
#endif
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
  meshRankFor(*program, 0, 1);
  JobFiles files(options, *program, {0});
  RankResult result =
      runRank(files.rankOptions(), std::move(program), 0, 1, nullptr);
  if (!options.tracePath.empty())
    files.stageTrace(renderTrace({result}, /*complete=*/true));
  files.commit();
  return {result};
}

bool loom::runtime::needsSpawn(const LaunchOptions &options) {
  return options.nproc > 0 && options.comm == LaunchComm::Gloo &&
         !isSpawnedRank();
}
