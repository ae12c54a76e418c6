// The plan compiler: variants and sharing, cursors, hashes, ledger, data-aware lints.
#include "mixtape/compiler/Plan.h"
#include "mixtape/compiler/PlanReport.h"
#include "mixtape/compiler/Sema.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>

using namespace mixtape;

namespace {

/// Every stream present, with a fixed size; or, with `absent`, none.
class FakeCatalog : public DataCatalog {
public:
  uint64_t trainTokens = 1'000'000'000'000; // large: no epoch warnings unless a test wants them
  bool absent = false;
  uint64_t leaked = 0;
  llvm::Expected<std::optional<StreamStats>> stats(const StreamSpec &s, const CheckedRecipe &) override {
    if (absent)
      return std::optional<StreamStats>();
    StreamStats st;
    st.fingerprint = "fp-" + s.shards + s.parent; // content stands in: names never do
    st.trainTokens = trainTokens;
    st.trainDocuments = 1000;
    st.valTokens = 1000;
    st.valDocuments = 10;
    st.vocabSize = 264;
    return std::optional<StreamStats>(st);
  }
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const StreamSpec &, const StreamSpec &,
                                                          const CheckedRecipe &) override {
    return std::optional<uint64_t>(leaked);
  }
  /// Every stream's documents by column: `groups[column]`.
  std::map<std::string, std::vector<ColumnGroup>> groups;
  llvm::Expected<std::optional<ColumnGroups>> groupBy(const StreamSpec &, llvm::StringRef column,
                                                      const CheckedRecipe &) override {
    if (absent)
      return std::optional<ColumnGroups>();
    ColumnGroups out;
    for (const auto &[name, g] : groups)
      out.columns.push_back(name);
    if (auto it = groups.find(column.str()); it != groups.end())
      out.groups = it->second;
    return std::optional<ColumnGroups>(out);
  }
};

ColumnGroup stringGroup(std::string value, uint64_t documents, uint64_t tokens) {
  return ColumnGroup{ColumnValue{MetadataValue::Kind::String, 0, std::move(value)}, documents, tokens, 1, 100};
}

struct Planned {
  llvm::SourceMgr sm;
  DiagnosticEngine diags{sm};
  std::unique_ptr<CheckedRecipe> recipe;
  std::optional<Plan> plan;
  std::string printed() {
    std::string out;
    llvm::raw_string_ostream os(out);
    diags.print(os);
    return out;
  }
  const PlanNode &node(llvm::StringRef name) {
    int i = plan->findNode(name);
    EXPECT_GE(i, 0) << "no node " << name.str();
    return plan->nodes[std::max(i, 0)];
  }
};

std::unique_ptr<Planned> planText(llvm::StringRef text, FakeCatalog catalog = FakeCatalog()) {
  auto p = std::make_unique<Planned>();
  if (auto root = parseRecipeText(text, "t.toml", p->diags))
    p->recipe = checkRecipe(*root, p->diags);
  if (p->recipe)
    p->plan = lowerToPlan(*p->recipe, catalog, CostModel(), p->diags);
  return p;
}

std::unique_ptr<Planned> planFile(llvm::StringRef rel, FakeCatalog catalog = FakeCatalog()) {
  auto p = std::make_unique<Planned>();
  p->recipe = loadRecipe(std::string(MIXTAPE_SOURCE_DIR) + "/" + rel.str(), p->diags);
  if (p->recipe)
    p->plan = lowerToPlan(*p->recipe, catalog, CostModel(), p->diags);
  return p;
}

size_t countTrain(const Plan &plan, llvm::StringRef stagePrefix) {
  size_t n = 0;
  for (const PlanNode &node : plan.nodes)
    if (node.kind == NodeKind::Train && llvm::StringRef(node.name).startswith(stagePrefix))
      ++n;
  return n;
}

