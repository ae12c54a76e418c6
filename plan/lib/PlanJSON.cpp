//===- PlanJSON.cpp - the plan as JSON, from PlanKeys.def -----------------===//
//
// One writer and one reader, generic over the structs of PlanKeys.def (visitFields) and
// the few types with a JSON form of their own (a node's inputs, step ranges, eval splits,
// column values, predicates). The writer streams through llvm::json::OStream with numbers
// in shortest round-trip form; the same writer, compact and with stream names replaced
// by their identities, makes the hash input.
//
//===----------------------------------------------------------------------===//
#include "mixtape/plan/PlanJSON.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"
#include "mixtape/support/JSON.h"
#include "mixtape/support/Suggest.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SHA256.h"

#include <cmath>
#include <set>
#include <type_traits>

using namespace mixtape;
using namespace mixtape::plan;
namespace json = llvm::json;

namespace {

template <typename T> struct IsOptional : std::false_type {};
template <typename T> struct IsOptional<std::optional<T>> : std::true_type {};

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

class Writer {
public:
  /// `identities`: hash mode, stream names written as their identities.
  Writer(llvm::raw_ostream &os, unsigned indent, const Plan &plan, const StreamIdentities *identities = nullptr)
      : Out(os, indent), Context(plan), Identities(identities) {}

  json::OStream Out;

  void write(bool v, Role = Role::Plain) { Out.value(v); }
  void write(uint64_t v, Role = Role::Plain) { Out.value(v); }
  void write(double v, Role = Role::Plain) {
    // JSON has no NaN or infinity: a plan never holds one, and null makes a reader fail.
    if (std::isfinite(v))
      Out.rawValue(formatNumber(v));
    else
      Out.value(nullptr);
  }
  void write(const std::string &s, Role role = Role::Plain) { Out.value(name(s, role)); }
  template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0> void write(E e, Role = Role::Plain) {
    Out.value(enumName(e));
  }
  template <typename T> void write(const std::vector<T> &items, Role role = Role::Plain) {
    Out.array([&] {
      for (const T &item : items)
        write(item, role);
    });
  }
  template <typename T> void write(const std::map<std::string, T> &entries, Role role = Role::Plain) {
    // Identities may reorder the keys: the hash input sorts them again.
    std::map<std::string, const T *> sorted;
    for (const auto &[key, value] : entries)
      sorted[name(key, role)] = &value;
    Out.object([&] {
      for (const auto &[key, value] : sorted)
        Out.attributeBegin(key), write(*value), Out.attributeEnd();
    });
  }
  template <typename T> void write(const std::map<uint64_t, T> &entries, Role = Role::Plain) {
    Out.object([&] {
      for (const auto &[key, value] : entries)
        Out.attributeBegin(std::to_string(key)), write(value), Out.attributeEnd();
    });
  }
  template <typename T, std::enable_if_t<IsPlanStruct<T>, int> = 0> void write(const T &s, Role = Role::Plain) {
    Out.object([&] { fields(s); });
  }
  /// The fields of a plan struct into the object being written.
  template <typename T> void fields(const T &s) {
    visitFields(s, [&](const char *key, const auto &member, Role role) {
      using M = std::decay_t<decltype(member)>;
      if (Identities && role == Role::Location)
        return;
      if constexpr (IsOptional<M>::value) {
        if (member)
          Out.attributeBegin(key), write(*member, role), Out.attributeEnd();
      } else {
        Out.attributeBegin(key), write(member, role), Out.attributeEnd();
      }
    });
  }

