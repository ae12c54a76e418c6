//===- Sampler.cpp --------------------------------------------------------===//
#include "mixtape/data/Sampler.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/data/Tokenizer.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"

#include <xxhash.h>

#include <algorithm>

using namespace mixtape;
using namespace mixtape::data;

//===----------------------------------------------------------------------===//
// Windows of a token sequence
//===----------------------------------------------------------------------===//

WindowReader::WindowReader(const StreamView &view, uint64_t firstEpoch, uint64_t lastEpoch)
    : View(&view), FirstEpoch(firstEpoch), EpochTokens(view.trainTokens()) {
  for (uint64_t e = firstEpoch; e <= lastEpoch; ++e)
    Epochs.push_back(view.epoch(e));
}

WindowReader WindowReader::once(const StreamView &view, DocumentOrder order) {
  WindowReader reader(view);
  reader.Epochs.push_back(std::move(order));
  reader.EpochTokens = reader.Epochs.back().tokens();
  return reader;
}

/// Walks the window [offset, offset + count) of `view`: calls prefix(position, token) for
/// each control token, tokens(span, from, n, position, document) for each run of stored
/// tokens (position: where in the window it starts; document: the root's index) and
/// boundary(position) for each end-of-text token.
template <typename Prefix, typename Tokens, typename Boundary>
static void walkWindow(const StreamView &view, const std::vector<DocumentOrder> &epochs, uint64_t firstEpoch,
                       uint64_t epochTokens, uint64_t offset, uint64_t count, Prefix prefix, Tokens tokens,
                       Boundary boundary) {
  const RootStream &root = view.root();
  uint64_t epoch = offset / epochTokens - firstEpoch;
  uint64_t within = offset % epochTokens;
  assert(epoch < epochs.size() && "window outside the epochs ordered for this reader");
  const DocumentOrder *order = &epochs[epoch];
  size_t pos = std::upper_bound(order->Ends.begin(), order->Ends.end(), within) - order->Ends.begin();
  uint64_t inDoc = within - (pos ? order->Ends[pos - 1] : 0); // counts the control token
  uint64_t done = 0;
  while (true) {
    const uint32_t document = order->Documents[pos];
    const std::optional<uint32_t> control = view.prefix(document);
    const uint64_t head = control ? 1 : 0;
    if (inDoc < head) {
      prefix(done++, *control);
      if (done == count)
        return;
      inDoc = head;
    }
    TokenSpan doc = root.tokens(document);
    uint64_t len = doc.size();
    if (inDoc - head < len) {
      uint64_t n = std::min(len - (inDoc - head), count - done);
      tokens(doc, inDoc - head, n, done, document);
      done += n;
    }
    if (done == count)
      return;
    boundary(done++); // the end-of-text token
    if (done == count)
      return;
    inDoc = 0;
    if (++pos == order->Documents.size()) {
      pos = 0;
      ++order;
      assert(order != epochs.data() + epochs.size() && "window outside the epochs ordered for this reader");
    }
  }
}

void WindowReader::read(uint64_t offset, uint64_t count, uint32_t *out,
                        std::vector<uint32_t> &documentStarts) const {
  const uint32_t eot = View->root().eot();
  documentStarts.push_back(0);
  walkWindow(
      *View, Epochs, FirstEpoch, EpochTokens, offset, count, [&](uint64_t at, uint32_t token) { out[at] = token; },
      [&](const TokenSpan &doc, uint64_t from, uint64_t n, uint64_t at, uint32_t) {
        copyTokens(doc, from, n, out + at);
      },
      [&](uint64_t at) {
        out[at] = eot;
        if (at + 1 < count)
          documentStarts.push_back(static_cast<uint32_t>(at + 1));
      });
}

void WindowReader::forEachRun(uint64_t offset, uint64_t count,
                              llvm::function_ref<void(const TokenSpan &, uint64_t, uint64_t)> run) const {
  walkWindow(
      *View, Epochs, FirstEpoch, EpochTokens, offset, count, [](uint64_t, uint32_t) {},
      [&](const TokenSpan &doc, uint64_t from, uint64_t n, uint64_t, uint32_t) { run(doc, from, n); },
      [](uint64_t) {});
}

void WindowReader::maskPrefixes(uint64_t offset, uint64_t count, std::vector<uint8_t> &lossMask) const {
  walkWindow(
      *View, Epochs, FirstEpoch, EpochTokens, offset, count,
      [&](uint64_t at, uint32_t) {
        if (at > 0)
          lossMask[at - 1] = 0;
      },
      [](const TokenSpan &, uint64_t, uint64_t, uint64_t, uint32_t) {}, [](uint64_t) {});
}