TEST(Plan, NorthStarVariantsAndSharing) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->plan) << p->printed();
  const Plan &plan = *p->plan;
  EXPECT_EQ(countTrain(plan, "adapt["), 4u);
  EXPECT_EQ(countTrain(plan, "anneal["), 4u);
  EXPECT_EQ(countTrain(plan, "long["), 4u);
  // stream trains once per replay value, cut at the anneal branch points 1B, 3B (5B is its end).
  EXPECT_EQ(countTrain(plan, "stream["), 12u);
  EXPECT_EQ(countTrain(plan, "stream_anneal["), 12u);
  // Each stream segment is shared by the stream_anneal variants that branch at or after it.
  const PlanNode &first = p->node("stream[replay=r5]@0-954");
  EXPECT_EQ(first.variants.size(), 4u); // stream[replay=r5] + its 3 anneals
  EXPECT_GT(plan.sharedTokens, 0u);
  // The anneal at b1 starts from the first segment's end.
  const PlanNode &b1 = p->node("stream_anneal[replay=r5,at=b1]");
  ASSERT_EQ(b1.inputs.size(), 1u);
  EXPECT_EQ(plan.nodes[b1.inputs[0]].name, "stream[replay=r5]@0-954");
  // Merges and the ablation: soup, ties, 8 units and 8 + 28 + 56 combinations.
  EXPECT_EQ(countTrain(plan, "which-sources/unit"), 8u);
  size_t combos = 0;
  for (const PlanNode &n : plan.nodes)
    combos += n.kind == NodeKind::Merge && llvm::StringRef(n.name).startswith("which-sources{");
  EXPECT_EQ(combos, 92u);
  // The ledger: 8 units once against each combination trained on its units' tokens.
  ASSERT_EQ(plan.ablations.size(), 1u);
  uint64_t unit = p->node("which-sources/unit0").tokens;
  EXPECT_EQ(plan.ablations[0].unitTokens, 8 * unit);
  EXPECT_EQ(plan.ablations[0].directTokens, (8 * 1 + 28 * 2 + 56 * 3) * unit);
}

TEST(Plan, CursorsContinueAcrossStagesAndReplay) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->plan) << p->printed();
  const PlanNode &adapt = p->node("adapt[replay=r5]");
  const PlanNode &anneal = p->node("anneal[replay=r5]");
  int64_t seqLen = *adapt.settings.getInteger("seq_len");
  const llvm::json::Object &adaptData = *adapt.settings.getObject("data");
  int64_t webSamples = *adaptData.getObject("samples")->getInteger("web");
  EXPECT_EQ(*adaptData.getObject("cursors")->getInteger("web"), 0);
  // anneal replays web from where adapt stopped.
  EXPECT_EQ(*anneal.settings.getObject("data")->getObject("cursors")->getInteger("web"), webSamples * seqLen);
  // 5% of adapt's samples are web (exact blending: within one sample).
  int64_t medSamples = *adaptData.getObject("samples")->getInteger("med");
  EXPECT_NEAR(static_cast<double>(webSamples) / static_cast<double>(webSamples + medSamples), 0.05, 1e-5);
  EXPECT_NEAR(adapt.replayFraction, 0.05, 1e-5); // web stands for the base model's data
}

const char *kBranchRecipe = R"toml(
[recipe]
name = "branches"
[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128
[streams.a]
shards = "synth:prose"
[streams.b]
shards = "synth:code"
[[stage]]
name = "base"
tokens = "4Mi"
batch = "32 sequences"
mix = "0.9 a + 0.1 b"
lr = "infinite(warmup = 64Ki, peak = 1e-3, cooldown = cosine(1Mi), constant = 3e-4)"
checkpoint = { every = "%EVERY%" }
[[stage]]
name = "anneal"
after = { stage = "base", at = "2Mi" }
tokens = "512Ki"
mix = "b"
lr = "linear(from = %LR%, to = 0)"
%SWEEP%
[[eval]]
name = "ppl"
streams = ["a.train"]
during = { every = "%DURING%" }
on = ["base"]
)toml";

std::string branchRecipe(std::string every, std::string lr, std::string during, std::string sweep) {
  std::string s = kBranchRecipe;
  auto put = [&](const std::string &key, const std::string &value) { s.replace(s.find(key), key.size(), value); };
  put("%EVERY%", every);
  put("%LR%", lr);
  put("%DURING%", during);
  put("%SWEEP%", sweep);
  return s;
}