  void write(const NodeRef &ref, Role = Role::Plain) {
    Out.value(Context.Nodes[ref.Index].Name + (ref.Average ? kAverageSuffix.str() : ""));
  }
  void write(const StepRange &steps, Role = Role::Plain) {
    Out.array([&] { write(steps.Begin), write(steps.End); });
  }
  void write(const EvalSplit &split, Role = Role::Plain) {
    Out.array([&] { write(split.Stream, Role::StreamNames), write(split.Split); });
  }
  void write(const ColumnValue &value, Role = Role::Plain) {
    switch (value.ValueKind) {
    case MetadataValue::Kind::Missing:
      return Out.value(nullptr);
    case MetadataValue::Kind::Number:
      return write(value.Number);
    case MetadataValue::Kind::String:
      return Out.value(value.String);
    }
  }
  void write(const Predicate &p, Role = Role::Plain) {
    if (p.empty())
      return Out.object([&] { Out.attribute("op", "true"); });
    writeTerm(p, static_cast<uint32_t>(p.terms().size() - 1));
  }
  void write(const Node &node, Role = Role::Plain) {
    Out.object([&] {
      fields(static_cast<const NodeHeader &>(node));
      std::visit([&](const auto &payload) { fields(payload); }, node.Payload);
    });
  }

private:
  std::string name(const std::string &s, Role role) const {
    if (role != Role::StreamNames || !Identities)
      return s;
    auto it = Identities->find(s);
    return it == Identities->end() ? s : it->second;
  }

  void writeTerm(const Predicate &p, uint32_t index) {
    using Op = Predicate::Op;
    const Predicate::Term &t = p.terms()[index];
    static const char *const kOps[] = {"true", "false", "and", "or", "not", "==", "!=", "<", "<=", ">", ">=", "in"};
    Out.object([&] {
      Out.attribute("op", kOps[static_cast<size_t>(t.Operation)]);
      switch (t.Operation) {
      case Op::True:
      case Op::False:
        return;
      case Op::And:
      case Op::Or:
      case Op::Not:
        Out.attributeArray("args", [&] {
          writeTerm(p, t.Lhs);
          if (t.Operation != Op::Not)
            writeTerm(p, t.Rhs);
        });
        return;
      case Op::In:
        Out.attribute("column", p.columnNames()[t.Column]);
        Out.attributeArray("values", [&] {
          for (uint32_t i = 0; i < t.NumCount; ++i)
            write(p.numbers()[t.NumBegin + i]);
          for (uint32_t i = 0; i < t.StrCount; ++i)
            Out.value(p.strings()[t.StrBegin + i]);
        });
        return;
      default:
        Out.attribute("column", p.columnNames()[t.Column]);
        Out.attributeBegin("value");
        if (t.StringLiteral)
          Out.value(p.strings()[t.StrBegin]);
        else
          write(t.Number);
        Out.attributeEnd();
      }
    });
  }

  const Plan &Context;
  const StreamIdentities *Identities;
};

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

class Reader {
public:
  /// The first problem, "malformed plan: node 'X': settings.lr: ..." (empty: none).
  std::string Problem;

  bool read(const json::Value &v, bool &out) {
    if (auto b = v.getAsBoolean())
      return out = *b, true;
    return fail("expected true or false");
  }
  bool read(const json::Value &v, uint64_t &out) {
    if (auto n = v.getAsUINT64())
      return out = *n, true;
    return fail("expected a non-negative integer");
  }
  bool read(const json::Value &v, double &out) {
    if (auto n = v.getAsNumber())
      return out = *n, true;
    return fail("expected a number");
  }
  bool read(const json::Value &v, std::string &out) {
    if (auto s = v.getAsString())
      return out = s->str(), true;
    return fail("expected a string");
  }
  template <typename E, std::enable_if_t<std::is_enum_v<E>, int> = 0> bool read(const json::Value &v, E &out) {
    auto s = v.getAsString();
    std::optional<E> e = s ? enumFromName<E>(*s) : std::nullopt;
    if (e)
      return out = *e, true;
    std::vector<std::string> names;
    for (const char *n : EnumNames<E>::Names)
      names.push_back(std::string("\"") + n + "\"");
    return fail("expected one of " + llvm::join(names, ", "));
  }
  template <typename T> bool read(const json::Value &v, std::vector<T> &out) {
    const json::Array *a = v.getAsArray();
    if (!a)
      return fail("expected an array");
    out.assign(a->size(), T());
    for (size_t i = 0; i < a->size(); ++i) {
      Path.push_back("[" + std::to_string(i) + "]");
      bool ok = read((*a)[i], out[i]);
      Path.pop_back();
      if (!ok)
        return false;
    }
    return true;
  }
  template <typename T> bool read(const json::Value &v, std::map<std::string, T> &out) {
    const json::Object *o = v.getAsObject();
    if (!o)
      return fail("expected an object");
    out.clear();
    for (const auto &[key, value] : *o) {
      Path.push_back(key.str());
      bool ok = read(value, out[key.str()]);
      Path.pop_back();
      if (!ok)
        return false;
    }
    return true;
  }
  template <typename T> bool read(const json::Value &v, std::map<uint64_t, T> &out) {
    const json::Object *o = v.getAsObject();
    if (!o)
      return fail("expected an object");
    out.clear();
    for (const auto &[key, value] : *o) {
      uint64_t k = 0;
      if (llvm::StringRef(key).getAsInteger(10, k))
        return fail("key '" + key.str() + "' is not a non-negative integer");
      Path.push_back(key.str());
      bool ok = read(value, out[k]);
      Path.pop_back();
      if (!ok)
        return false;
    }
    return true;
  }
  template <typename T, std::enable_if_t<IsPlanStruct<T>, int> = 0> bool read(const json::Value &v, T &out) {
    return readStruct(v, out);
  }
  template <typename T> bool readStruct(const json::Value &v, T &out) {
    const json::Object *o = v.getAsObject();
    if (!o)
      return fail("expected an object");
    llvm::StringSet<> known;
    return fields(*o, out, known) && onlyKnownKeys(*o, known) && check(out);
  }

