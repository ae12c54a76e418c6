//===- TempDir.h - a fresh directory for one test ---------------*- C++ -*-===//
#pragma once

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <gtest/gtest.h>

#include <string>

namespace mixtape::test {

/// A fresh directory, removed with everything in it at the end of the test.
class TempDir {
public:
  TempDir() {
    llvm::SmallString<128> path;
    EXPECT_FALSE(llvm::sys::fs::createUniqueDirectory("mixtape-test", path));
    Path = std::string(path);
  }
  ~TempDir() { llvm::sys::fs::remove_directories(Path); }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  std::string operator/(llvm::StringRef name) const {
    llvm::SmallString<128> path(Path);
    llvm::sys::path::append(path, name);
    return std::string(path);
  }
  std::string Path;
};

} // namespace mixtape::test