void WindowReader::keepResponses(uint64_t offset, uint64_t count, llvm::ArrayRef<uint32_t> promptTokens,
                                 std::vector<uint8_t> &lossMask) const {
  // Window position p > 0 holds the target of mask entry p - 1. A document cut by the
  // window's start is not scored: its prompt is out of view.
  std::vector<uint8_t> keep(lossMask.size(), 0);
  bool whole = false; // the last run of tokens is the start of its document
  walkWindow(
      *View, Epochs, FirstEpoch, EpochTokens, offset, count, [](uint64_t, uint32_t) {},
      [&](const TokenSpan &, uint64_t from, uint64_t n, uint64_t at, uint32_t doc) {
        whole = from == 0;
        for (uint64_t k = whole ? std::max<uint64_t>(promptTokens[doc], 1) : n; k < n; ++k)
          keep[at + k - 1] = 1;
      },
      [&](uint64_t at) {
        if (whole && at > 0)
          keep[at - 1] = 1;
        whole = false;
      });
  for (size_t t = 0; t < lossMask.size(); ++t)
    lossMask[t] &= keep[t];
}

std::optional<std::vector<uint32_t>> mixtape::data::promptLengths(const RootStream &root) {
  if (!llvm::is_contained(root.columns(), plan::kPromptTokensColumn))
    return std::nullopt;
  std::vector<uint32_t> lengths(root.numDocuments(), 0);
  for (size_t k = 0; k < root.datasets().size(); ++k) {
    const MetadataTable *table = root.datasets()[k]->metadata();
    std::optional<size_t> column = table ? table->findColumn(plan::kPromptTokensColumn) : std::nullopt;
    if (!column)
      continue;
    uint64_t first = root.firstDocument(k);
    for (uint64_t row = 0; row < table->numRows(); ++row) {
      float n = table->number(*column, row);
      if (n > 0) // NaN: no prompt
        lengths[first + row] = static_cast<uint32_t>(n);
    }
  }
  return lengths;
}

//===----------------------------------------------------------------------===//
// Untie-the-Knots
//===----------------------------------------------------------------------===//

void mixtape::data::untieKnots(const plan::UntieKnots &params, uint64_t seed, uint32_t knot, Sample &sample) {
  struct Chunk {
    uint32_t Piece, Begin, End; ///< source positions [begin, end)
    bool First;                 ///< the first chunk of its piece: no knot before it
  };
  const std::vector<uint32_t> source = sample.Tokens;
  const uint32_t n = static_cast<uint32_t>(source.size());
  SplitMix64 rng(seed);
  const plan::ChunkProbabilities &probabilities = params.Chunks; // counts in increasing order
  double total = 0;
  for (const auto &[count, p] : probabilities)
    total += p;

  // Cut every document piece of the window into a drawn number of chunks.
  std::vector<Chunk> chunks;
  std::vector<uint32_t> cuts;
  const std::vector<uint32_t> &starts = sample.DocumentStarts;
  for (uint32_t piece = 0; piece < starts.size(); ++piece) {
    uint32_t begin = starts[piece], end = piece + 1 < starts.size() ? starts[piece + 1] : n;
    uint64_t want = 1;
    double u = rng.unit() * total;
    for (const auto &[count, p] : probabilities) {
      want = count;
      if ((u -= p) < 0)
        break;
    }
    uint32_t len = end - begin;
    uint64_t chunkCount = std::clamp<uint64_t>(want, 1, len);
    cuts.clear();
    while (cuts.size() + 1 < chunkCount) {
      uint32_t at = begin + 1 + static_cast<uint32_t>(rng.below(len - 1));
      if (!llvm::is_contained(cuts, at))
        cuts.push_back(at);
    }
    llvm::sort(cuts);
    uint32_t from = begin;
    for (uint32_t at : cuts) {
      chunks.push_back({piece, from, at, from == begin});
      from = at;
    }
    chunks.push_back({piece, from, end, from == begin});
  }

  // The knotted window is n + knots tokens; take the excess off the end of the source: a
  // trailing knotted chunk first rejoins its predecessor (drops a knot, loses no token),
  // otherwise the last token goes. The window stays exactly n tokens.
  uint64_t excess = llvm::count_if(chunks, [](const Chunk &c) { return !c.First; });
  while (excess > 0) {
    Chunk &last = chunks.back();
    if (!last.First) {
      uint32_t end = last.End;
      chunks.pop_back();
      chunks.back().End = end;
    } else if (last.End - last.Begin > 1) {
      --last.End;
    } else {
      chunks.pop_back();
    }
    --excess;
  }

  // Shuffle the chunks; keep_order keeps each document's chunks in their relative order
  // (the shuffle then only chooses how the documents interleave).
  std::vector<uint32_t> order(chunks.size());
  for (uint32_t i = 0; i < order.size(); ++i)
    order[i] = i;
  for (size_t i = order.size(); i > 1; --i)
    std::swap(order[i - 1], order[rng.below(i)]);
  if (params.KeepOrder) {
    std::vector<std::vector<uint32_t>> ofPiece(starts.size());
    for (uint32_t c = 0; c < chunks.size(); ++c)
      ofPiece[chunks[c].Piece].push_back(c);
    std::vector<size_t> next(starts.size(), 0);
    for (uint32_t &c : order) {
      uint32_t piece = chunks[c].Piece;
      c = ofPiece[piece][next[piece]++];
    }
  }

  uint32_t at = 0;
  std::fill(sample.LossMask.begin(), sample.LossMask.end(), 1);
  for (uint32_t c : order) {
    const Chunk &chunk = chunks[c];
    if (!chunk.First) {
      sample.Tokens[at] = knot;
      if (at > 0)
        sample.LossMask[at - 1] = 0;
      ++at;
    }
    std::copy(source.begin() + chunk.Begin, source.begin() + chunk.End, sample.Tokens.begin() + at);
    at += chunk.End - chunk.Begin;
  }
  assert(at == n && "a knotted window has the length of the window");
  sample.DocumentStarts.assign(1, 0);
}

