//===- ExecutorTest.cpp - the executor with a world of one ----------------===//
//
// A tiny plan, built here from the plan's types (the exec tests link no compiler), run in
// a temporary run directory on the CPU: a random Llama (1 layer, d_model 32, the bytes
// tokenizer), 16 steps of the synthetic prose corpus (no files needed) with checkpoints
// every 4 steps and two in-loop eval points, then a final eval. What it checks: every node
// ends done with its outputs; a second run is a no-op; an interrupted train node resumes
// bit-identical to an uninterrupted run; provisional plans and nodes whose inputs are not
// done are refused with errors that name them.
//
//===----------------------------------------------------------------------===//
#include "TempDir.h"
#include "mixtape/data/Tokenizer.h"
#include "mixtape/exec/Executor.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/Checkpoints.h"
#include "mixtape/rundir/Metrics.h"
#include "mixtape/rundir/RunDir.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

using namespace mixtape;

namespace {

constexpr uint64_t kSteps = 16, kBatch = 4, kSeqLen = 32, kPerStep = kBatch * kSeqLen;
constexpr uint64_t kCheckpointEvery = 4 * kPerStep; // checkpoints at steps 4, 8 and 12
constexpr const char *kInit = "init", *kTrain = "pretrain", *kEval = "ppl@pretrain";

/// Appends `node` the way the compiler's lowering does: its inputs' hashes, its own hash
/// (plan::nodeHash), its folder.
void addNode(plan::Plan &p, plan::Node node, const plan::StreamIdentities &identities,
             const std::vector<std::string> &streamsUsed) {
  for (const plan::NodeRef &in : node.Inputs)
    node.InputHashes.push_back(p.Nodes[in.Index].Hash);
  node.Hash = plan::nodeHash(p, node, identities, streamsUsed);
  node.Dir = plan::nodeDirName(node.Name, node.Hash);
  p.Nodes.push_back(std::move(node));
}

/// init -> pretrain (16 steps of synth:prose) -> ppl@pretrain, as `mixtape plan` lowers a
/// recipe of one stage and one eval. The plan goes through its JSON and back, so that it
/// is one the strict reader accepts (what `mixtape exec` runs). `regularized`: pretrain
/// distills from the init, is anchored to it and keeps a moving average.
plan::Plan tinyPlan(bool regularized = false) {
  plan::Plan p;
  p.Format = plan::kPlanFormat.str();
  p.Version = plan::kPlanFormatVersion;
  p.Recipe = "unit";
  p.RecipeDir = MIXTAPE_SOURCE_DIR;
  p.Seed = 3;
  plan::Architecture &m = p.Model;
  m.Family = plan::ModelFamily::Llama;
  m.Vocab = data::ByteTokenizer::VocabSize;
  m.Layers = 1;
  m.DModel = 32;
  m.Heads = 2;
  m.KVHeads = 2;
  m.Ffn = 128;
  m.MaxPositions = kSeqLen;
  m.RotaryPct = 1;
  m.Tokenizer = "bytes";
  m.TieEmbeddings = false;
  // The embedded corpus, generated into the run directory's cache. No fingerprint: the
  // runtime then does not compare the data with the plan's.
  plan::Stream prose;
  prose.Root = "prose";
  prose.Shards = "synth:prose";
  prose.Format = plan::ShardFormat::Auto;
  prose.Eod = plan::EodMode::Auto;
  prose.Val = 0.02;
  p.Streams["prose"] = prose;
  p.Cost.PeakFlops = 989e12;
  p.Cost.Mfu = 0.4;
  p.Sharing.VariantTokens = kSteps * kPerStep;
  p.Variants["pretrain"] = {kSteps * kPerStep, {{"prose", kSteps * kPerStep}}};
  const plan::StreamIdentities identities{{"prose", plan::streamIdentity(prose, "")}};

  plan::InitNode init;
  init.Settings.Model = m;
  init.Settings.Init = "random";
  init.Settings.Seed = 3;
  addNode(p, plan::makeNode(kInit, init), identities, {});

  plan::TrainNode train;
  plan::TrainSettings &s = train.Settings;
  s.Steps = {0, kSteps};
  s.SeqLen = kSeqLen;
  s.BatchSequences = kBatch;
  s.RopeTheta = 10000;
  s.Attention = plan::AttentionMask::Causal;
  const double horizon = kSteps * kPerStep, warmup = 0.1 * horizon;
  s.LR.Horizon = kSteps * kPerStep;
  s.LR.Phases = {{plan::PhaseShape::Warmup, 0, warmup, 0, 3e-3, 1, 0},
                 {plan::PhaseShape::Cosine, warmup, horizon - warmup, 3e-3, 3e-4, 1, 0}};
  s.Mixture = {{"prose"}, {0}, {{1}}};
  s.Optimizer = {plan::OptimizerKind::AdamW, 0.9, 0.95, 1e-8, 0.1, false};
  s.GradClip = 1;
  s.OnNonFinite = plan::NonFiniteAction::Stop;
  s.OptimizerState = plan::OptimizerStart::Reset;
  s.Data.Cursors = {{"prose", 0}};
  s.Data.Samples = {{"prose", kSteps * kBatch}};
  if (regularized) {
    s.Distill = plan::Distill{0, 0.5, 2.0, plan::DistillKind::KL};
    s.L2ToInit = plan::L2ToInit{1e-3, 0};
    s.Ema = 0.9;
  }
  plan::TrainExec &x = train.Exec;
  x.MicroBatch = 2;
  x.Shard = plan::ShardMode::None;
  x.CheckpointEvery = kCheckpointEvery;
  x.CheckpointKeep = 2;
  x.Stage = "pretrain";
  x.StageStart = true;
  x.ChainTokens = 0;
  x.RequestedTokens = kSteps * kPerStep;
  // In-loop points at the stage's start and half way (step 8).
  x.EvalDuring["ppl"] = {{{"prose", plan::SplitKind::Val}}, 512, std::nullopt, {0, kSteps * kPerStep / 2}};
  train.Ledger.Tokens = kSteps * kPerStep;
  train.Ledger.TokensByStream = {{"prose", kSteps * kPerStep}};
  train.Ledger.EpochsAtEnd = {{"prose", 0.005}};
  plan::Node trainNode = plan::makeNode(kTrain, train);
  trainNode.Inputs = {{0}};
  trainNode.Variants = {"pretrain"};
  addNode(p, std::move(trainNode), identities, {"prose"});

  plan::EvalNode eval;
  eval.Settings.Splits = {{"prose", plan::SplitKind::Val}};
  eval.Settings.MaxTokens = 512;
  eval.Exec.ChainTokens = kSteps * kPerStep;
  plan::Node evalNode = plan::makeNode(kEval, eval);
  evalNode.Inputs = {{1}};
  addNode(p, std::move(evalNode), identities, {"prose"});

  llvm::Expected<plan::Plan> parsed = plan::parsePlan(plan::planText(p), "tiny-plan.json");
  EXPECT_TRUE(bool(parsed)) << llvm::toString(parsed.takeError());
  return parsed ? std::move(*parsed) : p;
}

exec::ExecOptions cpuOptions(llvm::StringRef runDir) {
  exec::ExecOptions options;
  options.RunDir = runDir.str();
  options.Progress = false;
  options.Device = "cpu";
  return options;
}

/// The error's text, or "" on success.
std::string errorText(llvm::Error e) { return e ? llvm::toString(std::move(e)) : std::string(); }

std::optional<std::string> readFile(const std::string &path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer)
    return std::nullopt;
  return (*buffer)->getBuffer().str();
}