TEST(Plan, ExecutionOnlySettingsChangeNoHash) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("2Mi", "3e-4", "512Ki", ""));
  ASSERT_TRUE(a->plan) << a->printed();
  ASSERT_TRUE(b->plan) << b->printed();
  ASSERT_EQ(a->plan->nodes.size(), b->plan->nodes.size());
  for (size_t i = 0; i < a->plan->nodes.size(); ++i)
    EXPECT_EQ(a->plan->nodes[i].hash, b->plan->nodes[i].hash) << a->plan->nodes[i].name;
  // ZeRO-1 only says how the ranks keep the optimizer state: exec, not hashed.
  auto zero1 = planText(branchRecipe("1Mi", "3e-4", "1Mi", "zero1 = true"));
  ASSERT_TRUE(zero1->plan) << zero1->printed();
  for (size_t i = 0; i < a->plan->nodes.size(); ++i)
    EXPECT_EQ(a->plan->nodes[i].hash, zero1->plan->nodes[i].hash) << a->plan->nodes[i].name;
  EXPECT_EQ(zero1->node("anneal").exec.getBoolean("zero1"), true);
  EXPECT_FALSE(zero1->node("base@0-512").exec.getBoolean("zero1")) << "the parent stage keeps its state whole";
}

TEST(Plan, FloatSpellingDoesNotMatter) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "0.0003", "1Mi", ""));
  ASSERT_TRUE(a->plan && b->plan);
  EXPECT_EQ(a->node("anneal").hash, b->node("anneal").hash);
}

TEST(Plan, AStagesLrChangesItAndDownstreamButNothingUpstream) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "2e-4", "1Mi", ""));
  ASSERT_TRUE(a->plan && b->plan);
  EXPECT_EQ(a->node("init").hash, b->node("init").hash);
  EXPECT_EQ(a->node("base@0-512").hash, b->node("base@0-512").hash);
  EXPECT_EQ(a->node("base@512-1024").hash, b->node("base@512-1024").hash);
  EXPECT_NE(a->node("anneal").hash, b->node("anneal").hash);
}

TEST(Plan, NamesDoNotCount) {
  std::string original = branchRecipe("1Mi", "3e-4", "1Mi", "");
  std::string renamed = original;
  for (auto [from, to] : {std::pair<std::string, std::string>{"\"anneal\"", "\"cooldown\""},
                          {"[streams.b]", "[streams.code]"},
                          {"0.9 a + 0.1 b", "0.9 a + 0.1 code"},
                          {"mix = \"b\"", "mix = \"code\""}})
    renamed.replace(renamed.find(from), from.size(), to);
  auto a = planText(original), b = planText(renamed);
  ASSERT_TRUE(a->plan) << a->printed();
  ASSERT_TRUE(b->plan) << b->printed();
  EXPECT_EQ(a->node("anneal").hash, b->node("cooldown").hash);
}

TEST(Plan, AVariantThroughASharedPrefixSeesTheSameDataAsAlone) {
  // anneal branched at 2Mi, alone and as one of three branch points.
  auto alone = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto swept = planText(branchRecipe(
      "1Mi", "3e-4", "1Mi", "[sweep]\nat = { key = \"anneal.after.at\", values = { early = \"1Mi\", mid = \"2Mi\", late = \"3Mi\" } }"));
  ASSERT_TRUE(alone->plan) << alone->printed();
  ASSERT_TRUE(swept->plan) << swept->printed();
  const PlanNode &a = alone->node("anneal"), &b = swept->node("anneal[at=mid]");
  EXPECT_EQ(llvm::json::Value(llvm::json::Object(*a.settings.getObject("data"))),
            llvm::json::Value(llvm::json::Object(*b.settings.getObject("data"))));
  EXPECT_EQ(countTrain(*swept->plan, "base@"), 4u); // cut at 1Mi, 2Mi, 3Mi and its end
}

TEST(Plan, WithoutDataThePlanIsProvisional) {
  FakeCatalog none;
  none.absent = true;
  auto p = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""), none);
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_TRUE(p->plan->provisional);
  EXPECT_TRUE(p->node("anneal").provisional);
  EXPECT_FALSE(p->node("init").provisional);
}

