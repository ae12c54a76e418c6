// The plan's strict JSON both ways, and the hash input, against hand-written expectations
// (docs/plan-format.md).
#include "mixtape/plan/PlanJSON.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/SHA256.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>

using namespace mixtape::plan;
namespace json = llvm::json;

namespace {

/// input_hashes, hash and dir of every node, from its settings and the streams' identities.
void rehash(Plan &p) {
  StreamIdentities ids;
  for (const auto &[name, s] : p.Streams)
    ids[name] = streamIdentity(s, s.Fingerprint.value_or(""));
  for (Node &n : p.Nodes) {
    n.InputHashes.clear();
    for (const NodeRef &in : n.Inputs)
      n.InputHashes.push_back(p.Nodes[in.Index].Hash);
    std::vector<std::string> data;
    if (const TrainNode *t = n.train())
      data = t->Settings.Mixture.Streams;
    if (const EvalNode *e = n.eval())
      for (const EvalSplit &split : e->Settings.Splits)
        data.push_back(split.Stream);
    n.Hash = nodeHash(p, n, ids, data);
    n.Dir = nodeDirName(n.Name, n.Hash);
  }
}

Stream rootStream(std::string name, std::string fingerprint, double val) {
  Stream s;
  s.Root = std::move(name);
  s.Shards = "synth:prose";
  s.Val = val;
  s.Fingerprint = std::move(fingerprint);
  return s;
}

/// init -> adapt (train on web and med) -> ppl@adapt (eval); soup merges init and adapt.
/// `web` names the first stream everywhere.
Plan tinyPlan(const std::string &web = "web") {
  Plan p;
  p.Format = kPlanFormat.str();
  p.Version = kPlanFormatVersion;
  p.Recipe = "tiny";
  p.RecipeDir = "/recipes";
  p.Seed = 7;
  p.Model = Architecture{ModelFamily::Llama, 264, 2, 64, 4, 2, 192, 128, 1, "bytes", false};
  p.Streams[web] = rootStream(web, "fw", 0.01);
  p.Streams["med"] = rootStream("med", "fm", 0.02);
  p.Cost = Cost{989e12, 0.4};

  InitNode init;
  init.Settings.Model = p.Model;
  init.Settings.Init = "random";
  init.Settings.Seed = 7;
  p.Nodes.push_back(makeNode("init", init));

  TrainNode train;
  TrainSettings &s = train.Settings;
  s.Steps = {0, 10};
  s.SeqLen = 8;
  s.BatchSequences = 4;
  s.RopeTheta = 10000;
  s.LR.Horizon = 320;
  s.LR.Phases = {Phase{PhaseShape::Warmup, 0, 32.0, 0, 3e-4, 1, 0},
                 Phase{PhaseShape::Cosine, 32, 288.0, 3e-4, 3e-5, 1, 0}};
  s.Mixture = Mixture{{web, "med"}, {0, 320}, {{0.95, 0.05}, {0.5, 0.5}}};
  s.Optimizer = Optimizer{OptimizerKind::AdamW, 0.9, 0.95, 1e-8, 0.1, false};
  s.GradClip = 1;
  s.Data.Cursors = {{web, 0}, {"med", 64}};
  s.Data.Samples = {{web, 30}, {"med", 10}};
  train.Exec.MicroBatch = 2;
  train.Exec.CheckpointKeep = 2;
  train.Exec.Stage = "adapt";
  train.Exec.StageStart = true;
  train.Exec.EvalDuring["ppl"] = DuringEval{{{web, SplitKind::Val}}, 0, std::nullopt, {0, 160}};
  train.Ledger.Tokens = 320;
  train.Ledger.TokensByStream = {{web, 240}, {"med", 80}};
  Node adapt = makeNode("adapt", train);
  adapt.Inputs = {NodeRef{0}};
  adapt.Variants = {"adapt"};
  p.Nodes.push_back(adapt);

  EvalNode eval;
  eval.Settings.Splits = {{web, SplitKind::Val}, {"med", SplitKind::Train}};
  eval.Exec.ChainTokens = 320;
  Node ppl = makeNode("ppl@adapt", eval);
  ppl.Inputs = {NodeRef{1}};
  p.Nodes.push_back(ppl);

  MergeNode merge;
  merge.Settings.Method = MergeMethod::TaskArithmetic;
  merge.Settings.Weights = {0.5};
  merge.Settings.BaseInput = 0;
  Node soup = makeNode("soup", merge);
  soup.Inputs = {NodeRef{0}, NodeRef{1}};
  p.Nodes.push_back(soup);

  p.Variants = variantLedgers(p);
  rehash(p);
  return p;
}

std::string errorOf(llvm::StringRef text) {
  llvm::Expected<Plan> plan = parsePlan(text, "tiny.json");
  return plan ? "(read without an error)" : llvm::toString(plan.takeError());
}

/// The reader's error for the tiny plan's JSON after `edit`.
std::string errorAfter(const std::function<void(json::Object &)> &edit) {
  json::Value v = llvm::cantFail(json::parse(planText(tinyPlan())));
  edit(*v.getAsObject());
  std::string text;
  llvm::raw_string_ostream(text) << v;
  return errorOf(text);
}

json::Object &object(json::Value &v) { return *v.getAsObject(); }
json::Object &node(json::Object &plan, size_t i) { return object((*plan.getArray("nodes"))[i]); }
json::Object &settings(json::Object &plan, size_t i) { return *node(plan, i).getObject("settings"); }

/// "" when equal, else the first line where they differ: a whole plan is too long to print.
std::string firstDifference(llvm::StringRef want, llvm::StringRef got) {
  llvm::SmallVector<llvm::StringRef, 0> a, b;
  want.split(a, '\n');
  got.split(b, '\n');
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i) {
    llvm::StringRef x = i < a.size() ? a[i] : "(end)", y = i < b.size() ? b[i] : "(end)";
    if (x != y)
      return "line " + std::to_string(i + 1) + ": want '" + x.str() + "', got '" + y.str() + "'";
  }
  return "";
}

