// Semantic analysis: variants, inheritance, rounding, references — on real recipes.
#include "mixtape/compiler/Schema.h"
#include "mixtape/compiler/Sema.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace mixtape;

namespace {

std::string sourcePath(llvm::StringRef rel) { return std::string(MIXTAPE_SOURCE_DIR) + "/" + rel.str(); }

struct Checked {
  llvm::SourceMgr SM;
  DiagnosticEngine Diags{SM};
  std::unique_ptr<CheckedRecipe> Recipe;
  std::string printed() {
    std::string out;
    llvm::raw_string_ostream os(out);
    Diags.print(os);
    return out;
  }
};

std::unique_ptr<Checked> loadFile(llvm::StringRef rel) {
  auto c = std::make_unique<Checked>();
  c->Recipe = loadRecipe(sourcePath(rel), c->Diags);
  return c;
}

std::unique_ptr<Checked> loadText(llvm::StringRef text) {
  auto c = std::make_unique<Checked>();
  if (auto root = parseRecipeText(text, "t.toml", c->Diags))
    c->Recipe = checkRecipe(*root, c->Diags);
  return c;
}

const StageSpec &stage(const CheckedRecipe &r, llvm::StringRef name) {
  int i = r.stageIndex(name);
  EXPECT_GE(i, 0) << name.str();
  return r.Stages[i];
}

TEST(Sema, MedAdaptVariantsFollowTheSweepAxesOfEachStagesAncestry) {
  auto c = loadFile("recipes/med-adapt.toml");
  ASSERT_TRUE(c->Recipe) << c->printed();
  const CheckedRecipe &r = *c->Recipe;
  EXPECT_EQ(stage(r, "adapt").Variants.size(), 4u);
  EXPECT_EQ(stage(r, "anneal").Variants.size(), 4u);
  EXPECT_EQ(stage(r, "long").Variants.size(), 4u);
  EXPECT_EQ(stage(r, "stream").Variants.size(), 4u);
  EXPECT_EQ(stage(r, "stream_anneal").Variants.size(), 12u);
  // Each stream_anneal variant continues the stream variant with the same replay label.
  const StageSpec &sa = stage(r, "stream_anneal"), &st = stage(r, "stream");
  for (const StageVariant &v : sa.Variants) {
    const StageVariant &parent = st.Variants[v.ParentVariant];
    for (auto [axis, label] : parent.Labels)
      EXPECT_EQ(v.Labels.at(axis), label);
  }
  EXPECT_EQ(sa.Variants.front().DisplayName, "stream_anneal[replay=r0,at=b1]");
}

TEST(Sema, TokensRoundUpToWholeStepsAndBranchesToStepBoundaries) {
  auto c = loadFile("recipes/med-adapt.toml");
  ASSERT_TRUE(c->Recipe) << c->printed();
  const StageVariant &adapt = stage(*c->Recipe, "adapt").Variants[0];
  EXPECT_EQ(adapt.BatchSequences, 256u); // 1Mi tokens / 4096
  EXPECT_EQ(adapt.batchTokens(), 1048576u);
  EXPECT_EQ(adapt.RequestedTokens, 2000000000u);
  EXPECT_EQ(adapt.Steps, 1908u); // ceil(2e9 / 2^20)
  EXPECT_EQ(adapt.Tokens, 1908u * 1048576u);
  // at = 1B in stream: ceil(1e9 / 2^20) = 954 steps.
  const StageVariant &b1 = stage(*c->Recipe, "stream_anneal").Variants[0];
  EXPECT_EQ(b1.BranchTokens, 954u * 1048576u);
}

TEST(Sema, InheritanceKeepsTheBatchInTokensAcrossASeqLenChange) {
  auto c = loadFile("recipes/med-adapt.toml");
  ASSERT_TRUE(c->Recipe) << c->printed();
  const StageVariant &lng = stage(*c->Recipe, "long").Variants[2];
  EXPECT_EQ(lng.SeqLen, 16384u);
  EXPECT_EQ(lng.BatchSequences, 64u);
  EXPECT_EQ(lng.RopeTheta, 500000);
  EXPECT_EQ(lng.Attention, Attention::WithinDocument);
  EXPECT_FALSE(lng.KeepOptimizer);
  EXPECT_DOUBLE_EQ(lng.Optimizer.WeightDecay, 0.1);
  EXPECT_DOUBLE_EQ(lng.Optimizer.Beta2, 0.95);
  const StageVariant &anneal = stage(*c->Recipe, "anneal").Variants[0];
  EXPECT_TRUE(anneal.KeepOptimizer);
  EXPECT_EQ(anneal.SeqLen, 4096u);
  EXPECT_EQ(anneal.CheckpointKeep, 3u);
}

TEST(Sema, ModelReferencesBindToVariants) {
  auto c = loadFile("recipes/med-adapt.toml");
  ASSERT_TRUE(c->Recipe) << c->printed();
  const CheckedRecipe &r = *c->Recipe;
  ASSERT_EQ(r.Merges.size(), 2u);
  EXPECT_EQ(r.Merges[0].Models.size(), 4u); // soup = anneal[*]
  ASSERT_TRUE(r.Merges[1].Base);
  EXPECT_EQ(r.Merges[1].Base->HfPath, "checkpoints/base");
  const ModelRef &sa = r.Merges[1].Models[1];
  EXPECT_EQ(r.Stages[sa.Index].Variants[sa.Variant].DisplayName, "stream_anneal[replay=r5,at=b3]");
  ASSERT_EQ(r.Evals.size(), 1u);
  EXPECT_EQ(r.Evals[0].On.size(), 1u + 4 + 12 + 1 + 1 + 1);
  EXPECT_EQ(r.Evals[0].MaxTokens, 5000000u);
  ASSERT_EQ(r.Ablations.size(), 1u);
  EXPECT_EQ(r.Ablations[0].Split, 8u);
  EXPECT_EQ(r.Ablations[0].MaxSubset, 3u);
}

TEST(Sema, DerivedStreamsShareTheirRootsValSplit) {
  auto c = loadFile("recipes/med-adapt.toml");
  ASSERT_TRUE(c->Recipe) << c->printed();
  const StreamSpec *hq = c->Recipe->stream("med_hq");
  ASSERT_TRUE(hq);
  EXPECT_EQ(hq->Root, "med");
  EXPECT_DOUBLE_EQ(hq->Val, 0.01);
  ASSERT_TRUE(c->Recipe->stream("books_knotted")->Transform);
  EXPECT_EQ(c->Recipe->stream("books_knotted")->Transform->UntieKnots->Chunks.size(), 2u);
}

// [model] control_tokens renames the byte tokenizer's reserved ids 259.. in order; the ids
// the transform writes follow the names.
TEST(Sema, ControlTokenNamesAreTheByteTokenizersReservedIds) {
  auto recipe = [](llvm::StringRef model) {
    return ("[recipe]\nname = \"t\"\n[model]\nfamily = \"llama\"\nlayers = 1\nd_model = 8\nheads = 2\n" + model +
            "\n[streams.a]\nshards = \"synth:prose\"\n"
            "transform = \"control_tokens(column = 'quality', above = 3, good = '<|hi|>', bad = '<|263|>')\"\n"
            "[[stage]]\nname = \"s\"\ntokens = \"64Ki\"\nbatch = \"8 sequences\"\nmix = \"a\"\n"
            "lr = \"constant(1e-3)\"\n")
        .str();
  };
  auto c = loadText(recipe("control_tokens = [\"<|lo|>\", \"<|hi|>\"]"));
  ASSERT_TRUE(c->Recipe) << c->printed();
  const plan::ControlTokens &tokens = *c->Recipe->stream("a")->Transform->ControlTokens;
  EXPECT_EQ(tokens.Good->Id, 260u);
  EXPECT_EQ(tokens.Bad->Id, 263u);
  c = loadText(recipe("control_tokens = [\"a\", \"b\", \"c\", \"d\", \"e\", \"<|hi|>\"]"));
  EXPECT_NE(c->printed().find("error: the byte tokenizer reserves 5 ids for control tokens (259-263), not 6"),
            std::string::npos)
      << c->printed();
  // Without [model] that one error, and the default names still known to the streams.
  c = loadText("[recipe]\nname = \"t\"\n[streams.a]\nshards = \"synth:prose\"\n"
               "transform = \"control_tokens(good = '<|good|>')\"\n");
  EXPECT_NE(c->printed().find("the recipe needs a [model] section"), std::string::npos) << c->printed();
  EXPECT_EQ(c->printed().find("is not a control token"), std::string::npos) << c->printed();
  c = loadText(recipe("tokenizer = \"hf:tok.json\"\ncontrol_tokens = [\"<|hi|>\"]"));
  EXPECT_NE(c->printed().find("error: control_tokens names the byte tokenizer's reserved ids; a tokenizer.json's "
                              "control tokens are its own tokens (add them to its added_tokens)"),
            std::string::npos)
      << c->printed();
}

const char *kZipRecipe = R"toml(
[recipe]
name = "zip"
[model]
family = "llama"
layers = 1
d_model = 8
heads = 2
[streams.a]
shards = "synth:prose"
[[stage]]
name = "s"
tokens = "64Ki"
batch = "8 sequences"
mix = "a"
lr = "constant(1e-3)"
[sweep]
lr = { key = "s.lr", values = { lo = "constant(1e-4)", hi = "constant(1e-3)" } }
wd = { key = "s.optimizer.weight_decay", values = { lo = 0.0, hi = 0.1 } }
%ZIP%
)toml";