TEST(Plan, DataAwareLints) {
  FakeCatalog small;
  small.trainTokens = 512 * 1024; // base draws about 3.6Mi tokens of a: about 7 epochs
  small.leaked = 3;
  std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
  std::string a = "[streams.a]\nshards = \"synth:prose\"";
  recipe.replace(recipe.find(a), a.size(), a + "\nval = \"1%\"");
  recipe += "\n[[eval]]\nname = \"v\"\nstreams = [\"a.val\"]\n";
  auto p = planText(recipe, small);
  ASSERT_TRUE(p->plan) << p->printed();
  std::string out = p->printed();
  EXPECT_NE(out.find("stream 'a' is repeated"), std::string::npos) << out;
  EXPECT_NE(out.find("[repeated-data]"), std::string::npos) << out;
  EXPECT_NE(out.find("3 documents of 'a.val' are also in the training data of 'b'"), std::string::npos) << out;
}

TEST(Plan, CostFollowsSixNPlusAttention) {
  auto p = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  ASSERT_TRUE(p->plan);
  const PlanNode &n = p->node("anneal");
  // llama: d=64, 4 heads, kv 4, ffn = ceil(64*8/3 / 64)*64 = 192, vocab 264, 2 layers.
  double attention = 64.0 * (64 + 2 * 4 * 16) + 64.0 * 64, mlp = 3.0 * 64 * 192;
  double n6 = 6 * (2 * (attention + mlp) + 264.0 * 64);
  double perToken = n6 + 12.0 * 2 * 64 * 128;
  EXPECT_DOUBLE_EQ(n.flops, perToken * static_cast<double>(n.tokens));
}

/// A recipe continuing from the Hugging Face folder "ckpt" beside it, in a temp folder.
class HfCheckpoint : public testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("mixtape-hf-plan", dir));
    ASSERT_FALSE(llvm::sys::fs::create_directories(path("ckpt")));
    std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
    std::string sizes = "layers = 2\nd_model = 64\nheads = 4\n";
    recipe.replace(recipe.find(sizes), sizes.size(), "init = \"hf:ckpt\"\n");
    write("recipe.toml", recipe);
    writeWeights("{}");
  }
  void TearDown() override { llvm::sys::fs::remove_directories(dir); }

  std::string path(llvm::StringRef name) const { return std::string(dir) + "/" + name.str(); }
  void write(llvm::StringRef name, llvm::StringRef text) { std::ofstream(path(name), std::ios::binary) << text.str(); }
  void writeConfig(llvm::StringRef type, uint64_t vocab) {
    write("ckpt/config.json", llvm::formatv(R"({{"model_type": "{0}", "vocab_size": {1}, "num_hidden_layers": 2,
        "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 192})",
                                            type, vocab)
                                  .str());
  }
  /// A safetensors file whose header is `header` (padded to 8 bytes) and 16 bytes of data.
  void writeWeights(std::string header) {
    header.resize((header.size() + 7) / 8 * 8, ' ');
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write("ckpt/model.safetensors", bytes + header + std::string(16, 'w'));
  }
  std::unique_ptr<Planned> plan() {
    auto p = std::make_unique<Planned>();
    p->recipe = loadRecipe(path("recipe.toml"), p->diags);
    FakeCatalog catalog;
    if (p->recipe)
      p->plan = lowerToPlan(*p->recipe, catalog, CostModel(), p->diags);
    return p;
  }
  std::string checkpoint() {
    auto p = plan();
    EXPECT_TRUE(p->plan) << p->printed();
    return p->plan ? p->node("init").settings.getString("checkpoint").getValueOr("").str() : "";
  }

  llvm::SmallString<128> dir;
};

TEST_F(HfCheckpoint, FamilyMustBeTheCheckpointsModelType) {
  writeConfig("gpt2", 300);
  auto p = plan();
  EXPECT_FALSE(p->plan);
  EXPECT_NE(p->printed().find(path("ckpt/config.json") + ": the checkpoint's model_type 'gpt2' is not the "
                                                         "recipe's model family 'llama' (set family = \"gpt2\" in "
                                                         "[model]) [data]"),
            std::string::npos)
      << p->printed();
  writeConfig("qwen2", 300); // a Llama-family architecture
  EXPECT_TRUE(plan()->plan);
}

TEST_F(HfCheckpoint, TheTokenizersVocabularyMustFitTheCheckpoint) {
  writeConfig("llama", 256);
  auto p = plan();
  EXPECT_FALSE(p->plan);
  EXPECT_NE(p->printed().find("error: the tokenizer's vocabulary of 264 tokens (stream 'a') exceeds the "
                              "checkpoint's vocab_size 256 (" +
                              path("ckpt") + "/config.json) [data]"),
            std::string::npos)
      << p->printed();
  writeConfig("llama", 300);
  p = plan();
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_EQ(p->plan->model.getInteger("vocab").getValueOr(0), 300);
  EXPECT_EQ(p->plan->model.getInteger("layers").getValueOr(0), 2);
  EXPECT_EQ(p->plan->model.getInteger("ffn").getValueOr(0), 192);
}