  /// An exec of plans before `shard` and `activation_checkpointing` has `zero1` instead:
  /// read as shard "optimizer" (true) or "none", without checkpointing.
  bool read(const json::Value &v, TrainExec &out) {
    const json::Object *o = v.getAsObject();
    if (!o || !o->get("zero1") || o->get("shard") || o->get("activation_checkpointing"))
      return readStruct(v, out);
    json::Object current = *o;
    llvm::Optional<bool> zero1 = current.getBoolean("zero1");
    if (!zero1)
      return readStruct(v, out);
    current.erase("zero1");
    current["shard"] = enumName(*zero1 ? ShardMode::Optimizer : ShardMode::None);
    current["activation_checkpointing"] = 0;
    return readStruct(json::Value(std::move(current)), out);
  }
  bool read(const json::Value &v, NodeRef &out) {
    auto name = v.getAsString();
    if (!name)
      return fail("expected a node name");
    auto it = NodeIndex.find(name->str());
    llvm::StringRef averaged = *name;
    if (it == NodeIndex.end() && averaged.consume_back(kAverageSuffix)) {
      it = NodeIndex.find(averaged.str());
      out.Average = true;
    }
    if (it == NodeIndex.end())
      return fail("'" + *name + "' is not a node before this one");
    out.Index = it->second;
    return true;
  }
  bool read(const json::Value &v, StepRange &out) {
    const json::Array *a = v.getAsArray();
    if (!a || a->size() != 2 || !(*a)[0].getAsUINT64() || !(*a)[1].getAsUINT64() ||
        *(*a)[0].getAsUINT64() > *(*a)[1].getAsUINT64())
      return fail("expected [begin, end] steps, begin <= end");
    out = {*(*a)[0].getAsUINT64(), *(*a)[1].getAsUINT64()};
    return true;
  }
  bool read(const json::Value &v, EvalSplit &out) {
    const json::Array *a = v.getAsArray();
    if (!a || a->size() != 2 || !(*a)[0].getAsString())
      return fail("expected [stream, split]");
    out.Stream = (*a)[0].getAsString()->str();
    Path.push_back("[1]");
    bool ok = read((*a)[1], out.Split);
    Path.pop_back();
    return ok;
  }
  bool read(const json::Value &v, ColumnValue &out) {
    if (v.getAsNull())
      return out = ColumnValue(), true;
    if (auto n = v.getAsNumber())
      return out = ColumnValue{MetadataValue::Kind::Number, *n, {}}, true;
    if (auto s = v.getAsString())
      return out = ColumnValue{MetadataValue::Kind::String, 0, s->str()}, true;
    return fail("expected a number, a string or null");
  }
  bool read(const json::Value &v, Predicate &out) {
    out = Predicate();
    return readTerm(v, out, 0).has_value();
  }
  bool read(const json::Value &v, Node &out) {
    const json::Object *o = v.getAsObject();
    if (!o)
      return fail("expected a node object");
    // Errors inside a node name it (by its place in `nodes` when it has no name).
    auto name = o->getString("name");
    NodeLabel = name ? "node '" + name->str() + "'" : pathText();
    std::vector<std::string> outer = std::move(Path);
    Path.clear();
    llvm::StringSet<> known;
    bool ok = fields(*o, static_cast<NodeHeader &>(out), known) && readPayload(*o, out, known) &&
              onlyKnownKeys(*o, known) && check(out);
    Path = std::move(outer);
    if (!ok)
      return false;
    NodeLabel.clear();
    // Inputs name nodes: a name given twice would resolve them to the wrong one.
    if (!NodeIndex.emplace(out.Name, NodeIndex.size()).second)
      return fail("two nodes are named '" + out.Name + "'");
    return true;
  }

