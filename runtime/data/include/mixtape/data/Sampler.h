//===- Sampler.h - the samples of a train node, and validation sets -*- C++ -*-===//
//
// A stream's token sequence is its documents, epoch after epoch, each followed by the
// end-of-text token; a cursor is a token offset into it. A train node is a range of a
// stage's samples: the mixture (replayed with mixtape::Blender from the stage's first
// sample) says which stream each sample comes from, and the k-th sample the node takes
// from stream s is the window of seqLen + 1 tokens at cursor_s + k * seqLen. So sample i
// is a pure function of the node's data and i: random access, nothing to save for resume,
// and rank r of W reading r, r + W, ... sees the same global order for every W.
// The contract is spelled out in docs/data-format.md, "Sampling".
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/data/Stream.h"
#include "mixtape/plan/Mixture.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::data {

/// One training or validation window.
struct Sample {
  /// seqLen + 1 token ids: inputs are Tokens[0, seqLen), targets Tokens[1, seqLen].
  std::vector<uint32_t> Tokens;
  /// seqLen entries; LossMask[t] == 1 trains on predicting target Tokens[t + 1] from
  /// Tokens[0..t]. 0 where that target is a knot token (Untie-the-Knots), a control
  /// token (given, never predicted) or, in a validation set, padding past the split's end
  /// or the eval's token budget.
  std::vector<uint8_t> LossMask;
  /// Ascending positions in `Tokens` where a document segment starts: 0, then the
  /// position after every end-of-text token that is not the last token. A knotted window
  /// (Untie-the-Knots) is one segment, {0}: its chunks are meant to be attended across.
  std::vector<uint32_t> DocumentStarts;
  uint32_t Stream = 0;  ///< index into the mixture's streams
  uint64_t Cursor = 0;  ///< the stream's token offset of tokens[0] (before any transform)
};

/// One stream of a node's mixture, as the plan gives it.
struct NodeStream {
  std::string Name;
  RootSpec Root;                      ///< the root stream's datasets and val fraction
  StreamSelection Selection;          ///< a derived stream's filters, an ablation unit
  std::optional<plan::UntieKnots> Transform;
  uint64_t Cursor = 0;                ///< token offset at the node's first sample
};

struct TrainNodeData {
  uint64_t SeqLen = 0;
  plan::Objective Objective = plan::Objective::LM; ///< sft: the loss counts responses only
  plan::Mixture Mixture;              ///< positions in stage tokens
  uint64_t Begin = 0, End = 0;        ///< the node's stage samples [begin, end)
  std::vector<NodeStream> Streams;    ///< one per mixture.Streams, in that order
};

/// Reads windows of one stream's token sequence; the epochs it may touch are ordered
/// when it is made, so reads are const and thread-safe.
class WindowReader {
public:
  /// Orders epochs [firstEpoch, lastEpoch] of `view`.
  WindowReader(const StreamView &view, uint64_t firstEpoch, uint64_t lastEpoch);
  /// Reads `order` once, without wrapping: an eval's documents.
  static WindowReader once(const StreamView &view, DocumentOrder order);

  /// Tokens [offset, offset + count) into `out`; appends the positions (relative to
  /// `out`) where a document starts after the first, and 0.
  void read(uint64_t offset, uint64_t count, uint32_t *out, std::vector<uint32_t> &documentStarts) const;
  /// The stored tokens read() would copy for the same window, as (document, first token,
  /// count) runs; the end-of-text tokens between them are not stored.
  void forEachRun(uint64_t offset, uint64_t count,
                  llvm::function_ref<void(const TokenSpan &, uint64_t, uint64_t)> run) const;
  /// Supervised examples (docs/data-format.md, "Responses only"): clears lossMask[t] unless
  /// target token t + 1 of the window [offset, offset + count) is a response token of a
  /// document that starts in the window, or the end-of-text after one. `promptTokens`:
  /// each root document's prompt length (promptLengths()).
  void keepResponses(uint64_t offset, uint64_t count, llvm::ArrayRef<uint32_t> promptTokens,
                     std::vector<uint8_t> &lossMask) const;
  /// Control tokens (Korbak et al. 2023) are given, not predicted: clears lossMask[t] where
  /// target token t + 1 of the window [offset, offset + count) is one.
  void maskPrefixes(uint64_t offset, uint64_t count, std::vector<uint8_t> &lossMask) const;
  uint64_t epochTokens() const { return EpochTokens; }

private:
  explicit WindowReader(const StreamView &view) : View(&view) {}

