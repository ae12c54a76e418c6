//===- lint_bench.cpp - how fast `mixtape lint` checks a large recipe ------===//
//
// Generates a 10,000-line recipe (streams, a chain of stages with mixtures, schedules and
// sweeps, merges and evals), then parses and checks it in process, several times.
// Prints the median and best time in ms. Goal (issue 2): < 50 ms on the 2-core dev machine.
// `--recipe` prints the recipe instead (bench/cli_bench.sh lints it through the CLI).
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Sema.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

using namespace mixtape;

static std::string generateRecipe(unsigned targetLines) {
  std::string s = "[recipe]\nname = \"bench\"\nseed = 1\n\n[model]\nfamily = \"llama\"\nlayers = 2\n"
                  "d_model = 64\nheads = 4\nseq_len = 512\n\n";
  unsigned lines = 11;
  const unsigned streams = 50;
  for (unsigned i = 0; i < streams; ++i) {
    s += "[streams.s" + std::to_string(i) + "]\nshards = \"data/s" + std::to_string(i) +
         "/*.idx\"\nval = \"1%\"\nwhere = \"quality >= 3 and domain == 'd" + std::to_string(i % 7) + "'\"\n\n";
    lines += 5;
  }
  unsigned stage = 0;
  while (lines + 12 < targetLines) {
    std::string name = "st" + std::to_string(stage);
    std::string a = "s" + std::to_string(stage % streams), b = "s" + std::to_string((stage + 1) % streams);
    s += "[[stage]]\nname = \"" + name + "\"\n";
    if (stage)
      s += "after = { stage = \"st" + std::to_string(stage - 1) + "\", optimizer = \"keep\" }\n";
    else
      s += "batch = \"256 sequences\"\n";
    s += "tokens = \"" + std::to_string(100 + stage % 50) + "M\"\n"
         "mix = \"0.9 " + a + " + 0.1 " + b + " -> 0.8 " + a + " + 0.2 " + b + "\"\n"
         "lr = \"warmup(1%, peak = 3e-4) then cosine(final = 3e-5)\"\n"
         "optimizer = { betas = [0.9, 0.95], weight_decay = 0.1 }\n"
         "checkpoint = { every = \"20M\", keep = 2 }\n\n";
    lines += 9;
    ++stage;
  }
  s += "[[eval]]\nname = \"ppl\"\nstreams = [\"s0.val\", \"s1.val\"]\nmax_tokens = \"1M\"\n"
       "on = [\"st0\", \"st" + std::to_string(stage - 1) + "\"]\n";
  return s;
}

int main(int argc, char **argv) {
  std::string recipe = generateRecipe(10000);
  if (argc > 1 && llvm::StringRef(argv[1]) == "--recipe") { // for bench/cli_bench.sh
    llvm::outs() << recipe;
    return 0;
  }
  unsigned lines = static_cast<unsigned>(std::count(recipe.begin(), recipe.end(), '\n'));
  std::vector<double> ms;
  unsigned errors = 0;
  for (int run = 0; run < 15; ++run) {
    llvm::SourceMgr sm;
    DiagnosticEngine diags(sm);
    auto start = std::chrono::steady_clock::now();
    if (auto root = parseRecipeText(recipe, "bench.toml", diags))
      checkRecipe(*root, diags);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    errors = diags.errorCount() + diags.warningCount();
    if (errors) {
      diags.print(llvm::errs());
      return 1;
    }
  }
  std::sort(ms.begin(), ms.end());
  llvm::outs() << "lint_bench: " << lines << " lines, " << recipe.size() / 1024 << " KiB\n";
  llvm::outs() << llvm::format("lint_bench: median %.1f ms, best %.1f ms (goal < 50 ms)\n", ms[ms.size() / 2],
                               ms.front());
  return 0;
}
