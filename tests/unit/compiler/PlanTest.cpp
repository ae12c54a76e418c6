// The plan compiler: variants and sharing, cursors, hashes, ledger, data-aware lints.
#include "mixtape/compiler/Lower.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/model/Checkpoint.h"
#include "mixtape/plan/MemoryPlan.h"
#include "mixtape/plan/Mixture.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/plan/Print.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Checksum.h"
#include "mixtape/support/Files.h"

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
#include <set>
#include <tuple>

using namespace mixtape;
using namespace mixtape::plan;
using mixtape::plan::Plan;

namespace {

/// Every stream present, with a fixed size; or, with `absent`, none. Checkpoints are read
/// by the runtime's reader.
class FakeCatalog : public Environment {
public:
  uint64_t TrainTokens = 1'000'000'000'000; // large: no epoch warnings unless a test wants them
  bool Absent = false;
  uint64_t Leaked = 0;
  /// Training tokens of particular streams (others: TrainTokens).
  std::map<std::string, uint64_t> Sizes;
  /// Streams whose filter keeps no training document.
  std::set<std::string> FilteredEmpty;
  /// Root streams whose documents are prompt/response examples.
  std::set<std::string> WithPrompts;
  /// Derived streams get their root's fingerprint, as from the data layer.
  bool RootFingerprints = false;
  llvm::Expected<std::optional<StreamStats>> streamStats(const Plan &plan, llvm::StringRef name) override {
    if (Absent)
      return std::optional<StreamStats>();
    const Stream &s = plan.Streams.at(name.str());
    StreamStats st;
    // Content stands in, names never do; the data layer's fingerprint is the root's data.
    st.Fingerprint = "fp-" + s.Shards + (RootFingerprints ? "" : s.From.value_or(""));
    bool empty = FilteredEmpty.count(name.str()) != 0;
    st.TrainTokens = empty ? 0 : Sizes.count(name.str()) ? Sizes.at(name.str()) : TrainTokens;
    st.TrainDocuments = empty ? 0 : 1000;
    st.ValTokens = 1000;
    st.ValDocuments = 10;
    st.VocabSize = 264;
    if (WithPrompts.count(s.Root))
      st.Columns = {"prompt_tokens"};
    return std::optional<StreamStats>(st);
  }
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const Plan &, llvm::StringRef, llvm::StringRef) override {
    return std::optional<uint64_t>(Leaked);
  }
  /// Share of a stream's training tokens that the streams trained before it hold too, by
  /// stream; a stream not listed has unknown overlap (decided from the filters).
  std::map<std::string, double> SharedShare;
  llvm::Expected<std::optional<SharedDocuments>> sharedDocuments(const Plan &, llvm::StringRef name,
                                                                llvm::ArrayRef<std::string>) override {
    auto it = SharedShare.find(name.str());
    if (Absent || it == SharedShare.end())
      return std::optional<SharedDocuments>();
    return std::optional<SharedDocuments>(
        SharedDocuments{static_cast<uint64_t>(1000 * it->second), static_cast<uint64_t>(TrainTokens * it->second)});
  }
  /// Every stream's documents by column: `groups[column]`.
  std::map<std::string, std::vector<ColumnGroup>> Groups;
  llvm::Expected<std::optional<ColumnGroups>> groupBy(const Plan &, llvm::StringRef, llvm::StringRef column) override {
    if (Absent)
      return std::optional<ColumnGroups>();
    ColumnGroups out;
    for (const auto &[name, g] : Groups)
      out.Columns.push_back(name);
    if (auto it = Groups.find(column.str()); it != Groups.end())
      out.Groups = it->second;
    return std::optional<ColumnGroups>(out);
  }
  llvm::Expected<std::optional<CheckpointInfo>> checkpoint(llvm::StringRef folder) override {
    return model::inspectCheckpoint(folder, [](llvm::StringRef path) -> llvm::Expected<uint64_t> {
      llvm::Expected<FileDigest> digest = digestFile(path);
      if (!digest)
        return digest.takeError();
      return digest->Xxh3;
    });
  }
  llvm::Expected<std::optional<uint64_t>> tokenizerVocabulary(llvm::StringRef) override {
    return std::optional<uint64_t>();
  }
  /// What every tokenizer.json holds, by id; nullopt: the file is absent.
  std::optional<std::vector<std::string>> TokenizerTokens;
  llvm::Expected<std::optional<std::vector<std::string>>> tokenizerTokens(llvm::StringRef) override {
    return TokenizerTokens;
  }
  llvm::Expected<std::optional<TaskStats>> taskStats(const Plan &, const Task &) override {
    return std::optional<TaskStats>();
  }
  llvm::Expected<std::optional<uint64_t>> taskLeakage(const Plan &, const Task &, llvm::StringRef) override {
    return std::optional<uint64_t>();
  }
};

ColumnGroup stringGroup(std::string value, uint64_t documents, uint64_t tokens) {
  return ColumnGroup{ColumnValue{MetadataValue::Kind::String, 0, std::move(value)}, documents, tokens, 1, 100};
}

struct Planned {
  llvm::SourceMgr SM;
  DiagnosticEngine Diags{SM};
  std::unique_ptr<CheckedRecipe> Recipe;
  std::optional<plan::Plan> Plan;
  std::string printed() {
    std::string out;
    llvm::raw_string_ostream os(out);
    Diags.print(os);
    return out;
  }
  const Node &node(llvm::StringRef name) {
    std::optional<size_t> i = findNode(*Plan, name);
    EXPECT_TRUE(i) << "no node " << name.str();
    return Plan->Nodes[i.value_or(0)];
  }
  const TrainNode &train(llvm::StringRef name) {
    const TrainNode *t = node(name).train();
    EXPECT_TRUE(t) << name.str() << " is not a train node";
    static const TrainNode none;
    return t ? *t : none;
  }
};

std::unique_ptr<Planned> planText(llvm::StringRef text, FakeCatalog catalog = FakeCatalog()) {
  auto p = std::make_unique<Planned>();
  // As `mixtape plan` checks: with the streams' sizes, for lengths in epochs.
  StreamSizer sizer = [&](const CheckedRecipe &r) { return lowerStreamSizes(r, catalog, p->Diags); };
  if (auto root = parseRecipeText(text, "t.toml", p->Diags))
    p->Recipe = checkRecipe(*root, p->Diags, sizer);
  if (p->Recipe)
    p->Plan = lowerToPlan(*p->Recipe, catalog, defaultCost(), p->Diags);
  return p;
}

std::unique_ptr<Planned> planFile(llvm::StringRef rel, FakeCatalog catalog = FakeCatalog()) {
  auto p = std::make_unique<Planned>();
  p->Recipe = loadRecipe(std::string(MIXTAPE_SOURCE_DIR) + "/" + rel.str(), p->Diags);
  if (p->Recipe)
    p->Plan = lowerToPlan(*p->Recipe, catalog, defaultCost(), p->Diags);
  return p;
}

size_t countTrain(const Plan &plan, llvm::StringRef stagePrefix) {
  size_t n = 0;
  for (const Node &node : plan.Nodes)
    if (node.train() && llvm::StringRef(node.Name).startswith(stagePrefix))
      ++n;
  return n;
}

TEST(Plan, NorthStarVariantsAndSharing) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->Plan) << p->printed();
  const Plan &plan = *p->Plan;
  EXPECT_EQ(countTrain(plan, "adapt["), 4u);
  EXPECT_EQ(countTrain(plan, "anneal["), 4u);
  EXPECT_EQ(countTrain(plan, "long["), 4u);
  // stream trains once per replay value, cut at the anneal branch points 1B, 3B (5B is its end).
  EXPECT_EQ(countTrain(plan, "stream["), 12u);
  EXPECT_EQ(countTrain(plan, "stream_anneal["), 12u);
  // Each stream segment is shared by the stream_anneal variants that branch at or after it.
  const Node &first = p->node("stream[replay=r5]@0-954");
  EXPECT_EQ(first.Variants.size(), 4u); // stream[replay=r5] + its 3 anneals
  EXPECT_GT(plan.Sharing.SharedTokens, 0u);
  // The anneal at b1 starts from the first segment's end.
  const Node &b1 = p->node("stream_anneal[replay=r5,at=b1]");
  ASSERT_EQ(b1.Inputs.size(), 1u);
  EXPECT_EQ(plan.Nodes[b1.Inputs[0].Index].Name, "stream[replay=r5]@0-954");
  // Merges and the ablation: soup, ties, 8 units and 8 + 28 + 56 combinations.
  EXPECT_EQ(countTrain(plan, "which-sources/unit"), 8u);
  size_t combos = 0;
  for (const Node &n : plan.Nodes)
    combos += n.merge() && llvm::StringRef(n.Name).startswith("which-sources{");
  EXPECT_EQ(combos, 92u);
  // The ledger: 8 units once against each combination trained on its units' tokens.
  ASSERT_EQ(plan.Ablations.size(), 1u);
  uint64_t unit = p->train("which-sources/unit0").Ledger.Tokens;
  EXPECT_EQ(plan.Ablations[0].UnitTokens, 8 * unit);
  EXPECT_EQ(plan.Ablations[0].DirectTokens, (8 * 1 + 28 * 2 + 56 * 3) * unit);
}

TEST(Plan, CursorsContinueAcrossStagesAndReplay) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->Plan) << p->printed();
  const TrainNode &adapt = p->train("adapt[replay=r5]");
  const TrainNode &anneal = p->train("anneal[replay=r5]");
  uint64_t seqLen = adapt.Settings.SeqLen;
  const TrainData &adaptData = adapt.Settings.Data;
  uint64_t webSamples = adaptData.Samples.at("web");
  EXPECT_EQ(adaptData.Cursors.at("web"), 0u);
  // anneal replays web from where adapt stopped.
  EXPECT_EQ(anneal.Settings.Data.Cursors.at("web"), webSamples * seqLen);
  // 5% of adapt's samples are web (exact blending: within one sample).
  uint64_t medSamples = adaptData.Samples.at("med");
  EXPECT_NEAR(static_cast<double>(webSamples) / static_cast<double>(webSamples + medSamples), 0.05, 1e-5);
  EXPECT_NEAR(adapt.Ledger.ReplayFraction, 0.05, 1e-5); // web stands for the base model's data
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