TEST_F(HfCheckpoint, StagesKeepTheCheckpointsRopeBaseUnlessTheyWriteOne) {
  write("ckpt/config.json", R"({"model_type": "llama", "vocab_size": 300, "num_hidden_layers": 2,
      "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 192, "rope_theta": 500000.0})");
  auto p = plan();
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_EQ(p->node("anneal").settings.getNumber("rope_theta").getValueOr(0), 500000);
  std::string recipe = llvm::MemoryBuffer::getFile(path("recipe.toml")).get()->getBuffer().str();
  recipe.replace(recipe.find("name = \"anneal\""), 15, "name = \"anneal\"\nrope_theta = 1e6");
  write("recipe.toml", recipe);
  p = plan();
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_EQ(p->node("anneal").settings.getNumber("rope_theta").getValueOr(0), 1e6);
  EXPECT_EQ(p->node("base@0-512").settings.getNumber("rope_theta").getValueOr(0), 500000);
}

TEST_F(HfCheckpoint, FingerprintIsContentNotTimes) {
  writeConfig("llama", 300);
  std::string first = checkpoint();
  EXPECT_EQ(llvm::StringRef(first).take_front(7), "sha256:");
  // Touched (a copy, a checkout, rsync without -t): the same checkpoint.
  for (const char *file : {"ckpt/config.json", "ckpt/model.safetensors"}) {
    int fd = -1;
    ASSERT_FALSE(llvm::sys::fs::openFileForWrite(path(file), fd, llvm::sys::fs::CD_OpenExisting,
                                                 llvm::sys::fs::OF_Append));
    ASSERT_FALSE(llvm::sys::fs::setLastAccessAndModificationTime(
        fd, llvm::sys::toTimePoint(1'000'000'000)));
    llvm::sys::Process::SafelyCloseFileDescriptor(fd);
  }
  EXPECT_EQ(checkpoint(), first);
  // The config, a tensor's header entry, or the file's size: another checkpoint.
  writeConfig("llama", 301);
  std::string config = checkpoint();
  EXPECT_NE(config, first);
  writeWeights(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  std::string header = checkpoint();
  EXPECT_NE(header, config);
  // Sharded: the index and each shard's header count; a broken shard is an error.
  llvm::sys::fs::rename(path("ckpt/model.safetensors"), path("ckpt/model-1.safetensors"));
  write("ckpt/model.safetensors.index.json", R"({"weight_map": {"w": "model-1.safetensors"}})");
  std::string sharded = checkpoint();
  EXPECT_EQ(llvm::StringRef(sharded).take_front(7), "sha256:");
  EXPECT_NE(sharded, header);
  write("ckpt/model-1.safetensors", "short");
  auto p = plan();
  EXPECT_FALSE(p->plan);
  EXPECT_NE(p->printed().find("model-1.safetensors: too short for a safetensors header"), std::string::npos)
      << p->printed();
  // Without weights the plan is provisional, as without data.
  llvm::sys::fs::remove(path("ckpt/model.safetensors.index.json"));
  p = plan();
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_TRUE(p->plan->provisional);
}

TEST(Plan, RunDirSaysWhatIsDoneAndWhyANodeReruns) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "2e-4", "1Mi", ""));
  ASSERT_TRUE(a->plan && b->plan);
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("mixtape-rundir", dir));
  // Plan a ran completely: every node has its directory, node.json and done marker.
  llvm::json::Value json = a->plan->toJSON();
  for (const llvm::json::Value &node : *json.getAsObject()->getArray("nodes")) {
    const llvm::json::Object &o = *node.getAsObject();
    llvm::SmallString<128> nodeDir(dir);
    llvm::sys::path::append(nodeDir, *o.getString("dir"));
    ASSERT_FALSE(llvm::sys::fs::create_directories(nodeDir));
    std::ofstream(std::string(nodeDir) + "/node.json") << llvm::formatv("{0}", node).str();
    std::ofstream(std::string(nodeDir) + "/DONE") << "";
  }
  std::vector<NodeStatus> status = planStatus(*b->plan, dir);
  for (size_t i = 0; i < b->plan->nodes.size(); ++i) {
    const PlanNode &n = b->plan->nodes[i];
    if (n.name == "anneal") {
      EXPECT_EQ(status[i].state, NodeStatus::ToRun);
      EXPECT_NE(status[i].why.find("setting 'lr' changed"), std::string::npos) << status[i].why;
    } else if (n.name == "base@0-512" || n.name == "init") {
      EXPECT_EQ(status[i].state, NodeStatus::Done) << n.name;
    }
  }
  llvm::sys::fs::remove_directories(dir);
}