void writeFile(const std::string &path, llvm::StringRef text) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  ASSERT_FALSE(ec) << path << ": " << ec.message();
  os << text;
}

const plan::Node &node(const plan::Plan &p, llvm::StringRef name) { return p.Nodes[*plan::findNode(p, name)]; }

std::string fileOf(const plan::Plan &p, llvm::StringRef runDir, llvm::StringRef name, llvm::StringRef file) {
  llvm::SmallString<256> path(rundir::nodeDir(runDir, node(p, name)));
  llvm::sys::path::append(path, file);
  return std::string(path);
}

/// A metrics.jsonl without the train records' wall-clock fields, which differ from run to run.
std::string withoutWallClock(const std::string &metrics) {
  static const std::regex kWallClock(R"re(,"(time|elapsed_s|tokens_per_s|mfu|peak_memory_bytes)":[^,}]*)re");
  return std::regex_replace(metrics, kWallClock, "");
}

/// Every file under `dir` (relative path -> bytes), checkpoints and caches left out: what a
/// run leaves that a second run must not change (metrics.jsonl without its wall-clock fields).
std::map<std::string, std::string> outputs(const plan::Plan &p, llvm::StringRef runDir) {
  std::map<std::string, std::string> files;
  for (const plan::Node &n : p.Nodes) {
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(rundir::nodeDir(runDir, n), ec), end; it != end && !ec;
         it.increment(ec))
      if (it->type() == llvm::sys::fs::file_type::regular_file)
        if (std::optional<std::string> bytes = readFile(it->path())) {
          llvm::StringRef name = llvm::sys::path::filename(it->path());
          files[n.Dir + "/" + name.str()] = name == "metrics.jsonl" ? withoutWallClock(*bytes) : *bytes;
        }
  }
  return files;
}