  /// Checks that need a whole plan: streams that exist, hashes of inputs.
  bool check(const Plan &plan);

private:
  /// "settings.lr.phases[1]": the key path so far.
  std::string pathText() const {
    std::string where;
    for (const std::string &segment : Path)
      where += (where.empty() || segment.front() == '[' ? "" : ".") + segment;
    return where;
  }

  bool fail(const llvm::Twine &message) {
    if (!Problem.empty())
      return false;
    std::string where = pathText();
    Problem = "malformed plan: " + NodeLabel + (NodeLabel.empty() || where.empty() ? "" : ": ") + where +
              (NodeLabel.empty() && where.empty() ? "" : ": ") + message.str();
    return false;
  }

  template <typename T> bool fields(const json::Object &o, T &out, llvm::StringSet<> &known) {
    bool ok = true;
    visitFields(out, [&](const char *key, auto &member, Role) {
      using M = std::decay_t<decltype(member)>;
      known.insert(key);
      if (!ok)
        return;
      const json::Value *v = o.get(key);
      if (!v) {
        if constexpr (IsOptional<M>::value)
          member.reset();
        else
          ok = fail(std::string("missing key '") + key + "'" + misspelling(o, key, out, known));
        return;
      }
      Path.push_back(key);
      if constexpr (IsOptional<M>::value)
        ok = read(*v, member.emplace());
      else
        ok = read(*v, member);
      Path.pop_back();
    });
    return ok;
  }

  /// " (misspelled as 'horizn'?)" when `o` has a key close to the missing `key` that is none
  /// of `s`'s nor already `known`; else "".
  template <typename T>
  std::string misspelling(const json::Object &o, llvm::StringRef key, T &s, const llvm::StringSet<> &known) {
    llvm::StringSet<> keys;
    visitFields(s, [&](const char *k, auto &, Role) { keys.insert(k); });
    std::vector<std::string> strays;
    for (const auto &kv : o)
      if (!keys.count(kv.first) && !known.count(kv.first))
        strays.push_back(llvm::StringRef(kv.first).str());
    std::optional<std::string> stray = closestMatch(key, strays);
    return stray ? " (misspelled as '" + *stray + "'?)" : "";
  }

  bool onlyKnownKeys(const json::Object &o, const llvm::StringSet<> &known) {
    for (const auto &kv : o) {
      llvm::StringRef key = kv.first;
      if (known.count(key))
        continue;
      std::vector<std::string> keys;
      for (const auto &k : known)
        keys.push_back(k.getKey().str());
      std::optional<std::string> closest = closestMatch(key, keys);
      return fail("unknown key '" + key.str() + "'" + (closest ? "; did you mean '" + *closest + "'?" : ""));
    }
    return true;
  }

  bool readPayload(const json::Object &o, Node &node, llvm::StringSet<> &known) {
    switch (node.Kind) {
    case NodeKind::Init:
      return fields(o, node.Payload.emplace<InitNode>(), known);
    case NodeKind::Train:
      return fields(o, node.Payload.emplace<TrainNode>(), known);
    case NodeKind::Eval:
      return fields(o, node.Payload.emplace<EvalNode>(), known);
    case NodeKind::Merge:
      return fields(o, node.Payload.emplace<MergeNode>(), known);
    }
    return fail("unknown node kind");
  }