TEST(Plan, SummaryDotAndExplainNameEveryNode) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->plan) << p->printed();
  std::string summary, dot, explain;
  llvm::raw_string_ostream s(summary), d(dot), e(explain);
  printPlanSummary(*p->plan, s, nullptr);
  writePlanDot(*p->plan, d);
  ASSERT_TRUE(explainNode(*p->plan, "anneal[replay=r5]", e));
  EXPECT_NE(summary.find("sharing: variants trained alone would take"), std::string::npos);
  EXPECT_NE(summary.find("provisional"), std::string::npos); // no data here
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(explain.find("ceil(200000000 / 1048576) = 191 steps"), std::string::npos) << explain;
  EXPECT_FALSE(explainNode(*p->plan, "nope", e));
}

} // namespace

namespace {
TEST(PlanJSON, SchedulesAndMixturesRoundTrip) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->plan) << p->printed();
  const StageVariant &v = p->recipe->stages[p->recipe->stageIndex("stream")].variants[2];
  llvm::Expected<schedule::Schedule> s = scheduleFromJSON(scheduleJSON(v.lr, v.horizon));
  ASSERT_TRUE(bool(s)) << llvm::toString(s.takeError());
  for (double t : {0.0, 1e7, 2e7, 5e8, 1.02e9, 3e9})
    EXPECT_EQ(s->lr(t), v.lr.lr(t)) << t;
  const StageVariant &anneal = p->recipe->stages[p->recipe->stageIndex("anneal")].variants[1];
  llvm::Expected<Mixture> m = mixtureFromJSON(mixtureJSON(anneal.mixture));
  ASSERT_TRUE(bool(m)) << llvm::toString(m.takeError());
  EXPECT_EQ(m->weightsAt(1e8), anneal.mixture.weightsAt(1e8));
  llvm::Expected<Mixture> bad = mixtureFromJSON(llvm::json::Object{{"streams", llvm::json::Array{"a"}}});
  EXPECT_FALSE(bool(bad));
  llvm::consumeError(bad.takeError());
}

const char *kByRecipe = R"toml(
[recipe]
name = "by"
[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128
[streams.prose]
shards = "synth:prose"
[streams.code]
shards = "synth:code"
val = "10%"
[[stage]]
name = "base"
tokens = "256Ki"
batch = "8 sequences"
mix = "prose"
lr = "constant(1e-3)"
[[ablation]]
name = "%NAME%"
from = "base"
units = { stream = "code", by = "%BY%" }
train = { tokens = "64Ki", lr = "constant(1e-4)", mix = "0.75 unit + 0.25 prose" }
combine = %COMBINE%
[[eval]]
name = "ppl"
streams = ["code.val"]
on = ["%NAME%"]
)toml";

std::string byRecipe(std::string by, std::string combine = "\"subsets(max = 2)\"", std::string name = "src") {
  std::string s = kByRecipe;
  auto put = [&](const std::string &key, const std::string &value) {
    for (size_t at; (at = s.find(key)) != std::string::npos;)
      s.replace(at, key.size(), value);
  };
  put("%BY%", by);
  put("%COMBINE%", combine);
  put("%NAME%", name);
  return s;
}

FakeCatalog bySource() {
  FakeCatalog c;
  c.groups["source"] = {stringGroup("accumulate", 30, 3000), stringGroup("branch", 20, 2000),
                        stringGroup("filter", 50, 5000)};
  c.groups["overall_score"] = {};
  for (int v = 1; v <= 5; ++v)
    c.groups["overall_score"].push_back(ColumnGroup{ColumnValue{MetadataValue::Kind::Number, double(v), {}}, 10, 100, 0, 0});
  return c;
}