rundir::Metrics metricsOf(const plan::Plan &p, llvm::StringRef runDir, llvm::StringRef name) {
  llvm::Expected<rundir::Metrics> m = rundir::readMetrics(fileOf(p, runDir, name, "metrics.jsonl"));
  EXPECT_TRUE(bool(m)) << llvm::toString(m.takeError());
  return m ? std::move(*m) : rundir::Metrics();
}

/// One uninterrupted run of the tiny plan, shared by the tests that compare with it.
class Executor : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    Plan = new plan::Plan(tinyPlan());
    Reference = new test::TempDir();
    ASSERT_EQ(errorText(exec::executePlan(*Plan, cpuOptions(Reference->Path))), "");
    ReferenceOutputs = new std::map<std::string, std::string>(outputs(*Plan, Reference->Path));
  }
  static void TearDownTestSuite() {
    delete ReferenceOutputs;
    delete Reference;
    delete Plan;
  }
  static plan::Plan *Plan;
  static test::TempDir *Reference;
  static std::map<std::string, std::string> *ReferenceOutputs;
};
plan::Plan *Executor::Plan = nullptr;
test::TempDir *Executor::Reference = nullptr;
std::map<std::string, std::string> *Executor::ReferenceOutputs = nullptr;

} // namespace

TEST_F(Executor, RunsEveryNodeToItsDoneMarker) {
  const std::string &dir = Reference->Path;
  for (const plan::Node &n : Plan->Nodes) {
    EXPECT_TRUE(rundir::isDone(dir, n)) << n.Name;
    // DONE holds the node's hash, node.json its plan entry.
    EXPECT_EQ(readFile(fileOf(*Plan, dir, n.Name, "DONE")).value_or("").find(n.Hash), 0u) << n.Name;
    EXPECT_EQ(readFile(fileOf(*Plan, dir, n.Name, "node.json")), plan::nodeText(*Plan, n)) << n.Name;
  }
  for (const char *name : {kInit, kTrain})
    EXPECT_TRUE(llvm::sys::fs::exists(fileOf(*Plan, dir, name, "model.safetensors"))) << name;
  EXPECT_TRUE(llvm::sys::fs::exists(fileOf(*Plan, dir, kTrain, "optimizer.safetensors")));

  // One train record per step, in order, with a finite loss and the tokens it stands for.
  rundir::Metrics train = metricsOf(*Plan, dir, kTrain);
  EXPECT_TRUE(train.Warnings.empty());
  EXPECT_TRUE(train.Skips.empty());
  ASSERT_EQ(train.Train.size(), kSteps);
  for (uint64_t i = 0; i < kSteps; ++i) {
    const rundir::TrainRecord &r = train.Train[i];
    EXPECT_EQ(r.Node, kTrain);
    EXPECT_EQ(r.Stage, "pretrain");
    EXPECT_EQ(r.Step, i + 1);
    EXPECT_EQ(r.StageTokens, (i + 1) * kPerStep);
    EXPECT_EQ(r.ChainTokens, (i + 1) * kPerStep);
    EXPECT_TRUE(std::isfinite(r.Loss) && r.Loss > 0) << "step " << r.Step << ": " << r.Loss;
    // The LR of the step's start: 0 at the first (the warmup starts there), then positive.
    EXPECT_TRUE(std::isfinite(r.LR) && (r.LR > 0) == (i > 0) && r.LR <= 3e-3) << "step " << r.Step << ": " << r.LR;
    EXPECT_EQ(r.LossByStream.count("prose"), 1u);
    // Wall clock: unix seconds of this century, the node's seconds so far, a throughput; no
    // MFU or peak memory on the CPU.
    EXPECT_TRUE(r.Time && *r.Time > 1.6e9 && *r.Time < 4.1e9) << "step " << r.Step;
    EXPECT_TRUE(r.ElapsedS && *r.ElapsedS >= 0 && (i == 0 || *r.ElapsedS >= *train.Train[i - 1].ElapsedS))
        << "step " << r.Step;
    EXPECT_TRUE(r.TokensPerS && *r.TokensPerS > 0) << "step " << r.Step;
    EXPECT_FALSE(r.Mfu || r.PeakMemoryBytes) << "step " << r.Step;
  }
  // It learns: a random model starts near ln(vocab) and 16 steps bring it below.
  EXPECT_NEAR(train.Train.front().Loss, std::log(double(data::ByteTokenizer::VocabSize)), 0.5);
  EXPECT_LT(train.Train.back().Loss, train.Train.front().Loss);

  // The two in-loop points, at stage tokens 0 and 1024, in the train node's metrics.
  ASSERT_EQ(train.Evals.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const rundir::EvalRecord &e = train.Evals[i];
    EXPECT_EQ(e.Node, kTrain);
    EXPECT_EQ(e.Eval, "ppl");
    EXPECT_FALSE(e.Final);
    EXPECT_EQ(e.StageTokens, i * kSteps * kPerStep / 2);
    EXPECT_EQ(e.Stream, "prose");
    EXPECT_EQ(e.Split, plan::SplitKind::Val);
    EXPECT_TRUE(std::isfinite(e.Loss) && e.Loss > 0) << e.Loss;
    EXPECT_NEAR(e.Ppl, std::exp(e.Loss), 1e-6 * e.Ppl);
  }
  EXPECT_LT(train.Evals[1].Loss, train.Evals[0].Loss);

  // The final eval: one record, of the trained model, in the eval node's folder.
  rundir::Metrics eval = metricsOf(*Plan, dir, kEval);
  ASSERT_EQ(eval.Evals.size(), 1u);
  EXPECT_TRUE(eval.Train.empty());
  const rundir::EvalRecord &e = eval.Evals[0];
  EXPECT_EQ(e.Node, kTrain);
  EXPECT_EQ(e.Eval, "ppl");
  EXPECT_TRUE(e.Final);
  EXPECT_EQ(e.Stage, std::optional<std::string>("pretrain"));
  EXPECT_EQ(e.StageTokens, kSteps * kPerStep);
  EXPECT_EQ(e.ChainTokens, kSteps * kPerStep);
  EXPECT_TRUE(std::isfinite(e.Loss) && e.Loss < train.Evals[0].Loss) << e.Loss;
  ASSERT_TRUE(e.Tokens);
  EXPECT_GT(*e.Tokens, 0u);
  EXPECT_LE(*e.Tokens, 512u);

  // Checkpoints every 4 steps but none at the end (the node's own files are the model
  // then); the newest two kept.
  rundir::CheckpointStore store(rundir::nodeDir(dir, node(*Plan, kTrain)));
  rundir::LatestCheckpoint latest = store.latest();
  ASSERT_TRUE(latest.Found);
  EXPECT_TRUE(latest.PassedOver.empty());
  EXPECT_EQ(latest.Found->State.Step, 12u);
  auto valid = [&](uint64_t step) {
    return !llvm::errorToBool(store.validate(step, rundir::CheckpointStore::Check::Contents));
  };
  EXPECT_TRUE(valid(8));
  EXPECT_FALSE(valid(4));
  EXPECT_FALSE(valid(16));
}

