//===- Environment.h - what planning may learn about data and checkpoints -*- C++ -*-===//
//
// The compiler never reads shards, tokenizers or checkpoints itself (it depends on LLVM
// Support and TOML++ only). `mixtape plan` hands it the runtime's readers behind this
// interface (data::ShardCatalog), so every file format has one reader; tests hand it
// fakes. Streams are named in a plan under construction: its `RecipeDir`, `Seed` and
// `Streams` are set. Absent data is not an error: it makes the plan provisional.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mixtape::plan {

/// The metadata column of a document's prompt length in tokens: `mixtape data prepare`
/// writes it for JSONL lines with "prompt" and "response"; sft stages train on the rest.
inline constexpr llvm::StringLiteral kPromptTokensColumn = "prompt_tokens";

/// The byte tokenizer's reserved ids a stream's control tokens (Korbak et al. 2023) may use,
/// by the names it decodes them to: the compiler checks a recipe's tokens against them, the
/// tokenizer decodes with them.
struct ByteControlToken {
  llvm::StringLiteral Text;
  uint32_t Id;
};
inline constexpr ByteControlToken kByteControlTokens[] = {
    {"<|good|>", 259}, {"<|bad|>", 260}, {"<|261|>", 261}, {"<|262|>", 262}, {"<|263|>", 263}};

struct StreamStats {
  std::string Fingerprint; ///< content hash of the root stream's shards (from manifests)
  /// After the train/val split by document hash and the stream's filters; tokens include
  /// one end-of-document token per document.
  uint64_t TrainDocuments = 0, TrainTokens = 0;
  uint64_t ValDocuments = 0, ValTokens = 0;
  uint64_t VocabSize = 0;  ///< the manifests' tokenizer vocabulary
  std::string Tokenizer;   ///< the manifests' tokenizer id, e.g. "bytes-v1"
  std::vector<std::string> Columns; ///< the metadata columns of the root's datasets, sorted
};

/// The documents of a stream that hold one value of a metadata column, after the stream's
/// split and filters (tokens include one end-of-document token per document).
struct ColumnGroup {
  ColumnValue Value;
  uint64_t TrainDocuments = 0, TrainTokens = 0;
  uint64_t ValDocuments = 0, ValTokens = 0;
};

/// Training documents of a stream that other streams also hold.
struct SharedDocuments {
  uint64_t Documents = 0, Tokens = 0; ///< tokens include one end-of-document token per document
};

/// A stream's documents grouped by a metadata column: `by = column` ablation units.
struct ColumnGroups {
  /// Every metadata column of the stream's datasets, sorted (for did-you-mean).
  std::vector<std::string> Columns;
  /// One group per value some training document holds, in ColumnValue order; documents
  /// without a value (or in a dataset without the column) form the missing group. Empty
  /// when no dataset has the column.
  std::vector<ColumnGroup> Groups;
};

/// A Hugging Face checkpoint folder, as its config.json and weights headers say.
struct CheckpointInfo {
  std::string ConfigPath;          ///< <folder>/config.json, for messages
  std::string ModelType;           ///< config.json's model_type as written
  std::optional<ModelFamily> Family; ///< nullopt: a model_type Mixtape does not build
  uint64_t Vocab = 0, Layers = 0, DModel = 0, Heads = 0, KVHeads = 0, Ffn = 0;
  uint64_t MaxPositions = 0;       ///< gpt2's position table
  double RopeTheta = 10000, RotaryPct = 1;
  /// "sha256:<hex>" over config.json and every weights file's name, size and safetensors
  /// header (never the weights); empty when the folder has no weights.
  std::string Fingerprint;
};

/// A downstream task's files, as the runtime will score them.
struct TaskStats {
  std::string Fingerprint;     ///< of the item and few-shot files (data::taskFingerprint)
  uint64_t Items = 0;          ///< items scored, after `limit`
  uint64_t Tokens = 0;         ///< tokens its forward passes read, by the plan's tokenizer
};

class Environment {
public:
  virtual ~Environment() = default;
  /// Stats of stream `name` of `plan` (root or derived); nullopt when its data is absent.
  /// An error means present but unreadable (named file and byte), which stops planning.
  virtual llvm::Expected<std::optional<StreamStats>> streamStats(const Plan &plan, llvm::StringRef name) = 0;
  /// Documents of `val`'s held-out split that also occur (by document hash) in `train`'s
  /// training split: evaluation leakage. nullopt when either stream's data is absent.
  virtual llvm::Expected<std::optional<uint64_t>> leakedDocuments(const Plan &plan, llvm::StringRef val,
                                                                  llvm::StringRef train) = 0;
  /// Training documents of stream `name` that are training documents of any of `others`
  /// too (by document hash: replay means text the model has read). nullopt when the data
  /// of any of them is absent.
  virtual llvm::Expected<std::optional<SharedDocuments>> sharedDocuments(const Plan &plan, llvm::StringRef name,
                                                                        llvm::ArrayRef<std::string> others) = 0;
  /// Stream `name`'s documents grouped by their value of `column`; nullopt when its data
  /// is absent.
  virtual llvm::Expected<std::optional<ColumnGroups>> groupBy(const Plan &plan, llvm::StringRef name,
                                                             llvm::StringRef column) = 0;
  /// The checkpoint in `folder`; nullopt when it has no config.json.
  virtual llvm::Expected<std::optional<CheckpointInfo>> checkpoint(llvm::StringRef folder) = 0;
  /// The vocabulary of a Hugging Face tokenizer.json (its largest id + 1); nullopt when
  /// the file is absent.
  virtual llvm::Expected<std::optional<uint64_t>> tokenizerVocabulary(llvm::StringRef file) = 0;
  /// The tokens of a Hugging Face tokenizer.json by id, as the file writes them (the
  /// model's vocabulary and the added tokens; "" for an id it skips); nullopt when the file
  /// is absent.
  virtual llvm::Expected<std::optional<std::vector<std::string>>> tokenizerTokens(llvm::StringRef file) = 0;
  /// The task `task` of `plan` (its files relative to the plan's RecipeDir, its tokens by
  /// the plan's model tokenizer); nullopt when the item file is absent. A malformed file
  /// is an error naming its line.
  virtual llvm::Expected<std::optional<TaskStats>> taskStats(const Plan &plan, const Task &task) = 0;
  /// Items of `task` whose text (the context alone, or context, delimiter and target) is a
  /// training document of stream `train` (by document hash of its tokens): a score on
  /// them measures recall, not the skill. nullopt when the file or the data is absent.
  virtual llvm::Expected<std::optional<uint64_t>> taskLeakage(const Plan &plan, const Task &task,
                                                              llvm::StringRef train) = 0;
};

/// The file or folder a path written in a recipe names: itself when absolute, else
/// relative to the recipe's folder `baseDir`.
std::string resolvePath(llvm::StringRef baseDir, llvm::StringRef path);

} // namespace mixtape::plan