  const StreamView *View;
  uint64_t FirstEpoch = 0, EpochTokens = 0;
  std::vector<DocumentOrder> Epochs;
};

/// Each root document's prompt length in tokens, from the metadata column
/// plan::kPromptTokensColumn (0 where a document has none: all of it is response); nullopt
/// when no dataset of the root has the column.
std::optional<std::vector<uint32_t>> promptLengths(const RootStream &root);

/// Untie-the-Knots (Tian et al. 2024) on one window, in place; see docs/data-format.md.
void untieKnots(const plan::UntieKnots &params, uint64_t seed, uint32_t knot, Sample &sample);

class TrainSamples {
public:
  static llvm::Expected<std::unique_ptr<TrainSamples>> open(const TrainNodeData &node, DataSources &sources);

  uint64_t size() const { return StreamOf.size(); }
  uint64_t seqLen() const { return SeqLen; }
  /// Sample i of the node (stage sample begin + i). Reuses `out`'s buffers.
  void read(uint64_t i, Sample &out) const;
  Sample read(uint64_t i) const {
    Sample s;
    read(i, s);
    return s;
  }
  /// Each stream's cursor after the node: where a node continuing it starts.
  std::vector<uint64_t> endCursors() const;
  /// Samples of each stream in the node.
  const std::vector<uint64_t> &streamSamples() const { return Taken; }
  const StreamView &view(size_t stream) const { return *Streams[stream].View; }
  /// The reader of a stream the node takes samples from.
  const WindowReader &reader(size_t stream) const { return *Streams[stream].Reader; }

private:
  struct Source {
    const StreamView *View = nullptr;
    std::unique_ptr<WindowReader> Reader;
    std::optional<plan::UntieKnots> Transform;
    std::vector<uint32_t> PromptTokens; ///< per root document; empty: every target counts
    uint32_t Knot = 0;
    uint64_t Cursor = 0, TransformSeed = 0;
  };
  TrainSamples() = default;

  uint64_t SeqLen = 0;
  std::vector<Source> Streams;
  std::vector<uint8_t> StreamOf;   ///< per sample
  std::vector<uint32_t> IndexOf;   ///< per sample: samples of its stream before it in the node
  std::vector<uint64_t> Taken;
};

/// An evaluation over a split of a stream: its held-out documents, or its training ones,
/// in the order StreamView::evalOrder gives, packed like training windows (window k starts
/// at token k * seqLen), until `maxTokens` target tokens (0: the whole split). The last
/// window is padded with end-of-text tokens whose targets are masked, so exactly
/// min(maxTokens, split tokens - 1) targets count; of a stream with prompts (promptLengths),
/// only those keepResponses() keeps: the eval scores the responses.
class ValSet {
public:
  static llvm::Expected<std::unique_ptr<ValSet>> open(const NodeStream &stream, plan::SplitKind split,
                                                      uint64_t seqLen, uint64_t maxTokens, DataSources &sources);
  uint64_t size() const { return Windows; }
  /// Target tokens with LossMask 1 over all windows.
  uint64_t targetTokens() const { return Targets; }
  void sample(uint64_t i, Sample &out) const;

private:
  ValSet() = default;

  const StreamView *View = nullptr;
  std::unique_ptr<WindowReader> Reader;
  std::vector<uint32_t> PromptTokens; ///< per root document; empty: the stream has no prompts
  uint64_t SeqLen = 0, Windows = 0, SplitTokens = 0;
  uint64_t Budget = 0;  ///< targets in the windows' reach: min(maxTokens, split tokens - 1)
  uint64_t Targets = 0; ///< of those, the ones the masks keep
};

} // namespace mixtape::data
