//===- WorldTest.cpp - torchrun's and Slurm's environment -----------------===//
#include "mixtape/dist/World.h"

#include <gtest/gtest.h>

#include <map>

using namespace mixtape::dist;

namespace {

llvm::Expected<World> worldOf(const std::map<std::string, std::string> &env) {
  return worldFromEnvironment([&](llvm::StringRef name) -> std::optional<std::string> {
    auto it = env.find(name.str());
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

std::string errorOf(const std::map<std::string, std::string> &env) {
  llvm::Expected<World> w = worldOf(env);
  return w ? "no error" : llvm::toString(w.takeError());
}

std::vector<std::string> hosts(llvm::StringRef list) {
  llvm::Expected<std::vector<std::string>> h = expandNodeList(list);
  if (!h)
    return {"error: " + llvm::toString(h.takeError())};
  return *h;
}

} // namespace

TEST(World, NothingSetIsAWorldOfOne) {
  llvm::Expected<World> w = worldOf({});
  ASSERT_TRUE(bool(w));
  EXPECT_EQ(w->Size, 1);
  EXPECT_EQ(w->Rank, 0);
  EXPECT_EQ(w->Source, "single");
}

TEST(World, Torchrun) {
  llvm::Expected<World> w = worldOf({{"RANK", "3"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                     {"MASTER_ADDR", "node07"}, {"MASTER_PORT", "29400"}});
  ASSERT_TRUE(bool(w)) << llvm::toString(w.takeError());
  EXPECT_EQ(w->Rank, 3);
  EXPECT_EQ(w->Size, 8);
  EXPECT_EQ(w->LocalRank, 1);
  EXPECT_EQ(w->MasterAddr, "node07");
  EXPECT_EQ(w->MasterPort, 29400);
  EXPECT_FALSE(w->StoreServedByAgent);
  EXPECT_EQ(w->Source, "torchrun");
}

TEST(World, TorchrunsAgentStore) {
  llvm::Expected<World> w = worldOf({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"},
                                     {"TORCHELASTIC_USE_AGENT_STORE", "True"}});
  ASSERT_TRUE(bool(w));
  EXPECT_TRUE(w->StoreServedByAgent);
}

TEST(World, TorchrunsRestartsAndRunsHaveKeysOfTheirOwn) {
  std::map<std::string, std::string> env{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}};
  llvm::Expected<World> first = worldOf(env);
  ASSERT_TRUE(bool(first)) << llvm::toString(first.takeError());
  EXPECT_EQ(first->StorePrefix, "mixtape/restart-0");
  env["TORCHELASTIC_RESTART_COUNT"] = "2";
  llvm::Expected<World> restarted = worldOf(env);
  ASSERT_TRUE(bool(restarted));
  EXPECT_EQ(restarted->StorePrefix, "mixtape/restart-2");
  env["MIXTAPE_RUN_ID"] = "5f3a"; // --nproc's launcher
  llvm::Expected<World> launched = worldOf(env);
  ASSERT_TRUE(bool(launched));
  EXPECT_EQ(launched->StorePrefix, "mixtape/restart-2/run-5f3a");
}

TEST(World, TorchrunWinsOverSlurm) {
  llvm::Expected<World> w = worldOf({{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "5"},
                                     {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}});
  ASSERT_TRUE(bool(w));
  EXPECT_EQ(w->Rank, 1);
  EXPECT_EQ(w->Size, 2);
}

TEST(World, Slurm) {
  llvm::Expected<World> w = worldOf({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                                     {"SLURM_STEP_ID", "0"}, {"SLURM_JOB_NODELIST", "gpu[07-08,11],cpu1"},
                                     {"SLURM_JOB_ID", "123456"}});
  ASSERT_TRUE(bool(w)) << llvm::toString(w.takeError());
  EXPECT_EQ(w->Rank, 5);
  EXPECT_EQ(w->Size, 8);
  EXPECT_EQ(w->LocalRank, 1);
  EXPECT_EQ(w->MasterAddr, "gpu07");
  EXPECT_EQ(w->MasterPort, 20000 + 123456 * 31 % 20000); // the same on every task of the step
  EXPECT_EQ(w->StorePrefix, "mixtape/step-0");
  EXPECT_EQ(w->Source, "slurm");
}

TEST(World, SlurmTakesTheStepsTasksAndHosts) {
  // srun --ntasks 2 inside a job of 8 tasks on four nodes, its second step.
  llvm::Expected<World> w = worldOf({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "2"},
                                     {"SLURM_STEP_ID", "1"}, {"SLURM_JOB_NODELIST", "n[1-4]"},
                                     {"SLURM_STEP_NODELIST", "n[3-4]"}, {"SLURM_JOB_ID", "123456"}});
  ASSERT_TRUE(bool(w)) << llvm::toString(w.takeError());
  EXPECT_EQ(w->Rank, 1);
  EXPECT_EQ(w->Size, 2);
  EXPECT_EQ(w->MasterAddr, "n3");
  EXPECT_EQ(w->MasterPort, 20000 + (123456 * 31 + 1) % 20000); // not step 0's
  EXPECT_EQ(w->StorePrefix, "mixtape/step-1");
}

TEST(World, SbatchsBatchScriptIsAWorldOfOne) {
  // What `sbatch --ntasks=4` exports to the batch script, where no srun runs.
  llvm::Expected<World> w = worldOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "4"}, {"SLURM_LOCALID", "0"},
                                     {"SLURM_JOB_NODELIST", "n[1-4]"}, {"SLURM_JOB_ID", "7"}});
  ASSERT_TRUE(bool(w)) << llvm::toString(w.takeError());
  EXPECT_EQ(w->Size, 1);
  EXPECT_EQ(w->Source, "single");
}

