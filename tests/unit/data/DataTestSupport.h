//===- DataTestSupport.h - temporary folders and error matching -*- C++ -*-===//
#pragma once

#include "TempDir.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace mixtape::data::test {

using mixtape::test::TempDir;

inline std::vector<uint8_t> readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void writeBytes(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

/// The message of a failure; "" (and a test failure) when there was none.
inline std::string errorText(llvm::Error err) {
  EXPECT_TRUE(!!err) << "expected an error";
  return err ? llvm::toString(std::move(err)) : std::string();
}
template <typename T> std::string errorText(llvm::Expected<T> value) {
  EXPECT_FALSE(!!value) << "expected an error";
  return value ? std::string() : llvm::toString(value.takeError());
}

/// Unwraps an Expected, failing the test with the message when it holds an error.
template <typename T> T take(llvm::Expected<T> value) {
  if (!value) {
    ADD_FAILURE() << llvm::toString(value.takeError());
    return T();
  }
  return std::move(*value);
}

inline void put(std::vector<uint8_t> &out, uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i)
    out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

} // namespace mixtape::data::test