TEST(Sema, ZipPairsAxesInsteadOfCrossingThem) {
  std::string crossed = kZipRecipe, zipped = kZipRecipe;
  crossed.replace(crossed.find("%ZIP%"), 5, "");
  zipped.replace(zipped.find("%ZIP%"), 5, "zip = [\"lr\", \"wd\"]");
  auto c = loadText(crossed), z = loadText(zipped);
  ASSERT_TRUE(c->Recipe) << c->printed();
  ASSERT_TRUE(z->Recipe) << z->printed();
  EXPECT_EQ(c->Recipe->Stages[0].Variants.size(), 4u);
  ASSERT_EQ(z->Recipe->Stages[0].Variants.size(), 2u);
  const StageVariant &hi = z->Recipe->Stages[0].Variants[1];
  EXPECT_DOUBLE_EQ(hi.Optimizer.WeightDecay, 0.1);
  EXPECT_DOUBLE_EQ(plan::learningRate(hi.LR, 0), 1e-3);
}

// Every diagnostic code has a golden test that produces it, under tests/lint (lint --verify)
// or tests/plan-fit (plan --verify) (io: unreadable files, which cannot carry comments, is
// covered by tests/lint/robustness.py).
TEST(Goldens, EveryDiagnosticCodeHasOne) {
  std::string all;
  for (const char *dir : {"tests/lint", "tests/plan-fit"})
    for (const auto &entry : std::filesystem::directory_iterator(sourcePath(dir))) {
      std::ifstream in(entry.path());
      std::stringstream ss;
      ss << in.rdbuf();
      all += ss.str();
    }
  for (DiagCode code : allDiagCodes()) {
    // io: unreadable files carry no comments (tests/lint/robustness.py covers it); the
    // data-aware plan codes need data that `lint --verify` never reads, and no-checkpoint
    // the plan's cost (tests/unit/compiler/PlanTest.cpp).
    if (code == DiagCode::Io || code == DiagCode::DataError || code == DiagCode::EmptyFilter ||
        code == DiagCode::UnknownColumn || code == DiagCode::UnitCount || code == DiagCode::RepeatedData ||
        code == DiagCode::Leakage || code == DiagCode::NoCheckpoint)
      continue;
    std::string tag = "[" + diagCodeName(code).str() + "]";
    EXPECT_NE(all.find("expect-"), std::string::npos);
    EXPECT_NE(all.find(tag), std::string::npos) << "no golden under tests/lint or tests/plan-fit expects " << tag;
  }
}