std::string sha256(llvm::StringRef text) {
  return llvm::toHex(llvm::SHA256::hash(llvm::arrayRefFromStringRef(text)), /*LowerCase=*/true);
}

//===----------------------------------------------------------------------===//
// Round trips
//===----------------------------------------------------------------------===//

TEST(PlanJSON, RoundTripsAHandBuiltPlan) {
  Plan p = tinyPlan();
  std::string text = planText(p);
  llvm::Expected<Plan> read = parsePlan(text, "tiny.json");
  ASSERT_TRUE(bool(read)) << llvm::toString(read.takeError());
  EXPECT_EQ(planText(*read), text);

  ASSERT_EQ(read->Nodes.size(), 4u);
  EXPECT_EQ(read->Nodes[1].Kind, NodeKind::Train);
  const TrainSettings &s = read->Nodes[1].train()->Settings;
  EXPECT_EQ(s.LR.Phases[1].Shape, PhaseShape::Cosine);
  EXPECT_EQ(s.LR.Phases[1].To, 3e-5);
  EXPECT_EQ(s.Mixture.Weights, (MixtureWeights{{0.95, 0.05}, {0.5, 0.5}}));
  EXPECT_EQ(s.Data.Cursors.at("med"), 64u);
  EXPECT_EQ(read->Nodes[1].train()->Exec.EvalDuring.at("ppl").StageTokens, (std::vector<uint64_t>{0, 160}));
  EXPECT_EQ(read->Nodes[2].eval()->Settings.Splits[1].Split, SplitKind::Train);
  const Node &soup = read->Nodes[3];
  EXPECT_EQ(soup.Inputs, (std::vector<NodeRef>{{0}, {1}}));
  EXPECT_EQ(soup.InputHashes[1], read->Nodes[1].Hash);
  EXPECT_EQ(soup.merge()->Settings.BaseInput, 0u);
  EXPECT_FALSE(soup.merge()->Settings.Density.has_value());
}

