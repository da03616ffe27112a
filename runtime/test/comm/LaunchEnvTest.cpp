//===- LaunchEnvTest.cpp - Rank detection from launcher variables ---------===//

#include "loom/runtime/comm/LaunchEnv.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <stdexcept>

using namespace loom::runtime;

namespace {

std::function<const char *(const char *)>
lookupIn(const std::map<std::string, std::string> &env) {
  return [&env](const char *name) -> const char * {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
}

LaunchInfo detectFrom(const std::map<std::string, std::string> &env) {
  return detectLaunch(lookupIn(env));
}

} // namespace

TEST(LaunchEnv, Torchrun) {
  LaunchInfo l = detectFrom({{"RANK", "3"},
                             {"WORLD_SIZE", "8"},
                             {"LOCAL_RANK", "1"},
                             {"LOCAL_WORLD_SIZE", "2"},
                             {"MASTER_ADDR", "node0"},
                             {"MASTER_PORT", "29500"},
                             // Lower-priority launchers are ignored.
                             {"OMPI_COMM_WORLD_RANK", "0"},
                             {"OMPI_COMM_WORLD_SIZE", "1"},
                             {"SLURM_PROCID", "5"},
                             {"SLURM_NTASKS", "6"}});
  EXPECT_EQ(l.launcher, "torchrun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.worldSize, 8);
  EXPECT_EQ(l.localRank, 1);
  EXPECT_EQ(l.localWorldSize, 2);
  EXPECT_EQ(l.masterAddr, "node0");
  EXPECT_EQ(l.masterPort, 29500);
}

TEST(LaunchEnv, Priority) {
  LaunchInfo ompi = detectFrom({{"OMPI_COMM_WORLD_RANK", "1"},
                                {"OMPI_COMM_WORLD_SIZE", "4"},
                                {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                {"PMI_RANK", "2"},
                                {"PMI_SIZE", "4"},
                                {"SLURM_PROCID", "3"},
                                {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(ompi.launcher, "Open MPI");
  EXPECT_EQ(ompi.rank, 1);
  EXPECT_EQ(ompi.localRank, 1);
  EXPECT_EQ(ompi.masterPort, -1);

  LaunchInfo pmi = detectFrom({{"PMI_RANK", "2"},
                               {"PMI_SIZE", "4"},
                               {"SLURM_PROCID", "3"},
                               {"SLURM_NTASKS", "4"}});
  EXPECT_EQ(pmi.launcher, "PMI");
  EXPECT_EQ(pmi.rank, 2);

  LaunchInfo slurm = detectFrom({{"SLURM_PROCID", "3"},
                                 {"SLURM_NTASKS", "4"},
                                 {"SLURM_LOCALID", "0"},
                                 {"SLURM_NTASKS_PER_NODE", "2(x2)"}});
  EXPECT_EQ(slurm.launcher, "Slurm");
  EXPECT_EQ(slurm.rank, 3);
  EXPECT_EQ(slurm.worldSize, 4);
  EXPECT_EQ(slurm.localRank, 0);
  EXPECT_EQ(slurm.localWorldSize, -1); // not a single number
}

TEST(LaunchEnv, Errors) {
  auto expectError = [](const std::map<std::string, std::string> &env,
                        const std::string &needle) {
    try {
      detectFrom(env);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::runtime_error &e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << e.what();
    }
  };
  expectError({}, "RANK and WORLD_SIZE");
  expectError({{"RANK", "1"}}, "RANK is set but WORLD_SIZE is not");
  expectError({{"RANK", "x"}, {"WORLD_SIZE", "2"}}, "RANK='x'");
  expectError({{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "outside a world");
  expectError({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "99999"}},
              "MASTER_PORT=99999");
  expectError({{"SLURM_NTASKS", "2"}}, "SLURM_NTASKS is set but SLURM_PROCID");
}

TEST(LaunchEnv, PresentWhenAnyRankOrSizeIsSet) {
  EXPECT_FALSE(launchEnvironmentPresent(lookupIn({})));
  EXPECT_FALSE(launchEnvironmentPresent(lookupIn({{"MASTER_ADDR", "h"}})));
  EXPECT_FALSE(launchEnvironmentPresent(lookupIn({{"RANK", ""}})));
  EXPECT_TRUE(launchEnvironmentPresent(lookupIn({{"SLURM_PROCID", "0"}})));
  // A half-set launch is present, so that detectLaunch can report it.
  EXPECT_TRUE(launchEnvironmentPresent(lookupIn({{"WORLD_SIZE", "2"}})));
}

TEST(LaunchEnv, TheJobIdComesFromTheFirstSourceSet) {
  std::map<std::string, std::string> env = {{"RANK", "0"},
                                            {"WORLD_SIZE", "2"},
                                            {"PMIX_NAMESPACE", "prte-vm-1@1"},
                                            {"SLURM_JOB_ID", "77"},
                                            {"SLURM_STEP_ID", "3"},
                                            {"TORCHELASTIC_RUN_ID", "rdzv"},
                                            {"LOOM_JOB_ID", "mine"},
                                            {"LOOM_JOB_TOKEN", "s3cret"},
                                            {"LOOM_LAUNCHER_STORE", "1"}};
  LaunchInfo l = detectFrom(env);
  EXPECT_EQ(l.jobId, "mine");
  EXPECT_EQ(l.jobIdSource, "LOOM_JOB_ID");
  EXPECT_EQ(l.jobToken, "s3cret");
  EXPECT_TRUE(l.launcherServesStore);
  for (auto [var, id] :
       {std::pair<const char *, const char *>{"LOOM_JOB_ID", "rdzv"},
        {"TORCHELASTIC_RUN_ID", "77.3"},
        {"SLURM_JOB_ID", "prte-vm-1@1"},
        {"PMIX_NAMESPACE", ""}}) {
    env.erase(var);
    EXPECT_EQ(detectFrom(env).jobId, id) << "without " << var;
  }
  EXPECT_FALSE(
      detectFrom({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).launcherServesStore);
}

TEST(LaunchEnv, AJobIdIsPlainText) {
  for (const char *id : {"a b", "../x", "job\n"}) {
    try {
      detectFrom({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"LOOM_JOB_ID", id}});
      ADD_FAILURE() << "accepted job id '" << id << "'";
    } catch (const std::runtime_error &e) {
      EXPECT_EQ(std::string(e.what()),
                "launch environment: LOOM_JOB_ID='" + std::string(id) +
                    "' is not a job id (letters, digits and ._@:+- only, at "
                    "most 128)");
    }
  }
  EXPECT_EQ(newJobId().size(), 16u);
  EXPECT_EQ(newJobToken().size(), 32u);
  EXPECT_NE(newJobToken(), newJobToken());
}
