//===- Lora.h - low-rank adapters on a model's projections ------*- C++ -*-===//
//
// LoRA (Hu et al. 2021): a projection y = W x becomes y = W x + (alpha / r) B A dropout(x),
// with A [r, in] drawn as PEFT draws it (kaiming_uniform_, a = sqrt(5): U(-1/sqrt(in),
// 1/sqrt(in))) and B [out, r] zero, so the adapted model starts as the base. Model::addLora
// adds the factors as parameters and freezes everything else; Model::mergeLora folds them
// into the weights (W + (alpha / r) B A) and removes them. No LibTorch here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mixtape::model {

struct LoraOptions {
  int64_t Rank = 8;
  double Alpha = 8;
  /// Projections adapted: q, k, v, o, gate (Llama), up, down. Where a family fuses q/k/v
  /// into one matrix (GPT-2's c_attn, GPT-NeoX's query_key_value) each is its row block.
  std::vector<std::string> Targets;
  /// Dropout on each adapter's input, drawn while gradients are recorded (training) only,
  /// from a CPU generator that Model::reseedLoraDropout sets per step.
  double Dropout = 0;
  /// Seed of A's initialization.
  uint64_t Seed = 0;
};

} // namespace mixtape::model