TEST_F(Executor, RunningAgainIsANoOp) {
  test::TempDir copy;
  // A run directory of its own, so that the shared reference stays as it is.
  ASSERT_EQ(errorText(exec::executePlan(*Plan, cpuOptions(copy.Path))), "");
  std::map<std::string, std::string> first = outputs(*Plan, copy.Path);
  EXPECT_EQ(first, *ReferenceOutputs); // a second run directory: the same bytes
  exec::ExecOptions options = cpuOptions(copy.Path);
  options.Progress = true;
  testing::internal::CaptureStderr();
  std::string error = errorText(exec::executePlan(*Plan, options));
  std::string progress = testing::internal::GetCapturedStderr();
  ASSERT_EQ(error, "");
  for (const plan::Node &n : Plan->Nodes)
    EXPECT_NE(progress.find("[" + n.Name + "] done, skipped"), std::string::npos) << progress;
  EXPECT_EQ(progress.find("step "), std::string::npos) << "a done node trained again:\n" << progress;
  EXPECT_EQ(outputs(*Plan, copy.Path), first);
  EXPECT_EQ(metricsOf(*Plan, copy.Path, kTrain).Train.size(), kSteps);
  EXPECT_EQ(metricsOf(*Plan, copy.Path, kEval).Evals.size(), 1u);
}