/// Plans branchRecipe with each of `settings` on its anneal stage: each gives anneal a hash
/// of its own and leaves `upstream`'s as it is. Returns the plan of the first setting.
std::unique_ptr<Planned> expectEachHashesAnnealAlone(llvm::ArrayRef<const char *> settings, llvm::StringRef upstream) {
  std::set<std::string> hashes;
  std::unique_ptr<Planned> first;
  for (const char *setting : settings) {
    auto p = planText(branchRecipe("1Mi", "3e-4", "1Mi", setting));
    if (!p->Plan) {
      ADD_FAILURE() << setting << "\n" << p->printed();
      continue;
    }
    EXPECT_TRUE(hashes.insert(p->node("anneal").Hash).second) << "the same hash as another setting: " << setting;
    if (!first)
      first = std::move(p);
    else
      EXPECT_EQ(p->node(upstream).Hash, first->node(upstream).Hash) << setting;
  }
  return first;
}

TEST(Plan, ExecutionOnlySettingsChangeNoHash) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("2Mi", "3e-4", "512Ki", ""));
  ASSERT_TRUE(a->Plan) << a->printed();
  ASSERT_TRUE(b->Plan) << b->printed();
  ASSERT_EQ(a->Plan->Nodes.size(), b->Plan->Nodes.size());
  for (size_t i = 0; i < a->Plan->Nodes.size(); ++i)
    EXPECT_EQ(a->Plan->Nodes[i].Hash, b->Plan->Nodes[i].Hash) << a->Plan->Nodes[i].Name;
  // ZeRO-1 only says how the ranks keep the optimizer state: exec, not hashed.
  auto zero1 = planText(branchRecipe("1Mi", "3e-4", "1Mi", "zero1 = true"));
  ASSERT_TRUE(zero1->Plan) << zero1->printed();
  for (size_t i = 0; i < a->Plan->Nodes.size(); ++i)
    EXPECT_EQ(a->Plan->Nodes[i].Hash, zero1->Plan->Nodes[i].Hash) << a->Plan->Nodes[i].Name;
  EXPECT_EQ(zero1->train("anneal").Exec.Shard, plan::ShardMode::Optimizer) << "zero1 = true is shard = \"optimizer\"";
  EXPECT_EQ(zero1->train("base@0-512").Exec.Shard, plan::ShardMode::None) << "the parent stage keeps its state whole";
}

/// A one-stage llama (264-token vocabulary, 2 blocks of d 64) of 32 sequences of 128 per
/// step, with `stage` and `resources` added to its stage and its [resources].
std::string resourcesRecipe(const std::string &stage, const std::string &resources) {
  return R"toml(
[recipe]
name = "fit"
[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128
[streams.a]
shards = "synth:prose"
[[stage]]
name = "adapt"
tokens = "1Mi"
batch = "32 sequences"
mix = "a"
lr = "constant(1e-3)"
)toml" + stage + "\n[resources]\n" + resources + "\n";
}

TEST(Plan, ShardAndActivationCheckpointingAreExecutionOnly) {
  auto plain = planText(resourcesRecipe("", ""));
  auto set = planText(resourcesRecipe("shard = \"full\"\nactivation_checkpointing = \"every 2\"", ""));
  ASSERT_TRUE(plain->Plan) << plain->printed();
  ASSERT_TRUE(set->Plan) << set->printed();
  EXPECT_EQ(plain->Plan->Nodes[1].Hash, set->Plan->Nodes[1].Hash);
  EXPECT_EQ(plain->train("adapt").Exec.Shard, plan::ShardMode::None);
  EXPECT_EQ(plain->train("adapt").Exec.ActivationCheckpointing, 0u);
  EXPECT_EQ(plain->train("adapt").Exec.MicroBatch, 32u) << "without [resources], the batch as today";
  EXPECT_EQ(set->train("adapt").Exec.Shard, plan::ShardMode::Full);
  EXPECT_EQ(set->train("adapt").Exec.ActivationCheckpointing, 2u);
  auto full = planText(resourcesRecipe("activation_checkpointing = \"full\"\nzero1 = true\nshard = \"optimizer\"", ""));
  ASSERT_TRUE(full->Plan) << full->printed();
  EXPECT_EQ(full->train("adapt").Exec.ActivationCheckpointing, 1u);
  EXPECT_EQ(full->train("adapt").Exec.Shard, plan::ShardMode::Optimizer) << "zero1 = true agrees with optimizer";
}

TEST(Plan, BadShardAndCheckpointingSettingsPointAtTheirText) {
  auto both = planText(resourcesRecipe("shard = \"full\"\nzero1 = true", ""));
  EXPECT_FALSE(both->Plan);
  EXPECT_NE(both->printed().find("t.toml:19:9: error: stage 'adapt' sets zero1 = true and shard = \"full\", which "
                                 "disagree"),
            std::string::npos)
      << both->printed();
  auto every = planText(resourcesRecipe("activation_checkpointing = \"every x\"", ""));
  EXPECT_FALSE(every->Plan);
  EXPECT_NE(every->printed().find("t.toml:18:35: error: activation_checkpointing must be \"none\", \"full\" or "
                                  "\"every N\""),
            std::string::npos)
      << every->printed();
  auto word = planText(resourcesRecipe("activation_checkpointing = \"ful\"", ""));
  EXPECT_NE(word->printed().find("did you mean 'full'?"), std::string::npos) << word->printed();
  auto memory = planText(resourcesRecipe("", "gpus = 2\ngpu_memory = \"80 GiX\""));
  EXPECT_NE(memory->printed().find("gpu_memory must be a byte size"), std::string::npos) << memory->printed();
}

TEST(Plan, ResourcesPickTheLargestMicroBatchThatFits) {
  auto plain = planText(resourcesRecipe("", ""));
  ASSERT_TRUE(plain->Plan) << plain->printed();
  // GPUs just large enough for 4 of each rank's 16 sequences at once, unsharded and
  // without checkpointing; 8 need more.
  plan::MemoryConfig c;
  c.Model = plain->Plan->Model;
  c.SeqLen = 128;
  c.World = 2;
  c.MicroBatch = 4;
  const double need = plan::estimateMemory(c).total();
  c.MicroBatch = 8;
  ASSERT_GT(plan::estimateMemory(c).total(), need);
  const auto gpuMemory = static_cast<uint64_t>(std::ceil(need / plan::Cluster::kUsableFraction));
  auto fit = planText(resourcesRecipe("", llvm::formatv("gpus = 2\ngpu_memory = {0}", gpuMemory).str()));
  ASSERT_TRUE(fit->Plan) << fit->printed();
  EXPECT_EQ(fit->train("adapt").Exec.MicroBatch, 4u);
  EXPECT_EQ(fit->train("adapt").Exec.Shard, plan::ShardMode::None);
  EXPECT_EQ(fit->train("adapt").Exec.ActivationCheckpointing, 0u);
  EXPECT_EQ(fit->Plan->Nodes[1].Hash, plain->Plan->Nodes[1].Hash) << "what runs where is not hashed";

  // A written micro-batch of 8 is kept: no sharding nor checkpointing makes room for it on
  // these GPUs, and the fix is the micro-batch that fits.
  auto written = planText(
      resourcesRecipe("micro_batch = 8", llvm::formatv("gpus = 2\ngpu_memory = {0}", gpuMemory).str()));
  EXPECT_FALSE(written->Plan);
  EXPECT_NE(written->printed().find("(shard full, micro_batch 8, activation_checkpointing full)"), std::string::npos)
      << written->printed();
  EXPECT_NE(written->printed().find("note: it fits with shard = \"none\", micro_batch = 4 and "
                                    "activation_checkpointing = \"none\""),
            std::string::npos)
      << written->printed();
}

TEST(Plan, AStageThatCannotFitIsWontFitWithTheFix) {
  auto tiny = planText(resourcesRecipe("shard = \"none\"", "gpus = 2\ngpu_memory = \"4MiB\""));
  EXPECT_FALSE(tiny->Plan);
  EXPECT_NE(tiny->printed().find("t.toml:13:8: error: stage 'adapt' needs"), std::string::npos) << tiny->printed();
  EXPECT_NE(tiny->printed().find("[wont-fit]"), std::string::npos) << tiny->printed();
  EXPECT_NE(tiny->printed().find("note: it fits with shard = \"full\""), std::string::npos) << tiny->printed();
  auto odd = planText(resourcesRecipe("", "gpus = 3\ngpu_memory = \"80GiB\""));
  EXPECT_NE(odd->printed().find("its batch of 32 sequences does not split over 3 GPUs [wont-fit]"), std::string::npos)
      << odd->printed();
}

TEST(Plan, FloatSpellingDoesNotMatter) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "0.0003", "1Mi", ""));
  ASSERT_TRUE(a->Plan && b->Plan);
  EXPECT_EQ(a->node("anneal").Hash, b->node("anneal").Hash);
}

TEST(Plan, AStagesLrChangesItAndDownstreamButNothingUpstream) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "2e-4", "1Mi", ""));
  ASSERT_TRUE(a->Plan && b->Plan);
  EXPECT_EQ(a->node("init").Hash, b->node("init").Hash);
  EXPECT_EQ(a->node("base@0-512").Hash, b->node("base@0-512").Hash);
  EXPECT_EQ(a->node("base@512-1024").Hash, b->node("base@512-1024").Hash);
  EXPECT_NE(a->node("anneal").Hash, b->node("anneal").Hash);
}