  std::optional<uint32_t> readTerm(const json::Value &v, Predicate &p, unsigned depth) {
    using Op = Predicate::Op;
    static const std::pair<llvm::StringRef, Op> kOps[] = {
        {"true", Op::True}, {"false", Op::False}, {"and", Op::And}, {"or", Op::Or}, {"not", Op::Not}, {"==", Op::Eq},
        {"!=", Op::Ne},     {"<", Op::Lt},        {"<=", Op::Le},   {">", Op::Gt},  {">=", Op::Ge},   {"in", Op::In}};
    const json::Object *o = v.getAsObject();
    auto opName = o ? o->getString("op") : llvm::None;
    const auto *op = opName ? llvm::find_if(kOps, [&](const auto &e) { return e.first == *opName; }) : std::end(kOps);
    if (depth > 64 || op == std::end(kOps)) {
      fail("expected a predicate term {\"op\": ...} (at most 64 deep)");
      return std::nullopt;
    }
    auto keysAre = [&](std::initializer_list<llvm::StringRef> keys) {
      return o->size() == keys.size() && llvm::all_of(keys, [&](llvm::StringRef k) { return o->get(k); });
    };
    auto column = o->getString("column");
    switch (op->second) {
    case Op::True:
    case Op::False:
      if (keysAre({"op"}))
        return p.addConstant(op->second == Op::True);
      break;
    case Op::Not:
    case Op::And:
    case Op::Or: {
      const json::Array *args = o->getArray("args");
      if (!keysAre({"op", "args"}) || !args || args->size() != (op->second == Op::Not ? 1u : 2u))
        break;
      std::optional<uint32_t> lhs = readTerm((*args)[0], p, depth + 1);
      if (!lhs)
        return std::nullopt;
      if (op->second == Op::Not)
        return p.addNot(*lhs);
      std::optional<uint32_t> rhs = readTerm((*args)[1], p, depth + 1);
      if (!rhs)
        return std::nullopt;
      return p.addLogical(op->second, *lhs, *rhs);
    }
    case Op::In: {
      const json::Array *values = o->getArray("values");
      if (!keysAre({"op", "column", "values"}) || !column || !values)
        break;
      std::vector<double> numbers;
      std::vector<std::string> strings;
      for (const json::Value &x : *values) {
        if (auto n = x.getAsNumber())
          numbers.push_back(*n);
        else if (auto s = x.getAsString())
          strings.push_back(s->str());
        else
          return fail("'in' lists numbers and strings"), std::nullopt;
      }
      return p.addIn(*column, std::move(numbers), std::move(strings));
    }
    default: {
      const json::Value *value = o->get("value");
      if (!keysAre({"op", "column", "value"}) || !column)
        break;
      if (auto n = value->getAsNumber())
        return p.addCompare(op->second, *column, *n);
      if (auto s = value->getAsString(); s && (op->second == Op::Eq || op->second == Op::Ne))
        return p.addCompare(op->second, *column, *s);
      break;
    }
    }
    fail("malformed predicate term '" + *opName + "'");
    return std::nullopt;
  }

