//===- PlanJSON.h - the plan as JSON, both ways ------------------*- C++ -*-===//
//
// Written and read from PlanKeys.def: keys in table order, numbers in shortest round-trip
// form. The reader is strict: a missing, extra or mistyped key, an input that is not an
// earlier node, a mixture whose rows do not fit its streams... is a malformed-plan error
// naming the node and the key path, never a default.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/plan/Plan.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <string>

namespace mixtape::plan {

/// The plan as plan.json holds it (indented, a final newline).
void writePlan(const Plan &plan, llvm::raw_ostream &os);
std::string planText(const Plan &plan);

/// One node as the plan holds it: what its run directory's node.json keeps.
std::string nodeText(const Plan &plan, const Node &node);
/// A node's settings as compact JSON, streams by name: equal settings, equal text.
std::string settingsKey(const Plan &plan, const Node &node);
/// A node's settings and its exec, indented: what `mixtape plan --explain` shows.
std::string settingsText(const Plan &plan, const Node &node);
std::string execText(const Plan &plan, const Node &node);

/// Reads a plan; errors start with `file`. A plan of another format version is refused
/// with both versions named.
llvm::Expected<Plan> parsePlan(llvm::StringRef text, llvm::StringRef file);
llvm::Expected<Plan> readPlanFile(llvm::StringRef path);

/// Stream name -> identity (what the stream is, without its name): see streamIdentity.
using StreamIdentities = std::map<std::string, std::string>;

/// "stream:<sha256>" of a stream's data fingerprint, its parent's identity (a derived
/// stream), split, filter and transform: equal for two streams that hold the same
/// documents, whatever their names.
std::string streamIdentity(const Stream &stream, llvm::StringRef fingerprint, llvm::StringRef parentIdentity = "");

/// SHA-256 (hex) of a node's hash input: the canonical JSON of { format_version, kind,
/// semantics_version, settings (stream names replaced by `identities`), inputs (their
/// hashes, from `plan`), data (the identities of `dataStreams`) }. Names and exec
/// settings are not in it.
std::string nodeHash(const Plan &plan, const Node &node, const StreamIdentities &identities,
                     llvm::ArrayRef<std::string> dataStreams);

} // namespace mixtape::plan