// freeze, lr_scale and lora change what a stage computes: every value its own hash (caching
// stays correct), the parent's nodes untouched, and the ledger counts what trains. The llama
// (d 64, 4 heads and KV heads, ffn 192, vocabulary 264) has blocks of 4 x 64 x 64 (q, k, v, o)
// + 3 x 64 x 192 (gate, up, down) + 2 x 64 (norms) = 53,376 parameters, embedding and head of
// 264 x 64 each, a final norm of 64; a rank-2 adapter on q and v has 2 x (64 + 64) per target
// and block.
TEST(Plan, FreezeLrScaleAndLoraAreHashed) {
  const char *settings[] = {"",
                            "freeze = [\"embeddings\"]",
                            "freeze = [\"embeddings\", \"layers.0\"]",
                            "lr_scale = { embeddings = 0.1 }",
                            "lr_scale = { embeddings = 0.2 }",
                            "lr_scale = { \"layers.0-1\" = 0.2 }",
                            "lora = { rank = 2, targets = [\"q\", \"v\"] }",
                            "lora = { rank = 4, targets = [\"q\", \"v\"] }",
                            "lora = { rank = 2, alpha = 4, targets = [\"q\", \"v\"] }",
                            "lora = { rank = 2, targets = [\"q\", \"k\"] }",
                            "lora = { rank = 2, targets = [\"q\", \"v\"], dropout = 0.1 }"};
  std::unique_ptr<Planned> first = expectEachHashesAnnealAlone(settings, "base@0-512");
  ASSERT_TRUE(first && first->Plan);
  auto lora = planText(branchRecipe("1Mi", "3e-4", "1Mi", settings[6]));
  const Ledger &ledger = lora->train("anneal").Ledger;
  ASSERT_TRUE(ledger.Parameters && ledger.TrainableParameters);
  EXPECT_EQ(*ledger.Parameters, 2u * 264 * 64 + 2 * 53376 + 64);
  EXPECT_EQ(*ledger.TrainableParameters, 2u * 2 * (2 * (64 + 64)));
  EXPECT_FALSE(first->train("anneal").Ledger.Parameters) << "a node that trains everything says nothing";
  auto frozen = planText(branchRecipe("1Mi", "3e-4", "1Mi", settings[2]));
  EXPECT_EQ(frozen->train("anneal").Ledger.TrainableParameters, std::optional<uint64_t>(53376 + 64 + 264 * 64));
}

// after.grow: every shape and noise its own hash, the parent's nodes untouched; the growing
// node carries the grown architecture, and its cost is the grown model's. Grown to 4 blocks
// of d 128 (8 heads and KV heads of 16, ffn 2 x 192): per block 128 x (128 + 2 x 8 x 16) +
// 128 x 128 (attention) + 3 x 128 x 384 (mlp) = 212,992, so N = 4 x 212,992 + 264 x 128
// (head) = 885,760 and 6N + 12 L d T = 6,100,992 FLOPs per token at T = 128.
TEST(Plan, GrowthIsHashedAndSizesTheGrowingNode) {
  const char *grows[] = {"",
                         ", grow = { layers = 3 }",
                         ", grow = { layers = 4 }",
                         ", grow = { d_model = 128 }",
                         ", grow = { layers = 4, d_model = 128 }",
                         ", grow = { layers = 4, d_model = 128, noise = 0.01 }"};
  std::set<std::string> hashes;
  std::unique_ptr<Planned> first;
  for (const char *grow : grows) {
    std::string text = branchRecipe("1Mi", "3e-4", "1Mi", "");
    text.replace(text.find("at = \"2Mi\""), 10, std::string("at = \"2Mi\"") + grow);
    auto p = planText(text);
    ASSERT_TRUE(p->Plan) << grow << "\n" << p->printed();
    EXPECT_TRUE(hashes.insert(p->node("anneal").Hash).second) << "the same hash as another growth: " << grow;
    if (!first) {
      first = std::move(p);
      continue;
    }
    EXPECT_EQ(p->node("base@0-512").Hash, first->node("base@0-512").Hash) << grow;
  }
  EXPECT_FALSE(first->train("anneal").Settings.Grow);
  std::string text = branchRecipe("1Mi", "3e-4", "1Mi", "");
  text.replace(text.find("at = \"2Mi\""), 10, std::string("at = \"2Mi\"") + grows[4]);
  auto grown = planText(text);
  ASSERT_TRUE(grown->Plan) << grown->printed();
  const TrainNode &anneal = grown->train("anneal");
  ASSERT_TRUE(anneal.Settings.Grow);
  const plan::Architecture &m = anneal.Settings.Grow->Model;
  EXPECT_EQ(std::make_tuple(m.Layers, m.DModel, m.Heads, m.KVHeads, m.Ffn, m.TieEmbeddings),
            std::make_tuple(uint64_t(4), uint64_t(128), uint64_t(8), uint64_t(8), uint64_t(384), false));
  EXPECT_EQ(anneal.Settings.Grow->Noise, 0.0);
  EXPECT_DOUBLE_EQ(anneal.Ledger.Flops, 6100992.0 * 524288);
}

// `normalize` where a merge omits it: MergeKit's defaults (linear and ties divide by the sum of
// the weights, task_arithmetic and dare_* do not); where it says, what it says, and the hash
// follows.
TEST(Plan, MergesNormalizeAsTheRecipeSaysElseAsMergeKitDoes) {
  std::string text = branchRecipe("1Mi", "3e-4", "1Mi", "");
  auto merge = [&](const char *name, const char *method, const char *extra) {
    text += llvm::formatv("[[merge]]\nname = \"{0}\"\nof = [\"base\", \"anneal\"]\nmethod = \"{1}\"\n{2}\n", name,
                          method, extra)
                .str();
  };
  merge("soup", "linear", "");
  merge("ties", "ties", "base = \"init\"\ndensity = 0.5");
  merge("ties-sum", "ties", "base = \"init\"\ndensity = 0.5\nnormalize = false");
  merge("ta", "task_arithmetic", "base = \"init\"");
  merge("ta-mean", "task_arithmetic", "base = \"init\"\nnormalize = true");
  merge("dare", "dare_linear", "base = \"init\"\ndensity = 0.5");
  merge("dare-mean", "dare_ties", "base = \"init\"\ndensity = 0.5\nnormalize = true");
  auto p = planText(text);
  ASSERT_TRUE(p->Plan) << p->printed();
  for (auto [name, normalize] : {std::pair{"soup", true}, {"ties", true}, {"ties-sum", false}, {"ta", false},
                                 {"ta-mean", true}, {"dare", false}, {"dare-mean", true}}) {
    const MergeNode *m = p->node(name).merge();
    ASSERT_TRUE(m) << name;
    EXPECT_EQ(m->Settings.Normalize, normalize) << name;
  }
  EXPECT_NE(p->node("ta").Hash, p->node("ta-mean").Hash);
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
  ASSERT_TRUE(a->Plan) << a->printed();
  ASSERT_TRUE(b->Plan) << b->printed();
  EXPECT_EQ(a->node("anneal").Hash, b->node("cooldown").Hash);
}

TEST(Plan, FiltersUpADerivationChainCount) {
  // narrow and wide have the same own filter and the same root; narrow's parent filters more.
  std::string recipe = R"toml(
[recipe]
name = "chain"
[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128
[streams.code]
shards = "synth:code"
[streams.clean]
from = "code"
where = "source != 'forum'"
[streams.narrow]
from = "clean"
where = "overall_score >= 3"
[streams.wide]
from = "code"
where = "overall_score >= 3"
[[stage]]
name = "a"
tokens = "1Mi"
batch = "8 sequences"
mix = "narrow"
lr = "constant(1e-3)"
[[stage]]
name = "b"
tokens = "1Mi"
batch = "8 sequences"
mix = "wide"
lr = "constant(1e-3)"
)toml";
  FakeCatalog catalog;
  catalog.RootFingerprints = true;
  auto p = planText(recipe, catalog);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_NE(p->node("a").Hash, p->node("b").Hash);
  // The same chain under other names is the same data.
  std::string renamed = recipe;
  renamed.replace(renamed.find("[streams.clean]"), 15, "[streams.tidy]");
  renamed.replace(renamed.find("from = \"clean\""), 14, "from = \"tidy\"");
  auto q = planText(renamed, catalog);
  ASSERT_TRUE(q->Plan) << q->printed();
  EXPECT_EQ(p->node("a").Hash, q->node("a").Hash);
}

TEST(Plan, AVariantThroughASharedPrefixSeesTheSameDataAsAlone) {
  // anneal branched at 2Mi, alone and as one of three branch points.
  auto alone = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto swept = planText(branchRecipe(
      "1Mi", "3e-4", "1Mi", "[sweep]\nat = { key = \"anneal.after.at\", values = { early = \"1Mi\", mid = \"2Mi\", late = \"3Mi\" } }"));
  ASSERT_TRUE(alone->Plan) << alone->printed();
  ASSERT_TRUE(swept->Plan) << swept->printed();
  const TrainData &a = alone->train("anneal").Settings.Data, &b = swept->train("anneal[at=mid]").Settings.Data;
  EXPECT_EQ(a.Cursors, b.Cursors);
  EXPECT_EQ(a.Samples, b.Samples);
  EXPECT_EQ(countTrain(*swept->Plan, "base@"), 4u); // cut at 1Mi, 2Mi, 3Mi and its end
}

TEST(Plan, WithoutDataThePlanIsProvisional) {
  FakeCatalog none;
  none.Absent = true;
  auto p = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""), none);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_TRUE(p->Plan->Provisional);
  EXPECT_TRUE(p->node("anneal").Provisional);
  EXPECT_FALSE(p->node("init").Provisional);
}