//===----------------------------------------------------------------------===//
// Train nodes
//===----------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<TrainSamples>> TrainSamples::open(const TrainNodeData &node, DataSources &sources) {
  auto fail = [&](const llvm::Twine &message) { return fileError("train node", message); };
  if (node.SeqLen == 0)
    return fail("seq_len is 0");
  if (node.Streams.size() != node.Mixture.Streams.size())
    return fail("the mixture has " + llvm::Twine(node.Mixture.Streams.size()) + " streams but the node gives " +
                llvm::Twine(node.Streams.size()));
  if (node.Streams.size() > 255)
    return fail("more than 255 streams in one mixture");
  if (node.End < node.Begin || node.End - node.Begin >= (uint64_t(1) << 32))
    return fail("bad sample range [" + llvm::Twine(node.Begin) + ", " + llvm::Twine(node.End) + ")");

  std::unique_ptr<TrainSamples> samples(new TrainSamples());
  samples->SeqLen = node.SeqLen;
  uint64_t n = node.End - node.Begin;
  plan::Blender blender(node.Mixture, node.SeqLen);
  blender.skipTo(node.Begin);
  samples->Taken.assign(node.Streams.size(), 0);
  samples->StreamOf.resize(n);
  samples->IndexOf.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    size_t s = blender.next();
    samples->StreamOf[i] = static_cast<uint8_t>(s);
    samples->IndexOf[i] = static_cast<uint32_t>(samples->Taken[s]++);
  }

  for (size_t s = 0; s < node.Streams.size(); ++s) {
    const NodeStream &spec = node.Streams[s];
    if (spec.Name != node.Mixture.Streams[s])
      return fail("stream " + llvm::Twine(s) + " is '" + spec.Name + "' but the mixture's is '" +
                  node.Mixture.Streams[s] + "'");
    Source source;
    source.Cursor = spec.Cursor;
    if (samples->Taken[s] > 0) {
      llvm::Expected<const StreamView *> view = sources.view(spec.Root, spec.Name, spec.Selection);
      if (!view)
        return view.takeError();
      source.View = *view;
      uint64_t epochTokens = source.View->trainTokens();
      if (epochTokens == 0)
        return source.View->noDocuments();
      uint64_t last = spec.Cursor + samples->Taken[s] * node.SeqLen; // the last token read
      source.Reader = std::make_unique<WindowReader>(*source.View, spec.Cursor / epochTokens, last / epochTokens);
      if (node.Objective == plan::Objective::SFT) {
        std::optional<std::vector<uint32_t>> prompts = promptLengths(source.View->root());
        if (!prompts)
          return fileError("stream '" + spec.Name + "'", "an sft node trains on responses, but its documents have no "
                                                         "prompts (no metadata column '" +
                                                             plan::kPromptTokensColumn + "')");
        if (spec.Transform)
          return fileError("stream '" + spec.Name + "'",
                           "untie_knots shuffles documents apart, which an sft node's prompt/response masks cannot do");
        if (source.View->hasPrefixes())
          return fileError("stream '" + spec.Name + "'",
                           "control tokens shift every prompt by a token, which an sft node's masks do not follow");
        source.PromptTokens = std::move(*prompts);
      }
      if (spec.Transform) {
        llvm::Expected<std::unique_ptr<Tokenizer>> tokenizer = createTokenizer(source.View->root().tokenizer());
        std::optional<uint32_t> knot = tokenizer ? (*tokenizer)->knot() : std::nullopt;
        if (!tokenizer)
          llvm::consumeError(tokenizer.takeError());
        if (!knot)
          return fileError("stream '" + spec.Name + "'",
                           "untie_knots needs a knot token, and tokenizer '" + source.View->root().tokenizer() +
                               "' has none");
        source.Transform = spec.Transform;
        source.Knot = *knot;
        source.TransformSeed = mixSeed(mixSeed(sources.seed(), source.View->root().fingerprintSeed()),
                                       XXH3_64bits("untie_knots", 11));
      }
    }
    samples->Streams.push_back(std::move(source));
  }
  return samples;
}