// Killed after step 10: the checkpoint of step 12 not yet written, metrics.jsonl ending in
// half a line, no DONE and no final model; the eval node never started. The rerun resumes
// from the checkpoint of step 8 and ends with the bytes of the uninterrupted run.
/// Runs `plan` (whose uninterrupted run left `reference` in `referenceDir`), interrupts
/// its train node after step 10 with its last checkpoint at step 8, and checks that running
/// again resumes there and ends with every file of the uninterrupted run, bit for bit.
void expectResumesBitIdentical(const plan::Plan &p, const std::string &referenceDir,
                               const std::map<std::string, std::string> &reference) {
  test::TempDir dir;
  ASSERT_EQ(errorText(exec::executePlan(p, cpuOptions(dir.Path))), "");
  const plan::Node &train = node(p, kTrain);
  const std::string trainDir = rundir::nodeDir(dir.Path, train);
  ASSERT_FALSE(llvm::sys::fs::remove(fileOf(p, dir.Path, kTrain, "DONE")));
  ASSERT_FALSE(llvm::sys::fs::remove(fileOf(p, dir.Path, kTrain, "model.safetensors")));
  ASSERT_FALSE(llvm::sys::fs::remove(fileOf(p, dir.Path, kTrain, "optimizer.safetensors")));
  ASSERT_FALSE(llvm::sys::fs::remove(fileOf(p, dir.Path, kTrain, "ema.safetensors"))); // if it has one
  rundir::CheckpointStore store(trainDir);
  ASSERT_FALSE(llvm::sys::fs::remove_directories(store.dirFor(12)));
  std::optional<rundir::Checkpoint> resumeAt = store.latest().Found;
  ASSERT_TRUE(resumeAt);
  ASSERT_EQ(resumeAt->State.Step, 8u);
  ASSERT_FALSE(llvm::sys::fs::remove_directories(rundir::nodeDir(dir.Path, node(p, kEval))));
  // Metrics through step 10 (two in-loop points, ten steps) and the start of step 11's.
  std::string metrics = readFile(fileOf(p, dir.Path, kTrain, "metrics.jsonl")).value_or("");
  size_t end = 0;
  for (int line = 0; line < 12 && end != std::string::npos; ++line)
    end = metrics.find('\n', end) + 1;
  ASSERT_NE(end, std::string::npos);
  ASSERT_GT(end, resumeAt->State.MetricsBytes);
  writeFile(fileOf(p, dir.Path, kTrain, "metrics.jsonl"), metrics.substr(0, end) + "{\"type\": \"train\", \"no");
  EXPECT_FALSE(rundir::isDone(dir.Path, train));

  exec::ExecOptions options = cpuOptions(dir.Path);
  options.Progress = true; // it says where it resumes
  testing::internal::CaptureStderr();
  std::string error = errorText(exec::executePlan(p, options));
  std::string progress = testing::internal::GetCapturedStderr();
  ASSERT_EQ(error, "");
  EXPECT_NE(progress.find("[pretrain] resuming from the checkpoint at step 8"), std::string::npos) << progress;
  EXPECT_NE(progress.find("[init] done, skipped"), std::string::npos) << progress;
  for (const plan::Node &n : p.Nodes)
    EXPECT_TRUE(rundir::isDone(dir.Path, n)) << n.Name;
  std::map<std::string, std::string> resumed = outputs(p, dir.Path);
  for (const auto &[file, bytes] : reference)
    EXPECT_TRUE(resumed.count(file) && resumed[file] == bytes) << file << " differs from the uninterrupted run";
  EXPECT_EQ(resumed.size(), reference.size());
  // Spelled out for a clearer failure: every step's loss, bit for bit.
  rundir::Metrics want = metricsOf(p, referenceDir, kTrain), got = metricsOf(p, dir.Path, kTrain);
  ASSERT_EQ(got.Train.size(), want.Train.size());
  for (size_t i = 0; i < want.Train.size(); ++i) {
    EXPECT_EQ(got.Train[i].Loss, want.Train[i].Loss) << "step " << want.Train[i].Step;
    // The resumed steps count on from the kept records' seconds.
    if (i > 0)
      EXPECT_GE(*got.Train[i].ElapsedS, *got.Train[i - 1].ElapsedS) << "step " << want.Train[i].Step;
  }
  EXPECT_TRUE(got.Warnings.empty());
}

