//===- recipe_fuzzer.cpp - libFuzzer target for the recipe front end -------===//
//
// Any bytes through TOML parsing, the AST, schema and semantic checks and diagnostic
// printing: the front end must report, never crash, hang or leak.
//   CC=clang-14 CXX=clang++-14 cmake -G Ninja -S . -B build-fuzz -DMIXTAPE_FUZZ=ON -DMIXTAPE_TESTS=OFF \
//     -DCMAKE_CXX_STANDARD=17
//   build-fuzz/tests/fuzz/recipe_fuzzer tests/fuzz/recipe-corpus -max_total_time=600
//
//===----------------------------------------------------------------------===//
#include "mixtape/compiler/Sema.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::SourceMgr sm;
  mixtape::DiagnosticEngine diags(sm);
  llvm::StringRef text(reinterpret_cast<const char *>(data), size);
  if (auto root = mixtape::parseRecipeText(text, "fuzz.toml", diags))
    mixtape::checkRecipe(*root, diags);
  diags.print(llvm::nulls());
  diags.toJSON();
  return 0;
}
