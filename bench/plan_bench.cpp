//===- plan_bench.cpp - how fast `mixtape plan` lowers a large sweep ------===//
//
// A recipe whose sweeps give 10,000 variants of one stage (100 learning rates x 100
// lengths), planned in process with every stream present. Prints ms and node count;
// `--recipe` prints the recipe instead (bench/cli_bench.sh plans it through the CLI).
// Goal (issue 3): < 2 s on the 2-core dev machine.
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Lower.h"
#include "mixtape/compiler/Sema.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

using namespace mixtape;

namespace {
/// Every stream present with a fixed size: planning speed, not I/O, is measured.
class PresentCatalog : public plan::Environment {
public:
  llvm::Expected<std::optional<plan::StreamStats>> streamStats(const plan::Plan &plan, llvm::StringRef name) override {
    plan::StreamStats st;
    st.Fingerprint = "bench-" + plan.Streams.at(name.str()).Root;
    st.TrainTokens = 1ull << 40;
    st.TrainDocuments = 1 << 20;
    st.VocabSize = 264;
    return std::optional<plan::StreamStats>(st);
  }
  llvm::Expected<std::optional<uint64_t>> leakedDocuments(const plan::Plan &, llvm::StringRef,
                                                          llvm::StringRef) override {
    return std::optional<uint64_t>(0);
  }
  llvm::Expected<std::optional<plan::SharedDocuments>> sharedDocuments(const plan::Plan &, llvm::StringRef,
                                                                      llvm::ArrayRef<std::string>) override {
    return std::optional<plan::SharedDocuments>(); // replay decided from the filters
  }
  llvm::Expected<std::optional<plan::ColumnGroups>> groupBy(const plan::Plan &, llvm::StringRef,
                                                           llvm::StringRef) override {
    return std::optional<plan::ColumnGroups>(); // the generated recipe groups by no column
  }
  llvm::Expected<std::optional<plan::CheckpointInfo>> checkpoint(llvm::StringRef) override {
    return std::optional<plan::CheckpointInfo>(); // the generated recipe starts from random weights
  }
  llvm::Expected<std::optional<uint64_t>> tokenizerVocabulary(llvm::StringRef) override {
    return std::optional<uint64_t>();
  }
  llvm::Expected<std::optional<std::vector<std::string>>> tokenizerTokens(llvm::StringRef) override {
    return std::optional<std::vector<std::string>>();
  }
  llvm::Expected<std::optional<plan::TaskStats>> taskStats(const plan::Plan &, const plan::Task &) override {
    return std::optional<plan::TaskStats>();
  }
  llvm::Expected<std::optional<uint64_t>> taskLeakage(const plan::Plan &, const plan::Task &, llvm::StringRef) override {
    return std::optional<uint64_t>();
  }
};

std::string generateRecipe() {
  std::string lrs, lengths;
  for (int i = 0; i < 100; ++i) {
    lrs += (i ? ", " : "") + llvm::formatv("l{0} = \"linear(from = 3e-4, to = {1}e-6)\"", i, i).str();
    lengths += (i ? ", " : "") + llvm::formatv("t{0} = \"{1}Ki\"", i, 16 * (i + 1)).str();
  }
  return "[recipe]\nname = \"plan-bench\"\n[model]\nfamily = \"llama\"\nlayers = 2\nd_model = 64\nheads = 4\n"
         "seq_len = 128\n[streams.a]\nshards = \"synth:prose\"\n[streams.b]\nshards = \"synth:code\"\n"
         "[[stage]]\nname = \"base\"\ntokens = \"4Mi\"\nbatch = \"8 sequences\"\nmix = \"0.9 a + 0.1 b\"\n"
         "lr = \"warmup(64Ki, peak = 3e-4) then cosine(final = 3e-5)\"\n"
         "[[stage]]\nname = \"anneal\"\nafter = \"base\"\ntokens = \"64Ki\"\nmix = \"0.5 a + 0.5 b\"\n"
         "lr = \"linear(from = 3e-4, to = 0)\"\n"
         "[sweep]\nlr = { key = \"anneal.lr\", values = { " +
         lrs + " } }\nlength = { key = \"anneal.tokens\", values = { " + lengths + " } }\n";
}
} // namespace

int main(int argc, char **argv) {
  std::string recipe = generateRecipe();
  if (argc > 1 && llvm::StringRef(argv[1]) == "--recipe") { // for bench/cli_bench.sh
    llvm::outs() << recipe;
    return 0;
  }
  double best = 1e300;
  size_t nodes = 0;
  for (int run = 0; run < 3; ++run) {
    llvm::SourceMgr sm;
    DiagnosticEngine diags(sm);
    PresentCatalog catalog;
    auto start = std::chrono::steady_clock::now();
    std::unique_ptr<Value> root = parseRecipeText(recipe, "plan-bench.toml", diags);
    std::unique_ptr<CheckedRecipe> checked = root ? checkRecipe(*root, diags) : nullptr;
    std::optional<plan::Plan> plan = checked ? lowerToPlan(*checked, catalog, defaultCost(), diags) : std::nullopt;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!plan) {
      diags.print(llvm::errs());
      return 1;
    }
    best = std::min(best, ms);
    nodes = plan->Nodes.size();
  }
  llvm::outs() << llvm::format("plan_bench: 10000 variants, %zu nodes, best of 3: %.0f ms (goal < 2000 ms)\n", nodes,
                               best);
  return 0;
}