TEST_F(Executor, AnInterruptedTrainNodeResumesBitIdentical) {
  expectResumesBitIdentical(*Plan, Reference->Path, *ReferenceOutputs);
}

// With distill, l2_to_init and ema: the teacher and anchor are the init; the moving average
// is written beside the model and in each checkpoint, and a resumed node ends with the same
// bytes of both; the records carry the objective's parts.
TEST(RegularizedExecutor, ResumesBitIdenticalAndWritesTheAverage) {
  const plan::Plan regularized = tinyPlan(/*regularized=*/true);
  EXPECT_NE(node(regularized, kTrain).Hash, node(tinyPlan(), kTrain).Hash);
  test::TempDir reference;
  ASSERT_EQ(errorText(exec::executePlan(regularized, cpuOptions(reference.Path))), "");
  const std::map<std::string, std::string> outputsOfReference = outputs(regularized, reference.Path);
  const std::string model = readFile(fileOf(regularized, reference.Path, kTrain, "model.safetensors")).value_or("");
  const std::string average = readFile(fileOf(regularized, reference.Path, kTrain, "ema.safetensors")).value_or("");
  EXPECT_FALSE(average.empty());
  EXPECT_EQ(average.size(), model.size());
  EXPECT_NE(average, model);
  EXPECT_TRUE(llvm::sys::fs::exists(rundir::CheckpointStore(rundir::nodeDir(reference.Path, node(regularized, kTrain)))
                                        .dirFor(12) +
                                    "/ema.safetensors"));
  rundir::Metrics metrics = metricsOf(regularized, reference.Path, kTrain);
  ASSERT_EQ(metrics.Train.size(), kSteps);
  for (const rundir::TrainRecord &r : metrics.Train) {
    ASSERT_TRUE(r.LossLM && r.LossDistill && r.LossL2) << "step " << r.Step;
    EXPECT_DOUBLE_EQ(r.Loss, *r.LossLM + 0.5 * *r.LossDistill + *r.LossL2) << "step " << r.Step;
  }
  // The student leaves the init: the terms that measure the distance grow from 0.
  EXPECT_EQ(*metrics.Train.front().LossL2, 0.0);
  EXPECT_GT(*metrics.Train.back().LossL2, 0.0);
  EXPECT_GT(*metrics.Train.back().LossDistill, *metrics.Train.front().LossDistill);
  expectResumesBitIdentical(regularized, reference.Path, outputsOfReference);
}

// The newest checkpoint's weights cut short after its commit (a disk that lost them):
// the node passes it over with a warning naming the file, resumes from the one before and
// ends with the bytes of the uninterrupted run.
TEST_F(Executor, ACutCheckpointIsPassedOverForTheOneBefore) {
  test::TempDir dir;
  ASSERT_EQ(errorText(exec::executePlan(*Plan, cpuOptions(dir.Path))), "");
  const plan::Node &train = node(*Plan, kTrain);
  for (const char *file : {"DONE", "model.safetensors", "optimizer.safetensors"})
    ASSERT_FALSE(llvm::sys::fs::remove(fileOf(*Plan, dir.Path, kTrain, file)));
  ASSERT_FALSE(llvm::sys::fs::remove_directories(rundir::nodeDir(dir.Path, node(*Plan, kEval))));
  rundir::CheckpointStore store(rundir::nodeDir(dir.Path, train));
  // A world of one writes its whole state as one shard.
  const std::string model = store.dirFor(12) + "/shard-00000-of-00001.safetensors";
  std::string weights = readFile(model).value_or("");
  ASSERT_GT(weights.size(), 100u);
  writeFile(model, weights.substr(0, weights.size() / 2));

  exec::ExecOptions options = cpuOptions(dir.Path);
  options.Progress = true;
  testing::internal::CaptureStderr();
  std::string error = errorText(exec::executePlan(*Plan, options));
  std::string progress = testing::internal::GetCapturedStderr();
  ASSERT_EQ(error, "");
  EXPECT_NE(progress.find("[pretrain] warning: passing over a checkpoint: " + model + ": " +
                          std::to_string(weights.size() / 2) + " bytes where state.json says " +
                          std::to_string(weights.size())),
            std::string::npos)
      << progress;
  EXPECT_NE(progress.find("[pretrain] resuming from the checkpoint at step 8"), std::string::npos) << progress;
  std::map<std::string, std::string> resumed = outputs(*Plan, dir.Path);
  for (const auto &[file, bytes] : *ReferenceOutputs)
    EXPECT_TRUE(resumed.count(file) && resumed[file] == bytes) << file << " differs from the uninterrupted run";
}

