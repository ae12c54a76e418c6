//===- text_input_fuzzer.cpp - libFuzzer target for data prepare's reader ------===//
//
// The input is a file `data prepare` reads (TextInput.h): plain, gzip or zstd, or anything
// else. Opening and reading it to the end must give text or an llvm::Error, never a crash,
// a hang or an out-of-bounds read.
//
//===----------------------------------------------------------------------===//
#include "mixtape/data/TextInput.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace mixtape::data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // TextInput reads files: one temporary file, rewritten for every input, removed at exit.
  static const struct TemporaryFile {
    TemporaryFile() { llvm::sys::fs::createTemporaryFile("text-input-fuzz", "bin", Path); }
    ~TemporaryFile() { llvm::sys::fs::remove(Path); }
    llvm::SmallString<128> Path;
  } file;
  const llvm::StringRef path = file.Path;
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(path, ec);
    out.write(reinterpret_cast<const char *>(data), size);
  }
  llvm::Expected<std::unique_ptr<TextInput>> input = TextInput::open(path);
  if (!input) {
    llvm::consumeError(input.takeError());
    return 0;
  }
  std::string text;
  for (;;) {
    text.clear();
    llvm::Expected<size_t> n = (*input)->read(text, 4096);
    if (!n) {
      llvm::consumeError(n.takeError());
      break;
    }
    if (*n == 0)
      break;
  }
  return 0;
}