TEST(PlanJSON, WritesANodeAsDocumented) {
  Plan p = tinyPlan();
  const Node &ppl = p.Nodes[2];
  // Header keys, then the payload's, in PlanKeys.def order; splits as [stream, split].
  std::string want = R"({
  "name": "ppl@adapt",
  "kind": "eval",
  "hash": "H",
  "dir": "ppl.adapt-D",
  "provisional": false,
  "inputs": [
    "adapt"
  ],
  "input_hashes": [
    "I"
  ],
  "variants": [],
  "settings": {
    "splits": [
      [
        "web",
        "val"
      ],
      [
        "med",
        "train"
      ]
    ],
    "max_tokens": 0
  },
  "exec": {
    "chain_tokens": 320
  }
}
)";
  want.replace(want.find("\"H\""), 3, "\"" + ppl.Hash + "\"");
  want.replace(want.find("-D\""), 3, "-" + ppl.Hash.substr(0, 12) + "\"");
  want.replace(want.find("\"I\""), 3, "\"" + p.Nodes[1].Hash + "\"");
  EXPECT_EQ(nodeText(p, ppl), want);
  // Init and merge nodes have an empty exec; absent optionals are not written.
  EXPECT_EQ(execText(p, p.Nodes[0]), "{}");
  EXPECT_EQ(settingsKey(p, p.Nodes[3]),
            R"({"method":"task_arithmetic","normalize":false,"weights":[0.5],"base_input":0})");
}

TEST(PlanJSON, NumbersAreShortestAndReadBackBitIdentical) {
  Plan p = tinyPlan();
  std::string text = planText(p);
  EXPECT_NE(text.find("\"beta2\": 0.95,"), std::string::npos);
  EXPECT_NE(text.find("\"to\": 3e-4,"), std::string::npos);
  EXPECT_NE(text.find("\"eps\": 1e-8,"), std::string::npos);
  EXPECT_NE(text.find("\"peak_flops\": 989000000000000,"), std::string::npos);
  EXPECT_EQ(text.find("0.9499999"), std::string::npos);

  const std::vector<double> values = {0.95, 3e-4, 0.1, 1.0 / 3, 6.02214076e23, 5e-324, 1.7976931348623157e308,
                                      9007199254740994.0, -2.5};
  p.Nodes[3].merge()->Settings.Weights = values;
  EXPECT_EQ(settingsKey(p, p.Nodes[3]),
            R"({"method":"task_arithmetic","normalize":false,"weights":[0.95,3e-4,0.1,0.3333333333333333,)"
            R"(6.02214076e23,5e-324,1.7976931348623157e308,9007199254740994,-2.5],"base_input":0})");
  rehash(p);
  llvm::Expected<Plan> read = parsePlan(planText(p), "tiny.json");
  ASSERT_TRUE(bool(read)) << llvm::toString(read.takeError());
  const std::vector<double> &back = read->Nodes[3].merge()->Settings.Weights;
  ASSERT_EQ(back.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(std::memcmp(&back[i], &values[i], sizeof(double)), 0) << values[i];
}

TEST(PlanJSON, PredicatesRoundTripAsStructure) {
  // (overall_score >= 4 and domain == 'Medicine') or not (source in [3, 'b', 'a', 'b'])
  Predicate where;
  uint32_t score = where.addCompare(Predicate::Op::Ge, "overall_score", 4.0);
  uint32_t domain = where.addCompare(Predicate::Op::Eq, "domain", "Medicine");
  uint32_t both = where.addLogical(Predicate::Op::And, score, domain);
  uint32_t source = where.addIn("source", {3}, {"b", "a", "b"});
  where.addLogical(Predicate::Op::Or, both, where.addNot(source));
  Plan p = tinyPlan();
  p.Streams["med"].Where = where;

  json::Value written = llvm::cantFail(json::parse(planText(p)));
  json::Value want = llvm::cantFail(json::parse(R"({"op": "or", "args": [
      {"op": "and", "args": [{"op": ">=", "column": "overall_score", "value": 4},
                             {"op": "==", "column": "domain", "value": "Medicine"}]},
      {"op": "not", "args": [{"op": "in", "column": "source", "values": [3, "a", "b"]}]}]})"));
  EXPECT_EQ(*object(written).getObject("streams")->getObject("med")->get("where"), want);

  llvm::Expected<Plan> read = parsePlan(planText(p), "tiny.json");
  ASSERT_TRUE(bool(read)) << llvm::toString(read.takeError());
  ASSERT_TRUE(read->Streams["med"].Where.has_value());
  EXPECT_EQ(read->Streams["med"].Where->canonical(), where.canonical());
  EXPECT_EQ(planText(*read), planText(p));
}