  // Checks of one struct beyond its keys' types.
  template <typename T> bool check(const T &) { return true; }
  bool check(const Mixture &m) {
    if (m.Streams.empty() || m.Positions.empty() || m.Positions.size() != m.Weights.size())
      return fail("a mixture needs streams, and one row of weights per position");
    if (std::set<std::string>(m.Streams.begin(), m.Streams.end()).size() != m.Streams.size())
      return fail("mixture streams are unique");
    for (size_t i = 0; i < m.Weights.size(); ++i) {
      if (m.Weights[i].size() != m.Streams.size())
        return fail("mixture row " + std::to_string(i) + " needs one weight per stream");
      if (i && !(m.Positions[i - 1] < m.Positions[i]))
        return fail("mixture positions increase");
      // The blend would pick streams by negative or all-zero targets: silently other data.
      if (llvm::any_of(m.Weights[i], [](double w) { return w < 0; }) ||
          llvm::none_of(m.Weights[i], [](double w) { return w > 0; }))
        return fail("mixture row " + std::to_string(i) + " needs weights that are not negative, one of them positive");
    }
    return true;
  }
  bool check(const LRSchedule &s) {
    // learningRate finds a phase by binary search over `begin`; an open-ended phase hides
    // every later one.
    if (s.Phases.empty())
      return fail("a schedule needs a phase");
    for (size_t i = 1; i < s.Phases.size(); ++i)
      if (!s.Phases[i - 1].Length || s.Phases[i].Begin < s.Phases[i - 1].Begin)
        return fail("phases[" + std::to_string(i) + "] begins before phases[" + std::to_string(i - 1) +
                    "], or after one without a length");
    return true;
  }
  bool check(const AblationUnit &u) {
    if ((u.Count && u.Index && u.Seed && *u.Index < *u.Count && !u.By && !u.Value) ||
        (!u.Count && !u.Index && !u.Seed && u.By && u.Value))
      return true;
    return fail("a unit has a count, an index below it and a seed, or a column (by) and a value");
  }
  bool check(const TrainExec &e) {
    if (e.MicroBatch == 0)
      return fail("micro_batch is positive");
    return true;
  }
  bool check(const MergeSettings &s) {
    bool dare = s.Method == MergeMethod::DareLinear || s.Method == MergeMethod::DareTies;
    bool density = dare || s.Method == MergeMethod::Ties;
    if (density != s.Density.has_value() || dare != s.Seed.has_value() ||
        (s.Method == MergeMethod::Slerp) != s.T.has_value())
      return fail("a merge has density (ties, dare_*), seed (dare_*) and t (slerp) exactly when its method uses them");
    return true;
  }
  bool check(const Node &node) {
    size_t inputs = node.Inputs.size();
    // A train node's inputs after the first are models its regularizers read.
    size_t trainInputs = 1;
    if (const TrainNode *t = node.train()) {
      if (t->Settings.Distill)
        trainInputs = std::max<size_t>(trainInputs, t->Settings.Distill->TeacherInput + 1);
      if (t->Settings.L2ToInit)
        trainInputs = std::max<size_t>(trainInputs, t->Settings.L2ToInit->AnchorInput + 1);
    }
    bool fits = node.Kind == NodeKind::Init    ? inputs == 0
                : node.Kind == NodeKind::Merge ? inputs > 0
                : node.Kind == NodeKind::Train ? inputs == trainInputs
                                               : inputs == 1;
    if (!fits)
      return fail("an init node has no inputs, an eval node one, a train node one and those its teacher_input and "
                  "anchor_input name, a merge node some");
    if (node.Dir.empty() || node.Dir == "." || node.Dir == ".." || llvm::StringRef(node.Dir).contains('/') ||
        llvm::StringRef(node.Dir).contains('\\'))
      return fail("dir '" + node.Dir + "' is not a plain name under the run directory");
    if (node.InputHashes.size() != inputs)
      return fail("input_hashes has one hash per input");
    if (const TrainNode *t = node.train()) {
      const TrainSettings &s = t->Settings;
      if (!s.SeqLen || !s.BatchSequences || s.BatchSequences % t->Exec.MicroBatch)
        return fail("seq_len and batch_sequences are positive, and micro_batch divides batch_sequences");
      for (const std::string &stream : s.Mixture.Streams)
        if (!s.Data.Cursors.count(stream) || !s.Data.Samples.count(stream))
          return fail("settings.data has no cursor or sample count for stream '" + stream + "'");
      // Extra entries would change the hash without changing what the node reads.
      for (const StreamCounts *counts : {&s.Data.Cursors, &s.Data.Samples})
        for (const auto &entry : *counts)
          if (!llvm::is_contained(s.Mixture.Streams, entry.first))
            return fail("settings.data names stream '" + entry.first + "', which is not in settings.mixture");
    }
    if (const MergeNode *m = node.merge())
      if (m->Settings.BaseInput && *m->Settings.BaseInput >= inputs)
        return fail("base_input is not one of the merge's inputs");
    return true;
  }