TEST(Plan, DataAwareLints) {
  FakeCatalog small;
  small.TrainTokens = 512 * 1024; // base draws about 3.6Mi tokens of a: about 7 epochs
  small.Leaked = 3;
  std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
  std::string a = "[streams.a]\nshards = \"synth:prose\"";
  recipe.replace(recipe.find(a), a.size(), a + "\nval = \"1%\"");
  recipe += "\n[[eval]]\nname = \"v\"\nstreams = [\"a.val\"]\n";
  auto p = planText(recipe, small);
  ASSERT_TRUE(p->Plan) << p->printed();
  std::string out = p->printed();
  EXPECT_NE(out.find("stream 'a' is repeated"), std::string::npos) << out;
  EXPECT_NE(out.find("[repeated-data]"), std::string::npos) << out;
  EXPECT_NE(out.find("3 documents of 'a.val' are also in the training data of 'b'"), std::string::npos) << out;
}

// A long node without checkpoints loses everything to a kill: hours of a 118M model (6 *
// parameters * 4Gi tokens at the default cost model) warn; the short anneal does not.
TEST(Plan, ALongNodeWithoutCheckpointsIsAWarning) {
  std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
  auto put = [&](const std::string &from, const std::string &to) { recipe.replace(recipe.find(from), from.size(), to); };
  put("layers = 2\nd_model = 64", "layers = 12\nd_model = 768");
  put("tokens = \"4Mi\"", "tokens = \"4Gi\"");
  put("checkpoint = { every = \"1Mi\" }\n", "");
  FakeCatalog big;
  big.TrainTokens = 64ull << 30;
  auto p = planText(recipe, big);
  ASSERT_TRUE(p->Plan) << p->printed();
  std::string out = p->printed();
  const std::string warning = "'base@";
  ASSERT_NE(out.find(warning), std::string::npos) << out;
  EXPECT_NE(out.find(" GPU-minutes by the cost model and writes no checkpoint: a kill, a preemption or a time limit "
                     "loses all of it; give stage 'base' checkpoint = { every = \"...\" } [no-checkpoint]"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("'anneal"), std::string::npos) << out;
  put("[[stage]]\nname = \"anneal\"", "checkpoint = { every = \"1Gi\" }\n[[stage]]\nname = \"anneal\"");
  auto checkpointed = planText(recipe, big);
  ASSERT_TRUE(checkpointed->Plan) << checkpointed->printed();
  EXPECT_EQ(checkpointed->printed().find("no-checkpoint"), std::string::npos) << checkpointed->printed();
}

TEST(Plan, AFilterThatKeepsNothingIsAnErrorAtTheFilter) {
  std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
  std::string b = "[streams.b]\nshards = \"synth:code\"";
  recipe.replace(recipe.find(b), b.size(), b + "\nwhere = \"score >= 9\"");
  FakeCatalog catalog;
  catalog.FilteredEmpty = {"b"};
  auto p = planText(recipe, catalog);
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("t.toml:14:9: error: stream 'b': the filter '(score >= 9)' keeps no training document "
                              "[empty-filter]"),
            std::string::npos)
      << p->printed();
  catalog.FilteredEmpty.clear();
  EXPECT_TRUE(planText(recipe, catalog)->Plan);
}

TEST(Plan, CostFollowsSixNPlusAttention) {
  auto p = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  ASSERT_TRUE(p->Plan);
  const TrainNode &n = p->train("anneal");
  // llama: d=64, 4 heads, kv 4, ffn = ceil(64*8/3 / 64)*64 = 192, vocab 264, 2 layers.
  double attention = 64.0 * (64 + 2 * 4 * 16) + 64.0 * 64, mlp = 3.0 * 64 * 192;
  double n6 = 6 * (2 * (attention + mlp) + 264.0 * 64);
  double perToken = n6 + 12.0 * 2 * 64 * 128;
  EXPECT_DOUBLE_EQ(n.Ledger.Flops, perToken * static_cast<double>(n.Ledger.Tokens));
}

const char *const kSizeSweep = R"toml(
[recipe]
name = "sizes"
[model]
family = "llama"
heads = 4
seq_len = 128
[streams.web]
shards = "web/*.bin"
[streams.med]
shards = "med/*.bin"
val = "1%"
[[stage]]
name = "pretrain"
tokens = "64Ki"
batch = "8 sequences"
mix = "web"
lr = "constant(1e-3)"
[[stage]]
name = "cpt"
after = "pretrain"
tokens = "32Ki"
mix = "0.5 med + 0.5 web"
lr = "constant(1e-3)"
[sweep]
size = { key = "model.layers", values = { small = 1, large = 2 } }
width = { key = "model.d_model", values = { small = 32, large = 64 } }
ratio = { key = "cpt.mix", values = { r25 = "0.25 med + 0.75 web", r75 = "0.75 med + 0.25 web" } }
zip = ["size", "width"]
[[eval]]
name = "ppl"
streams = ["med.val"]
on = ["cpt[*]"]
)toml";

TEST(Plan, ModelSizeAxesGiveEachSizeItsInitChainAndCost) {
  auto p = planText(kSizeSweep);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->Diags.errorCount(), 0u) << p->printed();
  const Node &small = p->node("init[size=small,width=small]"), &large = p->node("init[size=large,width=large]");
  EXPECT_FALSE(findNode(*p->Plan, "init"));
  EXPECT_EQ(small.init()->Settings.Model.Layers, 1u);
  EXPECT_EQ(small.init()->Settings.Model.DModel, 32u);
  EXPECT_EQ(large.init()->Settings.Model.Layers, 2u);
  EXPECT_EQ(large.init()->Settings.Model.DModel, 64u);
  // ffn defaults per size: ceil(d * 8/3 / 64) * 64 = 128 for 32, 192 for 64; kv_heads = heads.
  EXPECT_EQ(small.init()->Settings.Model.Ffn, 128u);
  EXPECT_EQ(large.init()->Settings.Model.Ffn, 192u);
  EXPECT_EQ(small.init()->Settings.Model.KVHeads, 4u);
  EXPECT_NE(small.Hash, large.Hash);
  // One pretraining chain per size, one continuation per size and ratio, each from its own.
  EXPECT_EQ(countTrain(*p->Plan, "pretrain"), 2u);
  EXPECT_EQ(countTrain(*p->Plan, "cpt"), 4u);
  const Node &pre = p->node("pretrain[size=small,width=small]");
  EXPECT_EQ(pre.Inputs.front().Index, *findNode(*p->Plan, small.Name));
  EXPECT_NE(pre.Hash, p->node("pretrain[size=large,width=large]").Hash);
  EXPECT_EQ(p->node("cpt[size=large,width=large,ratio=r25]").Inputs.front().Index,
            *findNode(*p->Plan, "pretrain[size=large,width=large]"));
  // FLOPs per token are each size's own 6N + 12 L d T (PaLM), by hand:
  auto perToken = [](double layers, double d, double ffn) {
    double headDim = d / 4, attention = d * (d + 2 * 4 * headDim) + d * d, mlp = 3 * d * ffn;
    return 6 * (layers * (attention + mlp) + 264 * d) + 12 * layers * d * 128;
  };
  const TrainNode &t = p->train("cpt[size=small,width=small,ratio=r25]");
  EXPECT_DOUBLE_EQ(t.Ledger.Flops, perToken(1, 32, 128) * static_cast<double>(t.Ledger.Tokens));
  const TrainNode &u = p->train("pretrain[size=large,width=large]");
  EXPECT_DOUBLE_EQ(u.Ledger.Flops, perToken(2, 64, 192) * static_cast<double>(u.Ledger.Tokens));
  // The plan's model is the first size's; the ledger of variants is per size.
  EXPECT_EQ(p->Plan->Model.Layers, 1u);
  EXPECT_EQ(p->Plan->Variants.count("cpt[size=large,width=large,ratio=r75]"), 1u);
}

TEST(Plan, ModelSizeAxesDiagnostics) {
  auto check = [](std::string from, std::string to, llvm::StringRef expected) {
    std::string text = kSizeSweep;
    size_t at = text.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    auto p = planText(text);
    EXPECT_NE(p->printed().find(expected.str()), std::string::npos) << p->printed();
  };
  check("model.layers", "model.layer", "a [model] sweep varies a size: layers, d_model, heads, kv_heads or ffn");
  check("small = 1, large = 2", "small = 1, large = 0", "model.layers must be a positive whole number");
  check("small = 32, large = 64", "small = 30, large = 64",
        "the model [size=small,width=small]: d_model 30 is not divisible by heads 4");
  check("on = [\"cpt[*]\"]", "on = [\"init\"]",
        "a sweep over model sizes gives each size its own init: name a stage's variants instead");
  check("[[eval]]", "[[merge]]\nname = \"m\"\nof = [\"cpt[size=small,width=small,ratio=r25]\", "
                    "\"cpt[size=large,width=large,ratio=r25]\"]\n[[eval]]",
        "merging models of different sizes: 'cpt[size=small,width=small,ratio=r25]' ([size=small,width=small]) and "
        "'cpt[size=large,width=large,ratio=r25]' ([size=large,width=large])");
}