TEST(PlanJSON, ControlTokensRoundTrip) {
  Plan p = tinyPlan();
  p.Streams["med"].Transform =
      StreamTransform{std::nullopt, ControlTokens{"quality", 3.5, ControlToken{"<|good|>", 259}, ControlToken{"<|bad|>", 260}}};
  p.Streams["web"].Transform =
      StreamTransform{std::nullopt, ControlTokens{std::nullopt, std::nullopt, ControlToken{"<|good|>", 259}, std::nullopt}};

  json::Value written = llvm::cantFail(json::parse(planText(p)));
  const json::Object &streams = *object(written).getObject("streams");
  EXPECT_EQ(*streams.getObject("med")->get("transform"),
            llvm::cantFail(json::parse(R"({"control_tokens": {"column": "quality", "above": 3.5,
                "good": {"text": "<|good|>", "id": 259}, "bad": {"text": "<|bad|>", "id": 260}}})")));
  EXPECT_EQ(*streams.getObject("web")->get("transform"),
            llvm::cantFail(json::parse(R"({"control_tokens": {"good": {"text": "<|good|>", "id": 259}}})")));

  llvm::Expected<Plan> read = parsePlan(planText(p), "tiny.json");
  ASSERT_TRUE(bool(read)) << llvm::toString(read.takeError());
  const ControlTokens &med = *read->Streams["med"].Transform->ControlTokens;
  EXPECT_EQ(med.Column, "quality");
  EXPECT_EQ(med.Above, 3.5);
  EXPECT_EQ(med.Bad->Id, 260u);
  EXPECT_FALSE(read->Streams["web"].Transform->ControlTokens->Bad.has_value());
  EXPECT_EQ(planText(*read), planText(p));
  // The tokens are the stream's identity: another token, another stream.
  Stream other = p.Streams["web"];
  other.Transform->ControlTokens->Good->Id = 260;
  EXPECT_NE(streamIdentity(other, "fw"), streamIdentity(p.Streams["web"], "fw"));
}

TEST(PlanJSON, GoldenPlansReadBackUnchanged) {
  // The compiler's own plans pass every check of the reader (golden.py drops recipe_dir).
  unsigned plans = 0;
  for (const auto &entry : std::filesystem::directory_iterator(MIXTAPE_SOURCE_DIR "/tests/plan")) {
    if (!llvm::StringRef(entry.path().string()).endswith(".plan.json"))
      continue;
    auto buffer = llvm::MemoryBuffer::getFile(entry.path().string());
    ASSERT_TRUE(bool(buffer)) << entry.path();
    std::string text = (*buffer)->getBuffer().str();
    size_t seed = text.find("  \"seed\": ");
    ASSERT_NE(seed, std::string::npos);
    text.insert(seed, "  \"recipe_dir\": \"/recipes\",\n");
    llvm::Expected<Plan> read = parsePlan(text, entry.path().string());
    ASSERT_TRUE(bool(read)) << llvm::toString(read.takeError());
    EXPECT_EQ(firstDifference(text, planText(*read)), "") << entry.path();
    ++plans;
  }
  EXPECT_GE(plans, 4u);
}

//===----------------------------------------------------------------------===//
// Strictness: every problem is an error naming the node and the key path
//===----------------------------------------------------------------------===//

TEST(PlanJSON, RefusesAnotherVersionBeforeAnythingElse) {
  EXPECT_EQ(errorAfter([](json::Object &o) {
              o["version"] = 1;
              o.erase("nodes");
              o.erase("streams");
            }),
            "tiny.json: plan format version 1, this mixtape reads version 2; plan the recipe again");
  EXPECT_EQ(errorAfter([](json::Object &o) { o.erase("version"); }),
            "tiny.json: plan format version (none), this mixtape reads version 2; plan the recipe again");
  EXPECT_EQ(errorAfter([](json::Object &o) { o["format"] = "mixtape-recipe"; }),
            "tiny.json: not a Mixtape plan (no \"format\": \"mixtape-plan\")");
}