TEST(World, SlurmWithMasterSet) {
  llvm::Expected<World> w = worldOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                                     {"MASTER_ADDR", "head"}, {"MASTER_PORT", "29500"}, {"SLURM_JOB_NODELIST", "n1"}});
  ASSERT_TRUE(bool(w));
  EXPECT_EQ(w->MasterAddr, "head");
  EXPECT_EQ(w->MasterPort, 29500);
}

TEST(World, SlurmSingleTaskNeedsNoMaster) {
  llvm::Expected<World> w = worldOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}, {"SLURM_STEP_ID", "0"}});
  ASSERT_TRUE(bool(w));
  EXPECT_EQ(w->Size, 1);
}

TEST(World, Errors) {
  EXPECT_EQ(errorOf({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}),
            "RANK='2' is not an integer in [0, 1]");
  EXPECT_EQ(errorOf({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), "RANK='x' is not an integer in [0, 1]");
  EXPECT_EQ(errorOf({{"RANK", "0"}}), "WORLD_SIZE is not set");
  EXPECT_EQ(errorOf({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}),
            "MASTER_ADDR is not set (torchrun sets it with RANK and WORLD_SIZE)");
  EXPECT_EQ(errorOf({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "70000"}}),
            "MASTER_PORT='70000' is not an integer in [1, 65535]");
  EXPECT_EQ(errorOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}, {"SLURM_JOB_ID", "1"}}),
            "neither MASTER_ADDR nor SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST is set: no host for rank 0's store");
  EXPECT_EQ(errorOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                     {"SLURM_JOB_NODELIST", "n[1-2]"}}),
            "MASTER_PORT is not set and neither is SLURM_JOB_ID to derive it from");
  EXPECT_EQ(errorOf({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                     {"SLURM_STEP_NODELIST", "n[1-"}}),
            "SLURM_STEP_NODELIST: host list 'n[1-': unclosed '['");
}

TEST(NodeList, Expands) {
  EXPECT_EQ(hosts("node01"), (std::vector<std::string>{"node01"}));
  EXPECT_EQ(hosts("node[01-04,07]"), (std::vector<std::string>{"node01", "node02", "node03", "node04", "node07"}));
  EXPECT_EQ(hosts("a[1-2],b,c[9-10]"), (std::vector<std::string>{"a1", "a2", "b", "c9", "c10"}));
  EXPECT_EQ(hosts("rack[1-2]-n[08-09]"),
            (std::vector<std::string>{"rack1-n08", "rack1-n09", "rack2-n08", "rack2-n09"}));
  EXPECT_EQ(hosts("gpu[098-101]"), (std::vector<std::string>{"gpu098", "gpu099", "gpu100", "gpu101"}));
}

TEST(NodeList, Malformed) {
  EXPECT_EQ(hosts("n[3-1]"), (std::vector<std::string>{"error: host list 'n[3-1]': malformed range '3-1'"}));
  EXPECT_EQ(hosts("n[a]"), (std::vector<std::string>{"error: host list 'n[a]': malformed range 'a'"}));
  EXPECT_EQ(hosts("n]"), (std::vector<std::string>{"error: host list 'n]': malformed host 'n]'"}));
  EXPECT_EQ(hosts(""), (std::vector<std::string>{"error: host list '': malformed host ''"}));
}