// docs/language.md documents every key of grammar/keys.def.
/// docs/language.md's text; empty if it is missing.
std::string languageReference() {
  std::ifstream in(sourcePath("docs/language.md"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Docs, LanguageReferenceDocumentsEveryKey) {
  std::string doc = languageReference();
  ASSERT_FALSE(doc.empty()) << "docs/language.md is missing";
  for (const KeyInfo &k : allKeys())
    EXPECT_NE(doc.find("`" + k.Name.str() + "`"), std::string::npos)
        << "docs/language.md does not document '" << sectionInfo(k.Section).Path.str() << "." << k.Name.str()
        << "'";
  for (DiagCode code : allDiagCodes())
    EXPECT_NE(doc.find(diagCodeName(code).str()), std::string::npos)
        << "docs/language.md does not list diagnostic " << diagCodeName(code).str();
}

/// The default cell of `key`'s row in the table under the heading of `section`
/// ("### `[model]`", "### `[[stage]]`", "### `stage.optimizer`", ...); "" if none.
std::string documentedDefault(llvm::StringRef doc, const SectionInfo &section, llvm::StringRef key) {
  size_t heading = llvm::StringRef::npos;
  for (std::string title : {"[" + section.Path.str() + "]", "[[" + section.Path.str() + "]]",
                            "[" + section.Path.str() + ".NAME]", section.Path.str()})
    if ((heading = doc.find("\n### `" + title + "`\n")) != llvm::StringRef::npos)
      break;
  if (heading == llvm::StringRef::npos)
    return "";
  llvm::StringRef body = doc.drop_front(heading + 1);
  body = body.take_front(body.find("\n#", 1));
  size_t row = body.find("\n| `" + key.str() + "` |");
  if (row == llvm::StringRef::npos)
    return "";
  llvm::SmallVector<llvm::StringRef, 4> cells;
  body.drop_front(row + 1).split('\n').first.split(cells, " | ");
  return cells.size() > 2 ? cells[2].str() : "";
}

// Every default of grammar/keys.def (the one the compiler uses) is the one docs/language.md shows.
TEST(Docs, LanguageReferenceShowsEveryDefault) {
  std::string doc = languageReference();
  ASSERT_FALSE(doc.empty()) << "docs/language.md is missing";
  ASSERT_FALSE(allDefaults().empty());
  for (const DefaultInfo &d : allDefaults()) {
    std::string cell = documentedDefault(doc, sectionInfo(d.Section), d.Key);
    std::string where = sectionInfo(d.Section).Path.str() + "." + d.Key.str();
    EXPECT_FALSE(cell.empty()) << "docs/language.md has no row for " << where;
    // `0.9` is shown in `[0.9, 0.95]`; but 0.9 is not 0.95.
    llvm::SmallVector<llvm::StringRef, 4> words;
    llvm::StringRef(cell).split(words, ' ');
    bool found = false;
    for (llvm::StringRef word : words)
      found |= word.trim("`[],;") == d.Spelling;
    EXPECT_TRUE(found) << where << ": keys.def's default is " << d.Spelling.str() << ", docs/language.md shows '"
                       << cell << "'";
  }
}

} // namespace