TEST(PlanJSON, RefusesTextThatIsNotJSON) {
  EXPECT_EQ(errorOf("{\"format\": \"mixtape-plan\","), "tiny.json: byte 26: invalid JSON: Expected object key");
  // A hundred thousand levels once overflowed the parser's stack.
  EXPECT_EQ(errorOf(std::string(100000, '[') + std::string(100000, ']')),
            "tiny.json: byte 512: JSON nested deeper than 512 levels");
}

struct Malformed {
  const char *What;
  std::function<void(json::Object &)> Edit;
  const char *Message; ///< after "tiny.json: malformed plan: "
};

TEST(PlanJSON, NamesTheNodeAndKeyPathOfEveryProblem) {
  const Malformed cases[] = {
      {"a missing key", [](json::Object &o) { settings(o, 1).getObject("lr")->erase("horizon"); },
       "node 'adapt': settings.lr: missing key 'horizon'"},
      {"a misspelled key",
       [](json::Object &o) {
         json::Object &lr = *settings(o, 1).getObject("lr");
         json::Value horizon = *lr.get("horizon");
         lr.erase("horizon");
         lr["horizn"] = std::move(horizon);
       },
       "node 'adapt': settings.lr: missing key 'horizon' (misspelled as 'horizn'?)"},
      {"an unknown key", [](json::Object &o) { node(o, 1).getObject("exec")->try_emplace("micro_batches", 2); },
       "node 'adapt': exec: unknown key 'micro_batches'; did you mean 'micro_batch'?"},
      {"a string for a number", [](json::Object &o) { settings(o, 1)["seq_len"] = "8"; },
       "node 'adapt': settings.seq_len: expected a non-negative integer"},
      {"a fraction for an integer", [](json::Object &o) { settings(o, 1)["seq_len"] = 8.5; },
       "node 'adapt': settings.seq_len: expected a non-negative integer"},
      {"a string for a number, outside nodes",
       [](json::Object &o) { (*o.getObject("streams")->getObject("web"))["val"] = "1%"; },
       "streams.web.val: expected a number"},
      {"an enum value that does not exist",
       [](json::Object &o) {
         object((*settings(o, 1).getObject("lr")->getArray("phases"))[1])["shape"] = "cosin";
       },
       "node 'adapt': settings.lr.phases[1].shape: expected one of \"warmup\", \"constant\", \"linear\", "
       "\"cosine\", \"exp\", \"inverse_sqrt\", \"1-sqrt\""},
      {"an input that is no node", [](json::Object &o) { (*node(o, 2).getArray("inputs"))[0] = "adept"; },
       "node 'ppl@adapt': inputs[0]: 'adept' is not a node before this one"},
      {"a node before its input",
       [](json::Object &o) { std::swap((*o.getArray("nodes"))[1], (*o.getArray("nodes"))[2]); },
       "node 'ppl@adapt': inputs[0]: 'adapt' is not a node before this one"},
      {"two nodes of one name", [](json::Object &o) { node(o, 2)["name"] = "adapt"; },
       "nodes[2]: two nodes are named 'adapt'"},
      {"a node without a name", [](json::Object &o) { node(o, 2).erase("name"); }, "nodes[2]: missing key 'name'"},
      {"a weights row that does not fit the streams",
       [](json::Object &o) { (*settings(o, 1).getObject("mixture")->getArray("weights"))[1] = json::Array{1}; },
       "node 'adapt': settings.mixture: mixture row 1 needs one weight per stream"},
      {"a wrong input hash",
       [](json::Object &o) { (*node(o, 2).getArray("input_hashes"))[0] = std::string(64, '0'); },
       "node 'ppl@adapt': input_hashes[0] is not the hash of input 'adapt'"},
      {"a mixture stream the plan lacks",
       [](json::Object &o) {
         json::Object &s = settings(o, 1);
         (*s.getObject("mixture")->getArray("streams"))[1] = "medd";
         for (const char *key : {"cursors", "samples"}) {
           json::Object &counts = *s.getObject("data")->getObject(key);
           json::Value med = *counts.get("med");
           counts.erase("med");
           counts["medd"] = std::move(med);
         }
       },
       "node 'adapt': settings.mixture names stream 'medd', which the plan does not have"},
      {"a malformed predicate",
       [](json::Object &o) {
         (*o.getObject("streams")->getObject("med"))["where"] =
             json::Object{{"op", "<"}, {"column", "domain"}, {"value", "Medicine"}};
       },
       "streams.med.where: malformed predicate term '<'"},
      {"a merge with a density its method does not use",
       [](json::Object &o) { settings(o, 3)["density"] = 0.5; },
       "node 'soup': settings: a merge has density (ties, dare_*), seed (dare_*) and t (slerp) exactly when its "
       "method uses them"},
      // Checks of structure the runtime would misread.
      {"an eval node as an input",
       [](json::Object &o) {
         std::string evalHash = node(o, 2).getString("hash")->str();
         (*node(o, 3).getArray("inputs"))[1] = "ppl@adapt";
         (*node(o, 3).getArray("input_hashes"))[1] = evalHash;
       },
       "node 'soup': inputs[1]: 'ppl@adapt' is an eval node, which makes no model"},
      {"a schedule without phases",
       [](json::Object &o) { (*settings(o, 1).getObject("lr"))["phases"] = json::Array(); },
       "node 'adapt': settings.lr: a schedule needs a phase"},
      {"an open-ended phase before another",
       [](json::Object &o) {
         object((*settings(o, 1).getObject("lr")->getArray("phases"))[0]).erase("length");
       },
       "node 'adapt': settings.lr: phases[1] begins before phases[0], or after one without a length"},
      {"a negative mixture weight",
       [](json::Object &o) {
         (*settings(o, 1).getObject("mixture")->getArray("weights"))[0] = json::Array{1.5, -0.5};
       },
       "node 'adapt': settings.mixture: mixture row 0 needs weights that are not negative, one of them positive"},
      {"data for a stream outside the mixture",
       [](json::Object &o) { (*settings(o, 1).getObject("data")->getObject("cursors"))["books"] = 0; },
       "node 'adapt': settings.data names stream 'books', which is not in settings.mixture"},
      {"an in-loop eval of a stream the plan lacks",
       [](json::Object &o) {
         json::Array splits;
         splits.push_back(json::Array{"webb", "val"});
         (*node(o, 1).getObject("exec")->getObject("eval_during")->getObject("ppl"))["splits"] = std::move(splits);
       },
       "node 'adapt': exec.eval_during.ppl.splits names stream 'webb', which the plan does not have"},
  };
  for (const Malformed &c : cases)
    EXPECT_EQ(errorAfter(c.Edit), std::string("tiny.json: malformed plan: ") + c.Message) << c.What;
}

