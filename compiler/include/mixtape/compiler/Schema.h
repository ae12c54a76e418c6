//===- Schema.h - the keys a recipe may contain ---------------*- C++ -*-===//
//
// grammar/keys.def lists every section and key; this is its C++ face. checkSchema walks a
// parsed document and reports unknown sections and keys (with did-you-mean), missing
// required keys and values of the wrong TOML type, before any meaning is given to them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/compiler/RecipeAST.h"

#include <optional>

namespace mixtape {

enum class SectionId {
#define SECTION(ID, PATH, KIND, DOC) ID,
#include "keys.def"
};

enum class SectionKind { Table, TableOfTables, ArrayOfTables };

enum class ValueType {
  Name, Text, Path, Integer, Count, Real, Bool, Reals, Betas,
  Tokens, Batch, SeqLen, Position, Fraction,
  Mixture, Schedule, Predicate, Transform, Combine,
  Family, Attention, ShardFormat, Eod, OptimizerKind, OptimizerEdge, NewTokenInit, MergeMethod, OnNonFinite, DistillKind, Objective, Shard, ActivationCheckpointing, ByteSize,
  Init, Tokenizer, CodeList, NameList, EvalStreams, SweepKey, Labels, TaskKind, Texts,
  ModelRef, ModelRefs, GroupScales,
  // Types whose value is a table described by a section of its own.
  Edge, Optimizer, Checkpoint, Units, AblationTrain, During, Lora, Grow, Distill,
};

enum class KeyFlags { Required, Optional, Inherited };

struct KeyInfo {
  SectionId Section;
  llvm::StringRef Name;
  ValueType Type;
  KeyFlags Flags;
  llvm::StringRef Doc;
};

struct SectionInfo {
  SectionId Id;
  llvm::StringRef Path; ///< "stage", "stage.after", ...
  SectionKind Kind;
  llvm::StringRef Doc;
};

/// A DEFAULT row of keys.def: its value as written there (Defaults.h has it typed).
struct DefaultInfo {
  SectionId Section;
  llvm::StringRef Key;
  llvm::StringRef Spelling;
};

const SectionInfo &sectionInfo(SectionId id);
llvm::ArrayRef<SectionInfo> allSections();
llvm::ArrayRef<KeyInfo> allKeys();
llvm::ArrayRef<DefaultInfo> allDefaults();
const KeyInfo *findKey(SectionId section, llvm::StringRef name);
std::vector<std::string> keyNames(SectionId section);

/// The allowed spellings of an enumerated type (family, attention, ...); empty otherwise.
llvm::ArrayRef<llvm::StringRef> enumChoices(ValueType type);
/// For a table-valued type (Edge, Optimizer, ...), the section describing it.
std::optional<SectionId> subsection(ValueType type);
/// "a quantity of tokens such as \"2B\"", for wrong-type messages.
std::string describeType(ValueType type);

/// Report unknown sections/keys, missing required keys, wrong TOML kinds and enum values
/// that are not among the choices. Keeps going after errors.
void checkSchema(const Value &root, DiagnosticEngine &diags);

/// The same schema as a JSON schema (draft-07), for editors: grammar/recipe.schema.json is
/// its output, and a test checks that it still is.
void writeJSONSchema(llvm::raw_ostream &os);

} // namespace mixtape