TEST(Plan, UnitsByAColumnAreItsValues) {
  auto p = planText(byRecipe("source"), bySource());
  ASSERT_TRUE(p->plan) << p->printed();
  const Plan &plan = *p->plan;
  EXPECT_EQ(countTrain(plan, "src/"), 3u);
  const PlanNode &filter = p->node("src/source=filter");
  // Each unit trains on its own stream: the parent filtered by the value, with its counts.
  const llvm::json::Object *unit = plan.streams.getObject("code%source=filter");
  ASSERT_TRUE(unit);
  EXPECT_EQ(*unit->getInteger("train_tokens"), 5000);
  EXPECT_EQ(*unit->getInteger("train_documents"), 50);
  EXPECT_EQ(unit->getString("root"), llvm::StringRef("code"));
  const llvm::json::Object *u = unit->getObject("unit");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->getString("by"), llvm::StringRef("source"));
  EXPECT_EQ(u->getString("value"), llvm::StringRef("filter"));
  EXPECT_FALSE(u->get("seed")); // grouping by a value does not depend on the seed
  EXPECT_EQ(filter.tokensByStream.at("code%source=filter"), 48u * 1024);
  EXPECT_EQ(filter.tokensByStream.at("prose"), 16u * 1024);
  // 48Ki tokens of a 5000-token unit: its epochs are known, and past 4 they warn.
  EXPECT_NEAR(filter.epochsAtEnd.at("code%source=filter"), 48.0 * 1024 / 5000, 1e-9);
  EXPECT_NE(p->printed().find("[repeated-data]"), std::string::npos);
  // 3 singletons and 3 pairs, named by value; the ledger counts each unit once.
  EXPECT_GE(plan.findNode("src{accumulate,filter}"), 0);
  EXPECT_GE(plan.findNode("ppl@src{branch}"), 0);
  ASSERT_EQ(plan.ablations.size(), 1u);
  EXPECT_EQ(plan.ablations[0].combinations, 6u);
  EXPECT_EQ(plan.ablations[0].unitTokens, 3u * 64 * 1024);
  EXPECT_EQ(plan.ablations[0].directTokens, (3u * 1 + 3u * 2) * 64 * 1024);

  // Listed combinations name values; numbers by their shortest text.
  auto listed = planText(byRecipe("overall_score", "[[\"1\", \"5\"], [\"3\"]]"), bySource());
  ASSERT_TRUE(listed->plan) << listed->printed();
  EXPECT_EQ(countTrain(*listed->plan, "src/overall_score="), 5u);
  EXPECT_GE(listed->plan->findNode("src{1,5}"), 0);
  const llvm::json::Object *five = listed->plan->streams.getObject("code%overall_score=5");
  ASSERT_TRUE(five);
  EXPECT_EQ(five->getObject("unit")->getNumber("value"), 5.0);
  auto unknown = planText(byRecipe("source", "[[\"accumulate\", \"filtr\"]]"), bySource());
  EXPECT_FALSE(unknown->plan);
  EXPECT_NE(unknown->printed().find("unit 'filtr' is not one of accumulate, branch, filter"), std::string::npos)
      << unknown->printed();
}