//===----------------------------------------------------------------------===//
// Hashes
//===----------------------------------------------------------------------===//

TEST(PlanHash, HashInputIsAsDocumented) {
  Plan p = tinyPlan();
  EXPECT_EQ(p.Nodes[0].Hash,
            sha256(R"({"format_version":2,"kind":"init","semantics_version":1,"settings":{"model":{"family":"llama",)"
                   R"("vocab":264,"layers":2,"d_model":64,"heads":4,"kv_heads":2,"ffn":192,"max_positions":128,)"
                   R"("rotary_pct":1,"tokenizer":"bytes","tie_embeddings":false},"init":"random","seed":7},)"
                   R"("inputs":[],"data":[]})"));
  const std::string web = "stream:" + sha256(R"({"fingerprint":"fw","val":0.01})");
  const std::string med = "stream:" + sha256(R"({"fingerprint":"fm","val":0.02})");
  EXPECT_EQ(streamIdentity(p.Streams["web"], "fw"), web);
  EXPECT_EQ(p.Nodes[2].Hash, sha256(R"({"format_version":2,"kind":"eval","semantics_version":1,"settings":)"
                                    R"({"splits":[[")" + web + R"(","val"],[")" + med + R"(","train"]],)"
                                    R"("max_tokens":0},"inputs":[")" + p.Nodes[1].Hash + R"("],)"
                                    R"("data":[")" + web + R"(",")" + med + R"("]})"));
}