// A train node that died before its first checkpoint starts over: its partial metrics go.
TEST_F(Executor, AnInterruptedTrainNodeWithoutCheckpointsStartsOver) {
  test::TempDir dir;
  exec::ExecOptions options = cpuOptions(dir.Path);
  options.Nodes = {kInit};
  ASSERT_EQ(errorText(exec::executePlan(*Plan, options)), "");
  const plan::Node &train = node(*Plan, kTrain);
  ASSERT_FALSE(llvm::sys::fs::create_directories(rundir::nodeDir(dir.Path, train)));
  std::string metrics = readFile(fileOf(*Plan, Reference->Path, kTrain, "metrics.jsonl")).value_or("");
  writeFile(fileOf(*Plan, dir.Path, kTrain, "metrics.jsonl"), metrics.substr(0, metrics.size() / 3));
  options.Nodes.clear();
  ASSERT_EQ(errorText(exec::executePlan(*Plan, options)), "");
  EXPECT_EQ(outputs(*Plan, dir.Path), *ReferenceOutputs);
}

// What cluster jobs do (`mixtape exec PLAN --node N`): node by node, the same run.
TEST_F(Executor, NodeByNodeIsTheSameRun) {
  test::TempDir dir;
  exec::ExecOptions options = cpuOptions(dir.Path);
  for (const plan::Node &n : Plan->Nodes) {
    options.Nodes = {n.Name};
    ASSERT_EQ(errorText(exec::executePlan(*Plan, options)), "") << n.Name;
    for (const plan::Node &other : Plan->Nodes)
      EXPECT_EQ(rundir::isDone(dir.Path, other), &other <= &n) << "after " << n.Name << ": " << other.Name;
  }
  EXPECT_EQ(outputs(*Plan, dir.Path), *ReferenceOutputs);
}

TEST(ExecutorRefuses, AProvisionalPlan) {
  test::TempDir dir;
  plan::Plan p = tinyPlan();
  p.Provisional = true;
  p.ProvisionalReasons = {"stream 'prose': no data"};
  const std::string runDir = dir / "run";
  std::string error = errorText(exec::executePlan(p, cpuOptions(runDir)));
  EXPECT_NE(error.find("provisional"), std::string::npos) << error;
  EXPECT_NE(error.find("stream 'prose': no data"), std::string::npos) << error;
  EXPECT_FALSE(llvm::sys::fs::exists(runDir)) << "a refused plan wrote its run directory";
}

TEST(ExecutorRefuses, ANodeWhoseInputsAreNotDone) {
  test::TempDir dir;
  plan::Plan p = tinyPlan();
  exec::ExecOptions options = cpuOptions(dir.Path);
  options.Nodes = {kEval};
  std::string error = errorText(exec::executePlan(p, options));
  EXPECT_NE(error.find("node 'ppl@pretrain' needs 'pretrain', which is not done"), std::string::npos) << error;
  for (const plan::Node &n : p.Nodes)
    EXPECT_FALSE(llvm::sys::fs::exists(rundir::nodeDir(dir.Path, n))) << n.Name << " started";

  options.Nodes = {kTrain};
  error = errorText(exec::executePlan(p, options));
  EXPECT_NE(error.find("node 'pretrain' needs 'init', which is not done"), std::string::npos) << error;

  options.Nodes = {"pretrian"};
  error = errorText(exec::executePlan(p, options));
  EXPECT_NE(error.find("the plan has no node 'pretrian'"), std::string::npos) << error;
}