TEST(Plan, UnitsByAColumnHaveDistinctNamesWhateverTheirValues) {
  // A column that holds numbers in one dataset and strings in another, and strings that
  // read like another value's label: every value is a unit of its own name.
  FakeCatalog c;
  auto number = [](double v) { return ColumnGroup{ColumnValue{MetadataValue::Kind::Number, v, {}}, 10, 100, 0, 0}; };
  c.groups["lang"] = {ColumnGroup{ColumnValue{}, 10, 100, 0, 0},
                      number(4),
                      number(INFINITY),
                      stringGroup("'en'", 10, 100),
                      stringGroup("(missing)", 10, 100),
                      stringGroup("4", 10, 100),
                      stringGroup("en", 10, 100),
                      stringGroup("inf", 10, 100)};
  auto p = planText(byRecipe("lang", "\"subsets(max = 1)\""), c);
  ASSERT_TRUE(p->plan) << p->printed();
  const Plan &plan = *p->plan;
  EXPECT_EQ(countTrain(plan, "src/"), 8u);
  std::map<std::string, const llvm::json::Value *> valueOf;
  for (llvm::StringRef label : {"(missing)", "4", "inf", "'\\'en\\''", "'(missing)'", "'4'", "en", "'inf'"}) {
    const llvm::json::Object *unit = plan.streams.getObject(("code%lang=" + label).str());
    ASSERT_TRUE(unit) << "no unit stream code%lang=" << label.str();
    valueOf[label.str()] = unit->getObject("unit")->get("value");
    EXPECT_GE(plan.findNode(("src/lang=" + label).str()), 0) << label.str();
  }
  EXPECT_EQ(*valueOf["(missing)"], llvm::json::Value(nullptr));
  EXPECT_EQ(*valueOf["'(missing)'"], llvm::json::Value("(missing)"));
  EXPECT_EQ(*valueOf["4"], llvm::json::Value(4.0));
  EXPECT_EQ(*valueOf["'4'"], llvm::json::Value("4"));
  EXPECT_EQ(*valueOf["'\\'en\\''"], llvm::json::Value("'en'"));
  EXPECT_EQ(*valueOf["en"], llvm::json::Value("en"));
}

TEST(Plan, UnitsByAColumnAreContentAddressed) {
  auto a = planText(byRecipe("source"), bySource());
  auto renamed = planText(byRecipe("source", "\"subsets(max = 2)\"", "other"), bySource());
  ASSERT_TRUE(a->plan && renamed->plan) << a->printed() << renamed->printed();
  EXPECT_EQ(a->node("src/source=filter").hash, renamed->node("other/source=filter").hash);
  EXPECT_EQ(a->node("src{accumulate,filter}").hash, renamed->node("other{accumulate,filter}").hash);
  EXPECT_NE(a->node("src/source=filter").hash, a->node("src/source=branch").hash);
  // Another value is another unit; the other units keep their hashes.
  FakeCatalog c = bySource();
  c.groups["source"][2].value.string = "filters";
  auto changed = planText(byRecipe("source"), c);
  ASSERT_TRUE(changed->plan) << changed->printed();
  EXPECT_NE(a->node("src/source=filter").hash, changed->node("src/source=filters").hash);
  EXPECT_EQ(a->node("src/source=branch").hash, changed->node("src/source=branch").hash);
}

TEST(Plan, UnitsByAColumnDiagnostics) {
  auto unknown = planText(byRecipe("sourse"), bySource());
  EXPECT_FALSE(unknown->plan);
  std::string out = unknown->printed();
  // At the column as written, with did-you-mean.
  EXPECT_NE(out.find("t.toml:24:34: error: stream 'code' has no metadata column 'sourse' [unknown-column]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("note: did you mean 'source'?"), std::string::npos) << out;

  FakeCatalog many;
  for (int i = 0; i < 65; ++i)
    many.groups["url"].push_back(stringGroup("u" + std::to_string(i), 1, 100));
  auto tooMany = planText(byRecipe("url"), many);
  EXPECT_FALSE(tooMany->plan);
  out = tooMany->printed();
  EXPECT_NE(out.find("t.toml:24:34: error: 'url' has 65 distinct values in stream 'code': more than 64 units to "
                     "train; use split = K for K random units [unit-count]"),
            std::string::npos)
      << out;

  FakeCatalog one;
  one.groups["domain"] = {stringGroup("code", 100, 10000)};
  auto single = planText(byRecipe("domain"), one);
  EXPECT_FALSE(single->plan);
  out = single->printed();
  EXPECT_NE(out.find("every training document of stream 'code' has domain = 'code': one unit leaves nothing to "
                     "ablate [unit-count]"),
            std::string::npos)
      << out;
}

TEST(Plan, UnitsByAColumnWithoutDataAreProvisional) {
  FakeCatalog none;
  none.absent = true;
  auto p = planText(byRecipe("source"), none);
  ASSERT_TRUE(p->plan) << p->printed();
  EXPECT_TRUE(p->plan->provisional);
  EXPECT_TRUE(llvm::is_contained(p->plan->provisionalReasons,
                                 "ablation 'src': its units are the values of 'source' in stream 'code', whose data "
                                 "is absent"));
  EXPECT_EQ(countTrain(*p->plan, "src/"), 0u);
  EXPECT_TRUE(p->plan->ablations.empty());
}

} // namespace
