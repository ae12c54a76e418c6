//===- TensorBoard.h - a run's metrics as TensorBoard event files -*- C++ -*-===//
//
// `mixtape report --tensorboard DIR` writes DIR/<node>/events.out.tfevents.<secs>.<host>:
// TFRecord framing (a little-endian uint64 length, its masked CRC-32C, the data, the data's
// masked CRC-32C) around hand-encoded tensorflow.Event protocol buffers: first one with
// file_version "brain.Event:2", then one per scalar as a Summary.Value simple_value, its step
// the chain tokens (docs/run-format.md, "TensorBoard").
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/report/Report.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mixtape::report {

/// One point of one scalar series.
struct Scalar {
  std::string Tag;
  uint64_t Step = 0;    ///< chain tokens
  double WallTime = 0;  ///< unix seconds
  float Value = 0;
};

/// The scalars of a model's records: its train records and the evals of it, in and after
/// training, ordered by step.
struct NodeScalars {
  std::string Node;
  double WallTime = 0; ///< the event file's: its first record's time
  std::vector<Scalar> Scalars;
};

/// Every model with records, in plan order. Tags: train/loss, train/lr, train/grad_norm,
/// train/loss_by_stream/STREAM, train/tokens_per_s, train/mfu, train/peak_memory_gib;
/// eval/EVAL/STREAM.SPLIT/loss and /ppl; task/EVAL/TASK/METRIC. An eval record has no time
/// of its own: it takes the time of its model's last train record at or before its step.
std::vector<NodeScalars> tensorBoardScalars(const Run &run);

/// CRC-32C (Castagnoli) of `data`, as TFRecord frames use it before masking.
uint32_t crc32c(llvm::StringRef data);

/// The bytes of one event file of `node`.
std::string eventFile(const NodeScalars &node);

/// Writes each model's event file under `dir`, replacing the events.out.tfevents.* files an
/// earlier call left in its folder; `host` goes into the file names.
llvm::Error writeTensorBoard(const Run &run, llvm::StringRef dir, llvm::StringRef host);

} // namespace mixtape::report