/// A recipe continuing from the Hugging Face folder "ckpt" beside it, in a temp folder.
class HfCheckpoint : public testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("mixtape-hf-plan", Dir));
    ASSERT_FALSE(llvm::sys::fs::create_directories(path("ckpt")));
    std::string recipe = branchRecipe("1Mi", "3e-4", "1Mi", "");
    std::string sizes = "layers = 2\nd_model = 64\nheads = 4\n";
    recipe.replace(recipe.find(sizes), sizes.size(), "init = \"hf:ckpt\"\n");
    write("recipe.toml", recipe);
    writeWeights(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  }
  void TearDown() override { llvm::sys::fs::remove_directories(Dir); }

  std::string path(llvm::StringRef name) const { return std::string(Dir) + "/" + name.str(); }
  void write(llvm::StringRef name, llvm::StringRef text) { std::ofstream(path(name), std::ios::binary) << text.str(); }
  void writeConfig(llvm::StringRef type, uint64_t vocab, llvm::StringRef extra = "") {
    if (type == "gpt2")
      write("ckpt/config.json", llvm::formatv(R"({{"model_type": "gpt2", "vocab_size": {0}, "n_layer": 2,
          "n_embd": 64, "n_head": 4, "n_positions": 128})",
                                              vocab)
                                    .str());
    else
      write("ckpt/config.json", llvm::formatv(R"({{"model_type": "{0}", "vocab_size": {1}, "num_hidden_layers": 2,
          "hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 192,
          "max_position_embeddings": 128{2}})",
                                              type, vocab, extra)
                                    .str());
  }
  /// A safetensors file whose header is `header` (padded to 8 bytes) and 16 bytes of data,
  /// the last one `last`.
  void writeWeights(std::string header, char last = 'w') {
    header.resize((header.size() + 7) / 8 * 8, ' ');
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i)
      bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write("ckpt/model.safetensors", bytes + header + std::string(15, 'w') + last);
  }
  std::unique_ptr<Planned> plan() {
    auto p = std::make_unique<Planned>();
    p->Recipe = loadRecipe(path("recipe.toml"), p->Diags);
    FakeCatalog catalog;
    if (p->Recipe)
      p->Plan = lowerToPlan(*p->Recipe, catalog, defaultCost(), p->Diags);
    return p;
  }
  std::string checkpoint() {
    auto p = plan();
    EXPECT_TRUE(p->Plan) << p->printed();
    return p->Plan ? p->node("init").init()->Settings.Checkpoint.value_or("") : "";
  }

  llvm::SmallString<128> Dir;
};

TEST_F(HfCheckpoint, FamilyMustBeTheCheckpointsModelType) {
  writeConfig("gpt2", 300);
  auto p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find(path("ckpt/config.json") + ": the checkpoint's model_type 'gpt2' is not the "
                                                         "recipe's model family 'llama' (set family = \"gpt2\" in "
                                                         "[model]) [data]"),
            std::string::npos)
      << p->printed();
  writeConfig("qwen2", 300); // a Llama-family architecture
  EXPECT_TRUE(plan()->Plan);
}

TEST_F(HfCheckpoint, TheTokenizersVocabularyMustFitTheCheckpoint) {
  writeConfig("llama", 256);
  auto p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("error: the tokenizer's vocabulary of 264 tokens (stream 'a') exceeds the "
                              "checkpoint's vocab_size 256 (" +
                              path("ckpt") + "/config.json) [data]"),
            std::string::npos)
      << p->printed();
  writeConfig("llama", 300);
  p = plan();
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->Plan->Model.Vocab, 300u);
  EXPECT_EQ(p->Plan->Model.Layers, 2u);
  EXPECT_EQ(p->Plan->Model.Ffn, 192u);
}

// The linter checks the sizes a recipe writes; planning checks the checkpoint's.
TEST_F(HfCheckpoint, AModelNoMachineHoldsIsRefusedWhenPlanned) {
  writeConfig("llama", 100'000'000'000);
  auto p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find(path("recipe.toml") + ": error: the model has 6.4e+12 parameters (layers 2, d_model 64, "
                                                    "ffn 192, vocab 100000000000), more than the limit of 1e+12: no "
                                                    "machine holds it [bad-value]"),
            std::string::npos)
      << p->printed();
}

// A hundred thousand levels once overflowed the JSON parser's stack.
TEST_F(HfCheckpoint, DeeplyNestedFilesAreErrorsNamingThem) {
  auto expectRefused = [&](const std::string &file) {
    write("ckpt/" + file, std::string(100000, '[') + std::string(100000, ']'));
    auto p = plan();
    EXPECT_FALSE(p->Plan);
    EXPECT_NE(p->printed().find("error: checkpoint 'hf:ckpt': " + path("ckpt/" + file) +
                                ": byte 512: JSON nested deeper than 512 levels [data]"),
              std::string::npos)
        << p->printed();
  };
  expectRefused("config.json");
  writeConfig("llama", 300);
  llvm::sys::fs::remove(path("ckpt/model.safetensors")); // the index is read only without it
  expectRefused("model.safetensors.index.json");
}

TEST_F(HfCheckpoint, ModelSizesBesideItMustBeItsOwn) {
  writeConfig("llama", 300);
  std::string recipe = llvm::MemoryBuffer::getFile(path("recipe.toml")).get()->getBuffer().str();
  std::string init = "init = \"hf:ckpt\"\n";
  auto withLayers = [&](llvm::StringRef layers) {
    return std::string(recipe).replace(recipe.find(init), init.size(), init + layers.str());
  };
  write("recipe.toml", withLayers("layers = 4\n"));
  auto p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("error: layers = 4, but the checkpoint 'hf:ckpt' has 2 (" + path("ckpt/config.json") +
                              "); the runtime builds the checkpoint's model: remove 'layers' or make it equal"),
            std::string::npos)
      << p->printed();
  write("recipe.toml", withLayers("layers = 2\n"));
  p = plan();
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->Plan->Model.Layers, 2u);
}

TEST_F(HfCheckpoint, AnAbsolutePathIsNotJoinedOntoTheRecipesFolder) {
  writeConfig("llama", 300);
  std::string relative = checkpoint();
  std::string recipe = llvm::MemoryBuffer::getFile(path("recipe.toml")).get()->getBuffer().str();
  std::string init = "init = \"hf:ckpt\"";
  recipe.replace(recipe.find(init), init.size(), "init = \"hf:" + path("ckpt") + "\"");
  ASSERT_FALSE(llvm::sys::fs::create_directories(path("elsewhere")));
  write("elsewhere/recipe.toml", recipe);
  auto p = std::make_unique<Planned>();
  p->Recipe = loadRecipe(path("elsewhere/recipe.toml"), p->Diags);
  FakeCatalog catalog;
  if (p->Recipe)
    p->Plan = lowerToPlan(*p->Recipe, catalog, defaultCost(), p->Diags);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_FALSE(p->Plan->Provisional) << p->Plan->ProvisionalReasons.front();
  EXPECT_EQ(p->node("init").init()->Settings.Checkpoint.value_or(""), relative);
}

TEST_F(HfCheckpoint, StagesKeepTheCheckpointsRopeBaseUnlessTheyWriteOne) {
  writeConfig("llama", 300, R"(, "rope_theta": 500000.0)");
  auto p = plan();
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->train("anneal").Settings.RopeTheta, 500000);
  std::string recipe = llvm::MemoryBuffer::getFile(path("recipe.toml")).get()->getBuffer().str();
  recipe.replace(recipe.find("name = \"anneal\""), 15, "name = \"anneal\"\nrope_theta = 1e6");
  write("recipe.toml", recipe);
  p = plan();
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->train("anneal").Settings.RopeTheta, 1e6);
  EXPECT_EQ(p->train("base@0-512").Settings.RopeTheta, 500000);
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
  writeWeights(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})");
  std::string header = checkpoint();
  EXPECT_NE(header, config);
  // The weights themselves: one byte of a tensor, with the header and the size unchanged.
  writeWeights(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 'v');
  EXPECT_NE(checkpoint(), header);
  writeWeights(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})");
  EXPECT_EQ(checkpoint(), header);
  // Sharded: the index and each shard's header count; a broken shard is an error.
  llvm::sys::fs::rename(path("ckpt/model.safetensors"), path("ckpt/model-1.safetensors"));
  write("ckpt/model.safetensors.index.json", R"({"weight_map": {"w": "model-1.safetensors"}})");
  std::string sharded = checkpoint();
  EXPECT_EQ(llvm::StringRef(sharded).take_front(7), "sha256:");
  EXPECT_NE(sharded, header);
  write("ckpt/model-1.safetensors", "short");
  auto p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("model-1.safetensors: byte 0: "), std::string::npos) << p->printed();
  // The index is read as loading reads it (parseShardIndex): a tensor listed twice is ambiguous.
  write("ckpt/model.safetensors.index.json",
        R"({"weight_map": {"w": "model-1.safetensors", "w": "model-2.safetensors"}})");
  p = plan();
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("tensor 'w' is listed twice in weight_map"), std::string::npos) << p->printed();
  // Without weights the plan is provisional, as without data.
  llvm::sys::fs::remove(path("ckpt/model.safetensors.index.json"));
  p = plan();
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_TRUE(p->Plan->Provisional);
}

TEST(Plan, RunDirSaysWhatIsDoneAndWhyANodeReruns) {
  auto a = planText(branchRecipe("1Mi", "3e-4", "1Mi", ""));
  auto b = planText(branchRecipe("1Mi", "2e-4", "1Mi", ""));
  ASSERT_TRUE(a->Plan && b->Plan);
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("mixtape-rundir", dir));
  // Plan a ran completely: every node has its directory, node.json and done marker.
  for (const Node &node : a->Plan->Nodes) {
    ASSERT_FALSE(bool(rundir::startNode(dir, *a->Plan, node)));
    ASSERT_FALSE(bool(rundir::markDone(dir, node)));
  }
  std::vector<NodeStatus> status = rundir::planStatus(*b->Plan, dir);
  for (size_t i = 0; i < b->Plan->Nodes.size(); ++i) {
    const Node &n = b->Plan->Nodes[i];
    if (n.Name == "anneal") {
      EXPECT_EQ(status[i].Current, NodeStatus::ToRun);
      EXPECT_NE(status[i].Why.find("setting 'lr' changed"), std::string::npos) << status[i].Why;
    } else if (n.Name == "base@0-512" || n.Name == "init") {
      EXPECT_EQ(status[i].Current, NodeStatus::Done) << n.Name;
    }
  }
  llvm::sys::fs::remove_directories(dir);
}