  std::vector<std::string> Path;
  std::string NodeLabel;
  std::map<std::string, size_t> NodeIndex;
};

bool Reader::check(const Plan &plan) {
  auto stream = [&](const std::string &name, const llvm::Twine &where) {
    return plan.Streams.count(name) || fail(where + " names stream '" + name + "', which the plan does not have");
  };
  for (const auto &[name, s] : plan.Streams)
    if (!stream(s.Root, "stream '" + name + "'") || (s.From && !stream(*s.From, "stream '" + name + "'")) ||
        (s.Unit && !stream(s.Unit->Of, "stream '" + name + "'")))
      return false;
  for (const Node &node : plan.Nodes) {
    NodeLabel = "node '" + node.Name + "'";
    for (size_t i = 0; i < node.Inputs.size(); ++i) {
      const Node &input = plan.Nodes[node.Inputs[i].Index];
      if (node.InputHashes[i] != input.Hash)
        return fail("input_hashes[" + std::to_string(i) + "] is not the hash of input '" + input.Name + "'");
      // Every input is a model: the runtime reads its model.safetensors (or its ema.safetensors).
      if (input.Kind == NodeKind::Eval)
        return fail("inputs[" + std::to_string(i) + "]: '" + input.Name + "' is an eval node, which makes no model");
      if (node.Inputs[i].Average && !(input.train() && input.train()->Settings.Ema))
        return fail("inputs[" + std::to_string(i) + "]: '" + input.Name + "' keeps no moving average (ema)");
    }
    if (const TrainNode *t = node.train()) {
      for (const std::string &s : t->Settings.Mixture.Streams)
        if (!stream(s, "settings.mixture"))
          return false;
      for (const auto &[eval, during] : t->Exec.EvalDuring)
        for (const EvalSplit &split : during.Splits)
          if (!stream(split.Stream, "exec.eval_during." + eval + ".splits"))
            return false;
    }
    if (const EvalNode *e = node.eval())
      for (const EvalSplit &split : e->Settings.Splits)
        if (!stream(split.Stream, "settings.splits"))
          return false;
  }
  NodeLabel.clear();
  return true;
}

/// SHA-256 of what is written to it, in hex: hash input is streamed, never built as text.
class HashStream : public llvm::raw_ostream {
public:
  HashStream() { SetBufferSize(1 << 14); }
  std::string hex() {
    flush();
    return llvm::toHex(Sha.final(), /*LowerCase=*/true);
  }

private:
  void write_impl(const char *data, size_t size) override {
    Sha.update(llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(data), size));
    Written += size;
  }
  uint64_t current_pos() const override { return Written; }

  llvm::SHA256 Sha;
  uint64_t Written = 0;
};

/// A string written through a buffer: raw_string_ostream alone appends char by char.
class TextStream : public llvm::raw_string_ostream {
public:
  TextStream(std::string &text) : llvm::raw_string_ostream(text) { SetBufferSize(1 << 14); }
  /// What was written; raw_string_ostream::str() does not flush a buffer.
  std::string &text() {
    flush();
    return str();
  }
};

} // namespace

void mixtape::plan::writePlan(const Plan &plan, llvm::raw_ostream &os) {
  {
    Writer w(os, 2, plan);
    w.write(plan);
  }
  os << "\n";
}

std::string mixtape::plan::planText(const Plan &plan) {
  std::string text;
  TextStream os(text);
  writePlan(plan, os);
  return os.text();
}

std::string mixtape::plan::nodeText(const Plan &plan, const Node &node) {
  std::string text;
  TextStream os(text);
  {
    Writer w(os, 2, plan);
    w.write(node);
  }
  os << "\n";
  return os.text();
}

std::string mixtape::plan::settingsKey(const Plan &plan, const Node &node) {
  std::string text;
  TextStream os(text);
  Writer w(os, 0, plan);
  std::visit([&](const auto &payload) { w.write(payload.Settings); }, node.Payload);
  return os.text();
}

