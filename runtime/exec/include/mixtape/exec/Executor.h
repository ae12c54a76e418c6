//===- Executor.h - run a plan ---------------------------------*- C++ -*-===//
//
// `mixtape exec PLAN` and `mixtape run RECIPE` end here: the plan's nodes run in order in
// a run directory, each in <run dir>/<node dir>/. A node whose done marker is there is
// skipped; an interrupted train node resumes from its last checkpoint, bit-identical on
// the same numerics (docs/run-format.md).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Verify.h"
#include "mixtape/dist/World.h"
#include "mixtape/plan/Plan.h"

#include "llvm/Support/Error.h"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::exec {

struct ExecOptions {
  std::string RunDir;
  /// Run only these nodes (their inputs must be done); empty: every node.
  std::vector<std::string> Nodes;
  /// Print progress lines (a terminal gets one updating line).
  bool Progress = true;
  /// Where training and evals run: "cpu", "cuda", "cuda:N", "auto" or "" (see
  /// train::resolveDevice). Init nodes, merges and checkpoints stay on the CPU.
  std::string Device;
  /// This process's place among data-parallel ranks (a world of one by default). Every
  /// rank runs executePlan on the same plan: each trains on its share of every batch and
  /// evaluates its share of every split; each rank writes its shard of a checkpoint, rank 0
  /// alone its commit, metrics, models and done markers, and decides what is done and
  /// where to resume.
  dist::World World;
  /// Bounds the rendezvous and every collective: a rank that died or hangs makes the
  /// others fail within it. Rank 0's file work alone (init, merge, checkpoints) may take
  /// longer: the others wait while its heartbeat goes on (docs/cluster.md).
  std::chrono::milliseconds Timeout{std::chrono::minutes(10)};
  /// `--shard`: how every train node shards its state over the ranks (docs/cluster.md),
  /// whatever its plan says (unset: the plan's `exec.shard`); nothing changes for a world of
  /// one.
  std::optional<plan::ShardMode> Shard;
  /// `--verify-data`: every dataset a train or eval node opens is hashed against its
  /// manifest and its token ids checked against the model's vocabulary before the node
  /// reads it; `Cached` skips files the verification cache holds unchanged (docs/data-format.md).
  data::VerifyMode VerifyData = data::VerifyMode::Cached;
};

/// Refuses provisional plans (plan::readPlanFile refuses other format versions).
llvm::Error executePlan(const plan::Plan &plan, const ExecOptions &options);

/// What `mixtape export` writes.
struct ExportOptions {
  /// bf16 tensors instead of the node's fp32 ones.
  bool Bf16 = false;
  /// Above this many bytes of tensors, shards (model::HFSaveOptions).
  uint64_t MaxShardBytes = 5'000'000'000;
  /// The train node's retained checkpoint at this stage step instead of its final model
  /// (the node need not be done): a sharded checkpoint is consolidated tensor by tensor.
  std::optional<uint64_t> CheckpointStep;
};

/// Writes the model that node `node` of a plan left in `runDir` (its done marker must be
/// there) as the Hugging Face folder `outDir` that save_pretrained would write (the list is
/// in docs/run-format.md): config.json of the model_type it was imported as,
/// generation_config.json with the run's tokenizer's special tokens, the weights (sharded
/// above `options.MaxShardBytes`) and the tokenizer's files. It is built in a temporary
/// folder beside `outDir` and renamed into place; `outDir` must not exist yet.
llvm::Error exportNode(const plan::Plan &plan, llvm::StringRef runDir, llvm::StringRef node, llvm::StringRef outDir,
                       const ExportOptions &options = {});

} // namespace mixtape::exec