TEST(Plan, SummaryDotAndExplainNameEveryNode) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->Plan) << p->printed();
  std::string summary, dot, explain;
  llvm::raw_string_ostream s(summary), d(dot), e(explain);
  printPlanSummary(*p->Plan, s, nullptr);
  writePlanDot(*p->Plan, d);
  explainNode(*p->Plan, p->node("anneal[replay=r5]"), e);
  EXPECT_NE(summary.find("sharing: variants trained alone would take"), std::string::npos);
  EXPECT_NE(summary.find("provisional"), std::string::npos); // no data here
  EXPECT_NE(dot.find("digraph"), std::string::npos);
  EXPECT_NE(explain.find("ceil(200000000 / 1048576) = 191 steps"), std::string::npos) << explain;
}

} // namespace

namespace {
TEST(PlanJSON, ThePlanRoundTripsThroughItsJSON) {
  auto p = planFile("recipes/med-adapt.toml");
  ASSERT_TRUE(p->Plan) << p->printed();
  std::string text = planText(*p->Plan);
  llvm::Expected<Plan> back = parsePlan(text, "plan.json");
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  EXPECT_EQ(planText(*back), text);
  // Schedules and mixtures evaluate the same after the trip.
  const TrainNode &before = p->train("stream[replay=r5]@0-954");
  const TrainNode *after = back->Nodes[*findNode(*back, "stream[replay=r5]@0-954")].train();
  ASSERT_TRUE(after);
  for (double t : {0.0, 1e7, 2e7, 5e8, 1.02e9, 3e9})
    EXPECT_EQ(learningRate(after->Settings.LR, t), learningRate(before.Settings.LR, t)) << t;
  EXPECT_EQ(weightsAt(after->Settings.Mixture, 1e8), weightsAt(before.Settings.Mixture, 1e8));
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
  c.Groups["source"] = {stringGroup("accumulate", 30, 3000), stringGroup("branch", 20, 2000),
                        stringGroup("filter", 50, 5000)};
  c.Groups["overall_score"] = {};
  for (int v = 1; v <= 5; ++v)
    c.Groups["overall_score"].push_back(
        ColumnGroup{ColumnValue{MetadataValue::Kind::Number, double(v), {}}, 10, 100, 0, 0});
  return c;
}

TEST(Plan, UnitsByAColumnAreItsValues) {
  auto p = planText(byRecipe("source"), bySource());
  ASSERT_TRUE(p->Plan) << p->printed();
  const Plan &plan = *p->Plan;
  EXPECT_EQ(countTrain(plan, "src/"), 3u);
  const Ledger &filter = p->train("src/source=filter").Ledger;
  // Each unit trains on its own stream: the parent filtered by the value, with its counts.
  ASSERT_TRUE(plan.Streams.count("code%source=filter"));
  const Stream &unit = plan.Streams.at("code%source=filter");
  EXPECT_EQ(unit.TrainTokens, 5000u);
  EXPECT_EQ(unit.TrainDocuments, 50u);
  EXPECT_EQ(unit.Root, "code");
  ASSERT_TRUE(unit.Unit);
  EXPECT_EQ(unit.Unit->By, "source");
  EXPECT_EQ(unit.Unit->Value->String, "filter");
  EXPECT_FALSE(unit.Unit->Seed); // grouping by a value does not depend on the seed
  EXPECT_EQ(filter.TokensByStream.at("code%source=filter"), 48u * 1024);
  EXPECT_EQ(filter.TokensByStream.at("prose"), 16u * 1024);
  // 48Ki tokens of a 5000-token unit: its epochs are known, and past 4 they warn.
  EXPECT_NEAR(filter.EpochsAtEnd.at("code%source=filter"), 48.0 * 1024 / 5000, 1e-9);
  EXPECT_NE(p->printed().find("[repeated-data]"), std::string::npos);
  // 3 singletons and 3 pairs, named by value; the ledger counts each unit once.
  EXPECT_TRUE(findNode(plan, "src{accumulate,filter}"));
  EXPECT_TRUE(findNode(plan, "ppl@src{branch}"));
  ASSERT_EQ(plan.Ablations.size(), 1u);
  EXPECT_EQ(plan.Ablations[0].Combinations, 6u);
  EXPECT_EQ(plan.Ablations[0].UnitTokens, 3u * 64 * 1024);
  EXPECT_EQ(plan.Ablations[0].DirectTokens, (3u * 1 + 3u * 2) * 64 * 1024);

  // Listed combinations name values; numbers by their shortest text.
  auto listed = planText(byRecipe("overall_score", "[[\"1\", \"5\"], [\"3\"]]"), bySource());
  ASSERT_TRUE(listed->Plan) << listed->printed();
  EXPECT_EQ(countTrain(*listed->Plan, "src/overall_score="), 5u);
  EXPECT_TRUE(findNode(*listed->Plan, "src{1,5}"));
  ASSERT_TRUE(listed->Plan->Streams.count("code%overall_score=5"));
  EXPECT_EQ(listed->Plan->Streams.at("code%overall_score=5").Unit->Value->Number, 5.0);
  auto unknown = planText(byRecipe("source", "[[\"accumulate\", \"filtr\"]]"), bySource());
  EXPECT_FALSE(unknown->Plan);
  EXPECT_NE(unknown->printed().find("unit 'filtr' is not one of accumulate, branch, filter"), std::string::npos)
      << unknown->printed();
}

TEST(Plan, UnitsByAColumnHaveDistinctNamesWhateverTheirValues) {
  // A column that holds numbers in one dataset and strings in another, and strings that
  // read like another value's label: every value is a unit of its own name.
  FakeCatalog c;
  auto number = [](double v) { return ColumnGroup{ColumnValue{MetadataValue::Kind::Number, v, {}}, 10, 100, 0, 0}; };
  c.Groups["lang"] = {ColumnGroup{ColumnValue{}, 10, 100, 0, 0},
                      number(4),
                      number(INFINITY),
                      stringGroup("'en'", 10, 100),
                      stringGroup("(missing)", 10, 100),
                      stringGroup("4", 10, 100),
                      stringGroup("en", 10, 100),
                      stringGroup("inf", 10, 100)};
  auto p = planText(byRecipe("lang", "\"subsets(max = 1)\""), c);
  ASSERT_TRUE(p->Plan) << p->printed();
  const Plan &plan = *p->Plan;
  EXPECT_EQ(countTrain(plan, "src/"), 8u);
  std::map<std::string, ColumnValue> valueOf;
  for (llvm::StringRef label : {"(missing)", "4", "inf", "'\\'en\\''", "'(missing)'", "'4'", "en", "'inf'"}) {
    auto unit = plan.Streams.find(("code%lang=" + label).str());
    ASSERT_TRUE(unit != plan.Streams.end()) << "no unit stream code%lang=" << label.str();
    valueOf[label.str()] = *unit->second.Unit->Value;
    EXPECT_TRUE(findNode(plan, ("src/lang=" + label).str())) << label.str();
  }
  using Kind = MetadataValue::Kind;
  EXPECT_EQ(valueOf["(missing)"], (ColumnValue{Kind::Missing, 0, ""}));
  EXPECT_EQ(valueOf["'(missing)'"], (ColumnValue{Kind::String, 0, "(missing)"}));
  EXPECT_EQ(valueOf["4"], (ColumnValue{Kind::Number, 4, ""}));
  EXPECT_EQ(valueOf["'4'"], (ColumnValue{Kind::String, 0, "4"}));
  EXPECT_EQ(valueOf["'\\'en\\''"], (ColumnValue{Kind::String, 0, "'en'"}));
  EXPECT_EQ(valueOf["en"], (ColumnValue{Kind::String, 0, "en"}));
}

TEST(Plan, UnitsByAColumnAreContentAddressed) {
  auto a = planText(byRecipe("source"), bySource());
  auto renamed = planText(byRecipe("source", "\"subsets(max = 2)\"", "other"), bySource());
  ASSERT_TRUE(a->Plan && renamed->Plan) << a->printed() << renamed->printed();
  EXPECT_EQ(a->node("src/source=filter").Hash, renamed->node("other/source=filter").Hash);
  EXPECT_EQ(a->node("src{accumulate,filter}").Hash, renamed->node("other{accumulate,filter}").Hash);
  EXPECT_NE(a->node("src/source=filter").Hash, a->node("src/source=branch").Hash);
  // Another value is another unit; the other units keep their hashes.
  FakeCatalog c = bySource();
  c.Groups["source"][2].Value.String = "filters";
  auto changed = planText(byRecipe("source"), c);
  ASSERT_TRUE(changed->Plan) << changed->printed();
  EXPECT_NE(a->node("src/source=filter").Hash, changed->node("src/source=filters").Hash);
  EXPECT_EQ(a->node("src/source=branch").Hash, changed->node("src/source=branch").Hash);
}

TEST(Plan, UnitsByAColumnDiagnostics) {
  auto unknown = planText(byRecipe("sourse"), bySource());
  EXPECT_FALSE(unknown->Plan);
  std::string out = unknown->printed();
  // At the column as written, with did-you-mean.
  EXPECT_NE(out.find("t.toml:24:34: error: stream 'code' has no metadata column 'sourse' [unknown-column]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("note: did you mean 'source'?"), std::string::npos) << out;

  FakeCatalog many;
  for (int i = 0; i < 65; ++i)
    many.Groups["url"].push_back(stringGroup("u" + std::to_string(i), 1, 100));
  auto tooMany = planText(byRecipe("url"), many);
  EXPECT_FALSE(tooMany->Plan);
  out = tooMany->printed();
  EXPECT_NE(out.find("t.toml:24:34: error: 'url' has 65 distinct values in stream 'code': more than 64 units to "
                     "train; use split = K for K random units [unit-count]"),
            std::string::npos)
      << out;

  FakeCatalog one;
  one.Groups["domain"] = {stringGroup("code", 100, 10000)};
  auto single = planText(byRecipe("domain"), one);
  EXPECT_FALSE(single->Plan);
  out = single->printed();
  EXPECT_NE(out.find("every training document of stream 'code' has domain = 'code': one unit leaves nothing to "
                     "ablate [unit-count]"),
            std::string::npos)
      << out;
}

TEST(Plan, UnitsByAColumnWithoutDataAreProvisional) {
  FakeCatalog none;
  none.Absent = true;
  auto p = planText(byRecipe("source"), none);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_TRUE(p->Plan->Provisional);
  EXPECT_TRUE(llvm::is_contained(p->Plan->ProvisionalReasons,
                                 "ablation 'src': its units are the values of 'source' in stream 'code', whose data "
                                 "is absent"));
  EXPECT_EQ(countTrain(*p->Plan, "src/"), 0u);
  EXPECT_TRUE(p->Plan->Ablations.empty());
}

} // namespace

// Replay means documents read before: a slice proven disjoint from what was trained is new
// data; one that may overlap counts the share of tokens the data layer finds in common.
TEST(Plan, ReplayCountsSharedDocuments) {
  const char *recipe = R"toml(
[recipe]
name = "slices"
[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128
[streams.web]
shards = "synth:prose"
[streams.old]
from = "web"
where = "quality <= 2"
[streams.recent]
from = "web"
where = "quality >= 4"
[[stage]]
name = "base"
tokens = "1Mi"
batch = "32 sequences"
mix = "old"
lr = "constant(1e-3)"
[[stage]]
name = "recent"
after = "base"
tokens = "1Mi"
mix = "0.8 recent + 0.2 web"
lr = "constant(1e-3)"
)toml";
  // Without data, `recent` is proven new and `web` may hold `old`'s documents: 0.2.
  FakeCatalog absent;
  absent.Absent = true;
  auto filters = planText(recipe, absent);
  ASSERT_TRUE(filters->Plan) << filters->printed();
  EXPECT_NEAR(filters->train("recent").Ledger.ReplayFraction, 0.2, 1e-4);
  EXPECT_EQ(filters->train("base").Ledger.ReplayFraction, 0);
  // With data: 30% of web's tokens are in documents `old` holds.
  FakeCatalog present;
  present.SharedShare["web"] = 0.3;
  auto documents = planText(recipe, present);
  ASSERT_TRUE(documents->Plan) << documents->printed();
  EXPECT_NEAR(documents->train("recent").Ledger.ReplayFraction, 0.2 * 0.3, 1e-4);
}

/// resourcesRecipe's stage, of `tokens` on `mix` over streams a and b, 8 sequences of 128
/// (1Ki tokens) a step.
std::string epochsRecipe(const std::string &tokens, const std::string &mix) {
  std::string s = resourcesRecipe("", "");
  auto put = [&](const std::string &from, const std::string &to) { s.replace(s.find(from), from.size(), to); };
  put("shards = \"synth:prose\"\n", "shards = \"synth:prose\"\n[streams.b]\nshards = \"synth:code\"\n");
  put("tokens = \"1Mi\"", "tokens = \"" + tokens + "\"");
  put("batch = \"32 sequences\"", "batch = \"8 sequences\"");
  put("mix = \"a\"", "mix = \"" + mix + "\"");
  put("constant(1e-3)", "warmup(100Ki, peak = 1e-3) then constant");
  return s;
}

// One epoch of a mixture ends where its fastest-read stream has been read once:
// min(600,000 / 0.75, 100,000 / 0.25) = 400,000 tokens, so 2.5 epochs request 1,000,000
// tokens, 977 steps of 1,024 (rounded up); b is read 2.5 times, a 1.25 times.
TEST(Plan, ALengthInEpochsResolvesAgainstTheStreamsSizes) {
  FakeCatalog sized;
  sized.Sizes = {{"a", 600'000}, {"b", 100'000}};
  auto p = planText(epochsRecipe("2.5 epochs", "0.75 a + 0.25 b"), sized);
  ASSERT_TRUE(p->Plan) << p->printed();
  const TrainNode &t = p->train("adapt");
  EXPECT_EQ(t.Settings.Steps.End, 977u);
  EXPECT_EQ(t.Exec.RequestedTokens, 1'000'000u);
  EXPECT_EQ(t.Ledger.Tokens, 977u * 1024);
  EXPECT_NEAR(t.Ledger.EpochsAtEnd.at("b"), 2.5, 0.01);
  EXPECT_NEAR(t.Ledger.EpochsAtEnd.at("a"), 1.25, 0.01);

  // Weights in proportion to the sizes: one epoch reads every document once.
  sized.Sizes = {{"a", 600'000}, {"b", 400'000}};
  p = planText(epochsRecipe("1 epoch", "0.6 a + 0.4 b"), sized);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->train("adapt").Exec.RequestedTokens, 1'000'000u);
  EXPECT_NEAR(p->train("adapt").Ledger.EpochsAtEnd.at("a"), 1.0, 0.01);
  EXPECT_NEAR(p->train("adapt").Ledger.EpochsAtEnd.at("b"), 1.0, 0.01);
}

// A mixture that changes over the stage: its epochs end where the fastest-read stream has
// been drawn N times its size. From 0.75 a + 0.25 b to 0.25 a + 0.75 b in a straight line
// both mean weights are 0.5, so one epoch is min(600,000, 100,000) / 0.5 = 200,000 tokens:
// "2 epochs" request 400,000 tokens, 391 steps of 1,024.
// With the second point at 204,800 tokens (not a fraction), b (200,000 tokens) is drawn
// L² / 409,600 up to the point, 102,400 there, and L − 102,400 after it: once at
// L = 302,400, 296 steps.
TEST(Plan, ALengthInEpochsOfAChangingMixture) {
  FakeCatalog sized;
  sized.Sizes = {{"a", 600'000}, {"b", 100'000}};
  auto p = planText(epochsRecipe("2 epochs", "0.75 a + 0.25 b -> 0.25 a + 0.75 b"), sized);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->train("adapt").Exec.RequestedTokens, 400'000u);
  EXPECT_EQ(p->train("adapt").Settings.Steps.End, 391u);
  EXPECT_NEAR(p->train("adapt").Ledger.EpochsAtEnd.at("b"), 2.0, 0.01);

  sized.Sizes = {{"a", 600'000}, {"b", 200'000}};
  p = planText(epochsRecipe("1 epoch", "a -> b @ 204800"), sized);
  ASSERT_TRUE(p->Plan) << p->printed();
  EXPECT_EQ(p->train("adapt").Exec.RequestedTokens, 302'400u);
  EXPECT_EQ(p->train("adapt").Settings.Steps.End, 296u);
  EXPECT_NEAR(p->train("adapt").Ledger.EpochsAtEnd.at("b"), 1.0, 0.01);
  EXPECT_NEAR(p->train("adapt").Ledger.EpochsAtEnd.at("a"), 102'400.0 / 600'000, 0.01);
}

TEST(Plan, ALengthInEpochsIsCheckedByLintAndResolvedByPlanning) {
  // Lint has no data: the syntax and the mixture are checked, nothing about the length.
  llvm::SourceMgr sm;
  DiagnosticEngine diags(sm);
  std::unique_ptr<mixtape::Value> root = parseRecipeText(epochsRecipe("4 epochs", "0.75 a + 0.25 b"), "t.toml", diags);
  ASSERT_TRUE(root);
  std::unique_ptr<CheckedRecipe> linted = checkRecipe(*root, diags);
  ASSERT_TRUE(linted);
  EXPECT_EQ(diags.errorCount() + diags.warningCount(), 0u);
  EXPECT_FALSE(linted->Stages[0].Variants[0].LengthKnown);
  EXPECT_EQ(linted->Stages[0].Variants[0].Epochs, 4.0);

  // Planning without a stream's data: an error at the length, naming the stream.
  FakeCatalog absent;
  absent.Absent = true;
  auto p = planText(epochsRecipe("4 epochs", "0.75 a + 0.25 b"), absent);
  EXPECT_FALSE(p->Plan);
  EXPECT_NE(p->printed().find("t.toml:16:10: error: '4 epochs' needs the size of stream 'a', whose data is absent "
                              "('synth:prose') [data]"),
            std::string::npos)
      << p->printed();

  p = planText(epochsRecipe("0 epochs", "a"));
  EXPECT_NE(p->printed().find("a stage trains a positive number of epochs"), std::string::npos) << p->printed();
}

// distill, l2_to_init and ema change the hash of the stage's nodes and of nothing upstream;
// the teacher and the stage's start are inputs the settings name by index; a stage cut into
// segments keeps one anchor, its start; the teacher's forward adds a third to the FLOPs.
TEST(Plan, RegularizersAreHashedAndTheirModelsAreInputs) {
  const char *settings[] = {"",
                            "distill = {}",
                            "distill = { weight = 0.25 }",
                            "distill = { temperature = 2 }",
                            "distill = { teacher = \"init\" }",
                            "distill = { teacher = \"base\" }",
                            "l2_to_init = 1e-4",
                            "l2_to_init = 1e-3",
                            "ema = 0.999",
                            "ema = 0.99"};
  std::unique_ptr<Planned> first = expectEachHashesAnnealAlone(settings, "base@512-1024");
  ASSERT_TRUE(first && first->Plan);
  auto inputNames = [](Planned &p, llvm::StringRef name) {
    std::vector<std::string> names;
    for (const NodeRef &in : p.node(name).Inputs)
      names.push_back(p.Plan->Nodes[in.Index].Name);
    return names;
  };
  using Names = std::vector<std::string>;
  auto ownStart = planText(branchRecipe("1Mi", "3e-4", "1Mi", settings[1]));
  const TrainSettings &own = ownStart->train("anneal").Settings;
  ASSERT_TRUE(own.Distill);
  EXPECT_EQ(own.Distill->TeacherInput, 0u);
  EXPECT_EQ(own.Distill->Weight, 0.5);
  EXPECT_EQ(own.Distill->Temperature, 1.0);
  EXPECT_EQ(inputNames(*ownStart, "anneal"), (Names{"base@0-512"}));
  EXPECT_DOUBLE_EQ(ownStart->train("anneal").Ledger.Flops, first->train("anneal").Ledger.Flops * 4 / 3);
  auto fromInit = planText(branchRecipe("1Mi", "3e-4", "1Mi", settings[4]));
  EXPECT_EQ(fromInit->train("anneal").Settings.Distill->TeacherInput, 1u);
  EXPECT_EQ(inputNames(*fromInit, "anneal"), (Names{"base@0-512", "init"}));
  auto fromBase = planText(branchRecipe("1Mi", "3e-4", "1Mi", settings[5]));
  EXPECT_EQ(inputNames(*fromBase, "anneal"), (Names{"base@0-512", "base@512-1024"}));

  // l2_to_init on the stage that is cut: its second segment lists the stage's start.
  std::string cut = branchRecipe("1Mi", "3e-4", "1Mi", "");
  cut.replace(cut.find("checkpoint = "), 0, "l2_to_init = 1e-4\nema = 0.9\n");
  auto anchored = planText(cut);
  ASSERT_TRUE(anchored->Plan) << anchored->printed();
  EXPECT_EQ(inputNames(*anchored, "base@0-512"), (Names{"init"}));
  EXPECT_EQ(anchored->train("base@0-512").Settings.L2ToInit->AnchorInput, 0u);
  EXPECT_EQ(inputNames(*anchored, "base@512-1024"), (Names{"base@0-512", "init"}));
  EXPECT_EQ(anchored->train("base@512-1024").Settings.L2ToInit->AnchorInput, 1u);
  EXPECT_EQ(anchored->train("base@512-1024").Settings.Ema, std::optional<double>(0.9));
}

// "<stage>.ema" in eval.on and merge.of: an input that names the node's moving average,
// its own eval node and hash, through the plan's JSON and back.
TEST(Plan, AStagesMovingAverageIsASecondModel) {
  std::string text = branchRecipe("1Mi", "3e-4", "1Mi", "ema = 0.99");
  text.replace(text.find("on = [\"base\"]"), std::string("on = [\"base\"]").size(),
               "on = [\"anneal\", \"anneal.ema\"]\n[[merge]]\nname = \"soup\"\nmethod = \"linear\"\n"
               "of = [\"anneal\", \"anneal.ema\"]");
  auto p = planText(text);
  ASSERT_TRUE(p->Plan) << p->printed();
  const Node &model = p->node("ppl@anneal"), &average = p->node("ppl@anneal.ema");
  EXPECT_FALSE(model.Inputs.front().Average);
  EXPECT_TRUE(average.Inputs.front().Average);
  EXPECT_EQ(model.Inputs.front().Index, average.Inputs.front().Index);
  EXPECT_NE(model.Hash, average.Hash);
  const Node &soup = p->node("soup");
  ASSERT_EQ(soup.Inputs.size(), 2u);
  EXPECT_FALSE(soup.Inputs[0].Average);
  EXPECT_TRUE(soup.Inputs[1].Average);
  llvm::Expected<Plan> back = parsePlan(planText(*p->Plan), "plan.json");
  ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
  const Node &reread = back->Nodes[*findNode(*back, "ppl@anneal.ema")];
  EXPECT_TRUE(reread.Inputs.front().Average);
  EXPECT_EQ(reread.Hash, average.Hash);
}

const char *kSftRecipe = R"toml(
[recipe]
name = "t"

[model]
family = "llama"
layers = 2
d_model = 64
heads = 4
seq_len = 128

[streams.web]
shards = "web"

[streams.chat]
shards = "chat"

[[stage]]
name = "pretrain"
tokens = "64Ki"
batch = "8 sequences"
mix = "web"
lr = "constant(1e-3)"

[[stage]]
name = "tune"
after = "pretrain"
tokens = "32Ki"
mix = "MIX"
lr = "constant(1e-4)"
OBJECTIVE
)toml";

std::string sftRecipe(llvm::StringRef mix, llvm::StringRef objective) {
  std::string text = kSftRecipe;
  text.replace(text.find("MIX"), 3, mix.str());
  text.replace(text.find("OBJECTIVE"), 9, objective.str());
  return text;
}

TEST(Plan, SftStagesTrainOnResponsesWithinDocuments) {
  FakeCatalog catalog;
  catalog.WithPrompts = {"chat"};
  auto sft = planText(sftRecipe("chat", "objective = \"sft\""), catalog);
  auto lm = planText(sftRecipe("chat", ""), catalog);
  ASSERT_TRUE(sft->Plan && lm->Plan) << sft->printed() << lm->printed();
  const TrainSettings &tuned = sft->train("tune").Settings;
  EXPECT_EQ(tuned.Objective, std::optional<Objective>(Objective::SFT));
  EXPECT_EQ(tuned.Attention, AttentionMask::WithinDocument); // packed examples stay apart
  // lm writes no objective (plans made before it keep their hashes); sft is another node.
  EXPECT_EQ(lm->train("tune").Settings.Objective, std::nullopt);
  EXPECT_EQ(lm->train("tune").Settings.Attention, AttentionMask::Causal);
  EXPECT_NE(sft->node("tune").Hash, lm->node("tune").Hash);
  EXPECT_EQ(sft->node("pretrain").Hash, lm->node("pretrain").Hash);
  // Not inherited: the objective belongs to the stage that writes it.
  EXPECT_EQ(sft->train("pretrain").Settings.Objective, std::nullopt);
}

TEST(Plan, SftStreamsWithoutPromptsAreAnError) {
  FakeCatalog catalog;
  catalog.WithPrompts = {"chat"};
  auto p = planText(sftRecipe("0.5 chat + 0.5 web", "objective = \"sft\""), catalog);
  EXPECT_FALSE(p->Plan);
  std::string out = p->printed();
  EXPECT_NE(out.find("t.toml:26:8: error: stage 'tune' trains on responses (objective = \"sft\"), but stream 'web' "
                     "has no prompts: no metadata column 'prompt_tokens', which `mixtape data prepare` writes for "
                     "JSONL lines with \"prompt\" and \"response\" [unknown-column]"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("stream 'chat'"), std::string::npos) << out;
  // Without data nothing is known yet: the plan is provisional, not wrong.
  catalog.Absent = true;
  auto absent = planText(sftRecipe("0.5 chat + 0.5 web", "objective = \"sft\""), catalog);
  EXPECT_TRUE(absent->Plan) << absent->printed();
}

TEST(Plan, SftWithCausalAttentionIsAnError) {
  FakeCatalog catalog;
  catalog.WithPrompts = {"chat"};
  auto p = planText(sftRecipe("chat", "objective = \"sft\"\nattention = \"causal\""), catalog);
  EXPECT_FALSE(p->Recipe && p->Plan);
  EXPECT_NE(p->printed().find("error: an sft stage keeps its packed examples apart: attention must be "
                              "\"within_document\""),
            std::string::npos)
      << p->printed();
}

/// resourcesRecipe's, with `tokenizer` and its stream's `transform` (line 14).
std::string controlTokensRecipe(const std::string &tokenizer, const std::string &transform) {
  std::string s = resourcesRecipe("", "");
  auto put = [&](const std::string &from, const std::string &to) { s.replace(s.find(from), from.size(), to); };
  put("seq_len = 128\n", "seq_len = 128\ntokenizer = \"" + tokenizer + "\"\n");
  put("shards = \"synth:prose\"\n", "shards = \"synth:prose\"\nval = \"5%\"\ntransform = \"" + transform + "\"\n");
  return s;
}

// The plan holds each control token's id: the byte tokenizer's reserved one, or its place in
// the tokenizer.json; a token the file lacks is an error at the token, with the closest one.
TEST(Plan, ControlTokensAreTheTokenizersIds) {
  const std::string byColumn =
      "control_tokens(column = 'quality', above = 3, good = '<|good|>', bad = '<|bad|>')";
  auto bytes = planText(controlTokensRecipe("bytes", byColumn));
  ASSERT_TRUE(bytes->Plan) << bytes->printed();
  const ControlTokens &b = *bytes->Plan->Streams.at("a").Transform->ControlTokens;
  EXPECT_EQ(b.Column, "quality");
  EXPECT_EQ(b.Above, 3.0);
  EXPECT_EQ(b.Good->Id, 259u);
  EXPECT_EQ(b.Bad->Id, 260u);

  FakeCatalog catalog;
  catalog.TokenizerTokens = std::vector<std::string>{"a", "b", "<|endoftext|>", "<|bad|>", "<|good|>"};
  auto hf = planText(controlTokensRecipe("hf:tok.json", byColumn), catalog);
  ASSERT_TRUE(hf->Plan) << hf->printed();
  const ControlTokens &h = *hf->Plan->Streams.at("a").Transform->ControlTokens;
  EXPECT_EQ(h.Good->Id, 4u);
  EXPECT_EQ(h.Bad->Id, 3u);

  auto typo = planText(controlTokensRecipe("hf:tok.json", "control_tokens(good = '<|god|>')"), catalog);
  EXPECT_FALSE(typo->Plan);
  std::string out = typo->printed();
  EXPECT_NE(out.find("t.toml:14:37: error: '<|god|>' is not a token of 'hf:tok.json': add it to the "
                     "tokenizer.json's added_tokens [tokenizer-mismatch]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("note: did you mean '<|good|>'?"), std::string::npos) << out;
}
