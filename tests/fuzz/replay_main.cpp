//===- replay_main.cpp - runs a fuzz target over its corpus, without libFuzzer -===//
//
// Linked with a harness in the normal build (MIXTAPE_FUZZ off), so every CI run replays
// each corpus input, the deep-nesting ones included: a crash fails the test.
// Arguments: files or directories (every file in them, in name order).
//
//===----------------------------------------------------------------------===//
#include "mixtape/support/Files.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!llvm::sys::fs::is_directory(argv[i])) {
      files.push_back(argv[i]);
      continue;
    }
    std::vector<std::string> inDir;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(argv[i], ec), end; it != end && !ec; it.increment(ec))
      inDir.push_back(it->path());
    if (ec) {
      llvm::errs() << argv[i] << ": cannot list: " << ec.message() << "\n";
      return 1;
    }
    llvm::sort(inDir);
    files.insert(files.end(), inDir.begin(), inDir.end());
  }
  if (files.empty()) {
    llvm::errs() << "usage: " << argv[0] << " FILE|DIR...: no inputs\n";
    return 1;
  }
  for (const std::string &file : files) {
    llvm::Expected<std::unique_ptr<llvm::MemoryBuffer>> buffer = mixtape::mapFile(file);
    if (!buffer) {
      llvm::errs() << llvm::toString(buffer.takeError()) << "\n";
      return 1;
    }
    // A copy, as libFuzzer passes: the harness may read exactly size bytes and no more.
    std::vector<uint8_t> bytes((*buffer)->getBuffer().bytes_begin(), (*buffer)->getBuffer().bytes_end());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  }
  llvm::outs() << "replayed " << files.size() << " inputs\n";
  return 0;
}