TEST(PlanHash, RenamingAStreamChangesNoHash) {
  Plan web = tinyPlan("web"), cc = tinyPlan("common_crawl");
  ASSERT_NE(planText(web), planText(cc));
  for (size_t i = 0; i < web.Nodes.size(); ++i)
    EXPECT_EQ(web.Nodes[i].Hash, cc.Nodes[i].Hash) << web.Nodes[i].Name;
}

TEST(PlanHash, SettingsInputsAndDataChangeTheHash) {
  const Plan base = tinyPlan();
  auto hashesAfter = [&](const std::function<void(Plan &)> &edit) {
    Plan p = base;
    edit(p);
    rehash(p);
    std::vector<std::string> hashes;
    for (const Node &n : p.Nodes)
      hashes.push_back(n.Hash);
    return hashes;
  };
  // A setting of the train node: it and everything after it.
  std::vector<std::string> h = hashesAfter([](Plan &p) { p.Nodes[1].train()->Settings.GradClip = 0.5; });
  EXPECT_EQ(h[0], base.Nodes[0].Hash);
  EXPECT_NE(h[1], base.Nodes[1].Hash);
  EXPECT_NE(h[2], base.Nodes[2].Hash); // through its input's hash
  EXPECT_NE(h[3], base.Nodes[3].Hash);
  // An input's hash alone.
  h = hashesAfter([](Plan &p) { p.Nodes[0].init()->Settings.Seed = 8; });
  EXPECT_NE(h[1], base.Nodes[1].Hash);
  // What a stream is (its identity), under the same name.
  h = hashesAfter([](Plan &p) { p.Streams["med"].Val = 0.05; });
  EXPECT_EQ(h[0], base.Nodes[0].Hash);
  EXPECT_NE(h[1], base.Nodes[1].Hash);
  EXPECT_NE(h[2], base.Nodes[2].Hash);
  // Mixture order is part of the blend, so of the settings.
  h = hashesAfter([](Plan &p) {
    Mixture &m = p.Nodes[1].train()->Settings.Mixture;
    std::swap(m.Streams[0], m.Streams[1]);
  });
  EXPECT_NE(h[1], base.Nodes[1].Hash);
}

TEST(PlanHash, ExecutionOnlyChangesKeepTheHash) {
  const Plan base = tinyPlan();
  Plan p = base;
  TrainExec &e = p.Nodes[1].train()->Exec;
  e.MicroBatch = 4;
  e.CheckpointKeep = 5;
  e.CheckpointEvery = 64;
  e.Shard = ShardMode::Full;
  e.ActivationCheckpointing = 2;
  e.EvalDuring.clear();
  p.Nodes[1].train()->Ledger.Tokens = 1;
  p.Nodes[2].eval()->Exec.ChainTokens = 0;
  p.Nodes[1].Name = "renamed";
  p.RecipeDir = "/elsewhere";
  rehash(p);
  for (size_t i = 0; i < p.Nodes.size(); ++i)
    EXPECT_EQ(p.Nodes[i].Hash, base.Nodes[i].Hash) << base.Nodes[i].Name;
}

} // namespace

TEST(PlanJSON, AnOlderExecsZero1ReadsAsAShardMode) {
  for (bool zero1 : {true, false}) {
    json::Value v = llvm::cantFail(json::parse(planText(tinyPlan())));
    json::Object &exec = *node(*v.getAsObject(), 1).getObject("exec");
    exec.erase("shard");
    exec.erase("activation_checkpointing");
    exec["zero1"] = zero1;
    std::string text;
    llvm::raw_string_ostream(text) << v;
    llvm::Expected<Plan> plan = parsePlan(text, "tiny.json");
    ASSERT_TRUE(bool(plan)) << llvm::toString(plan.takeError());
    EXPECT_EQ(plan->Nodes[1].train()->Exec.Shard, zero1 ? ShardMode::Optimizer : ShardMode::None);
    EXPECT_EQ(plan->Nodes[1].train()->Exec.ActivationCheckpointing, 0u);
  }
  // Beside the new keys it is one too many.
  EXPECT_EQ(errorAfter([](json::Object &o) { node(o, 1).getObject("exec")->try_emplace("zero1", true); }),
            "tiny.json: malformed plan: node 'adapt': exec: unknown key 'zero1'");
}