std::string mixtape::plan::settingsText(const Plan &plan, const Node &node) {
  std::string text;
  TextStream os(text);
  Writer w(os, 2, plan);
  std::visit([&](const auto &payload) { w.write(payload.Settings); }, node.Payload);
  return os.text();
}

std::string mixtape::plan::execText(const Plan &plan, const Node &node) {
  std::string text;
  TextStream os(text);
  Writer w(os, 2, plan);
  std::visit([&](const auto &payload) { w.write(payload.Exec); }, node.Payload);
  return os.text();
}

llvm::Expected<Plan> mixtape::plan::parsePlan(llvm::StringRef text, llvm::StringRef file) {
  llvm::Expected<json::Value> root = parseJSON(text, file);
  if (!root)
    return root.takeError();
  const json::Object *o = root->getAsObject();
  if (!o || o->getString("format") != llvm::StringRef(kPlanFormat))
    return fileError(file, "not a Mixtape plan (no \"format\": \"mixtape-plan\")");
  // The version first: an older plan gets this message, not a list of keys it lacks.
  llvm::Optional<int64_t> version = o->getInteger("version");
  if (version != static_cast<int64_t>(kPlanFormatVersion))
    return fileError(file, llvm::formatv("plan format version {0}, this mixtape reads version {1}; plan the recipe "
                                         "again",
                                         version ? std::to_string(*version) : "(none)", kPlanFormatVersion)
                               .str());
  Reader reader;
  Plan plan;
  if (!reader.read(*root, plan) || !reader.check(plan))
    return fileError(file, reader.Problem);
  return plan;
}

llvm::Expected<Plan> mixtape::plan::readPlanFile(llvm::StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fileError(path, "cannot read: " + buffer.getError().message());
  return parsePlan((*buffer)->getBuffer(), path);
}

std::string mixtape::plan::streamIdentity(const Stream &stream, llvm::StringRef fingerprint,
                                          llvm::StringRef parentIdentity) {
  HashStream os;
  {
    Plan none;
    Writer w(os, 0, none);
    w.Out.object([&] {
      w.Out.attribute("fingerprint", fingerprint);
      if (!parentIdentity.empty())
        w.Out.attribute("from", parentIdentity);
      w.Out.attributeBegin("val"), w.write(stream.Val), w.Out.attributeEnd();
      if (stream.Where)
        w.Out.attributeBegin("where"), w.write(*stream.Where), w.Out.attributeEnd();
      if (stream.Transform)
        w.Out.attributeBegin("transform"), w.write(*stream.Transform), w.Out.attributeEnd();
    });
  }
  return "stream:" + os.hex();
}

std::string mixtape::plan::nodeHash(const Plan &plan, const Node &node, const StreamIdentities &identities,
                                    llvm::ArrayRef<std::string> dataStreams) {
  static_assert(std::variant_size_v<decltype(Node::Payload)> == 4, "a new node kind needs a semantics version");
  const uint64_t semantics = node.Kind == NodeKind::Init    ? SemanticsVersions::Init
                             : node.Kind == NodeKind::Train ? SemanticsVersions::Train
                             : node.Kind == NodeKind::Eval  ? SemanticsVersions::Eval
                                                            : SemanticsVersions::Merge;
  HashStream os;
  {
    Writer w(os, 0, plan, &identities);
    w.Out.object([&] {
      w.Out.attribute("format_version", kPlanFormatVersion);
      w.Out.attribute("kind", enumName(node.Kind));
      w.Out.attribute("semantics_version", semantics);
      w.Out.attributeBegin("settings");
      std::visit([&](const auto &payload) { w.write(payload.Settings); }, node.Payload);
      w.Out.attributeEnd();
      w.Out.attributeArray("inputs", [&] {
        for (const NodeRef &in : node.Inputs)
          w.Out.value(plan.Nodes[in.Index].Hash + (in.Average ? kAverageSuffix.str() : ""));
      });
      w.Out.attributeArray("data", [&] {
        for (const std::string &s : dataStreams) {
          auto it = identities.find(s);
          w.Out.value(it == identities.end() ? s : it->second);
        }
      });
    });
  }
  return os.hex();
}
