//===- safetensors_fuzzer.cpp - libFuzzer target for the safetensors reader ----===//
//
// Any input is a candidate file. The reader must reject bad input with an llvm::Error,
// never crash; for an accepted one every tensor's bytes must be in bounds (ASan checks the
// reads below), and writing it back and reading it again must give the same tensors.
//
//===----------------------------------------------------------------------===//
#include "mixtape/safetensors/SafeTensors.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cstdlib>

using namespace mixtape::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  llvm::StringRef bytes(reinterpret_cast<const char *>(data), size);
  llvm::Expected<File> file =
      File::fromBuffer(llvm::MemoryBuffer::getMemBufferCopy(bytes), "fuzz.safetensors");
  if (!file) {
    llvm::consumeError(file.takeError());
    return 0;
  }
  volatile uint64_t sum = 0;
  std::vector<TensorData> tensors;
  for (const TensorInfo &t : file->tensors()) {
    if (t.Bytes.size() != t.numElements() * dtypeSize(t.Dtype))
      abort();
    for (uint8_t b : t.Bytes)
      sum = sum + b;
    tensors.push_back({t.Name, t.Dtype, t.Shape, t.Bytes});
  }
  llvm::Expected<std::string> header = formatHeader(tensors, file->metadata());
  if (!header) // an accepted file always formats again
    abort();
  std::string again(8, '\0');
  uint64_t n = header->size();
  for (int i = 0; i < 8; ++i)
    again[i] = char(n >> (8 * i));
  again += *header;
  for (const TensorData &t : tensors)
    again.append(reinterpret_cast<const char *>(t.Bytes.data()), t.Bytes.size());
  llvm::Expected<File> reread =
      File::fromBuffer(llvm::MemoryBuffer::getMemBufferCopy(again), "again.safetensors");
  if (!reread || reread->tensors().size() != tensors.size() ||
      reread->metadata() != file->metadata())
    abort();
  return 0;
}