void TrainSamples::read(uint64_t i, Sample &out) const {
  uint32_t s = StreamOf[i];
  const Source &source = Streams[s];
  out.Stream = s;
  out.Cursor = source.Cursor + uint64_t(IndexOf[i]) * SeqLen;
  out.Tokens.resize(SeqLen + 1);
  out.LossMask.assign(SeqLen, 1);
  out.DocumentStarts.clear();
  source.Reader->read(out.Cursor, SeqLen + 1, out.Tokens.data(), out.DocumentStarts);
  if (!source.PromptTokens.empty())
    source.Reader->keepResponses(out.Cursor, SeqLen + 1, source.PromptTokens, out.LossMask);
  if (source.View->hasPrefixes())
    source.Reader->maskPrefixes(out.Cursor, SeqLen + 1, out.LossMask);
  if (source.Transform)
    untieKnots(*source.Transform, mixSeed(source.TransformSeed, out.Cursor), source.Knot, out);
}

std::vector<uint64_t> TrainSamples::endCursors() const {
  std::vector<uint64_t> cursors;
  for (size_t s = 0; s < Streams.size(); ++s)
    cursors.push_back(Streams[s].Cursor + Taken[s] * SeqLen);
  return cursors;
}

//===----------------------------------------------------------------------===//
// Validation
//===----------------------------------------------------------------------===//

llvm::Expected<std::unique_ptr<ValSet>> ValSet::open(const NodeStream &stream, plan::SplitKind split, uint64_t seqLen,
                                                     uint64_t maxTokens, DataSources &sources) {
  if (seqLen == 0)
    return fileError("eval of stream '" + stream.Name + "'", "seq_len is 0");
  llvm::Expected<const StreamView *> view = sources.view(stream.Root, stream.Name, stream.Selection);
  if (!view)
    return view.takeError();
  std::unique_ptr<ValSet> set(new ValSet());
  set->View = *view;
  set->SeqLen = seqLen;
  DocumentOrder order = set->View->evalOrder(split);
  set->SplitTokens = order.tokens();
  if (set->SplitTokens < 2)
    return split == plan::SplitKind::Val
               ? fileError("stream '" + stream.Name + "'",
                           "no held-out documents to evaluate on (val = " + std::to_string(stream.Root.Val) + ")")
               : set->View->noDocuments();
  set->Budget = set->SplitTokens - 1;
  if (maxTokens)
    set->Budget = std::min(set->Budget, maxTokens);
  set->Windows = (set->Budget + seqLen - 1) / seqLen;
  set->Reader = std::make_unique<WindowReader>(WindowReader::once(*set->View, std::move(order)));
  set->Targets = set->Budget;
  std::optional<std::vector<uint32_t>> prompts = promptLengths(set->View->root());
  if (prompts && set->View->hasPrefixes())
    return fileError("stream '" + stream.Name + "'",
                     "control tokens shift every prompt by a token, which the eval's response masks do not follow");
  if (prompts)
    set->PromptTokens = std::move(*prompts);
  if (prompts || set->View->hasPrefixes()) {
    Sample window;
    set->Targets = 0;
    for (uint64_t i = 0; i < set->Windows; ++i) {
      set->sample(i, window);
      set->Targets += static_cast<uint64_t>(llvm::count(window.LossMask, 1));
    }
  }
  return set;
}

void ValSet::sample(uint64_t i, Sample &out) const {
  uint64_t offset = i * SeqLen;
  uint64_t available = std::min(SeqLen + 1, SplitTokens - offset);
  out.Stream = 0;
  out.Cursor = offset;
  out.Tokens.resize(SeqLen + 1);
  out.DocumentStarts.clear();
  Reader->read(offset, available, out.Tokens.data(), out.DocumentStarts);
  std::fill(out.Tokens.begin() + available, out.Tokens.end(), View->root().eot());
  out.LossMask.resize(SeqLen);
  for (uint64_t t = 0; t < SeqLen; ++t)
    out.LossMask[t] = offset + t + 1 <= Budget;
  if (!PromptTokens.empty())
    Reader->keepResponses(offset, available, PromptTokens, out.LossMask);
  if (View->hasPrefixes())
    Reader->maskPrefixes(offset, available, out.LossMask);
}
