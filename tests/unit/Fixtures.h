//===- Fixtures.h - tests/fixtures, the reference files of other libraries -*- C++ -*-===//
//
// The Hugging Face files of tests/fixtures (see its README) come with the repository, so a
// test that needs them never passes by skipping: without CI a missing fixture skips the test
// with its path, under CI (the environment variable CI set, and not empty, 0 or false) it
// fails. tests/skipping.py is the same rule for the Python tests.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/Optional.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Process.h"

#include <gtest/gtest.h>

#include <string>

namespace mixtape::test {

/// tests/fixtures, or the folder $MIXTAPE_FIXTURES names.
inline std::string fixturesDir() {
  if (llvm::Optional<std::string> dir = llvm::sys::Process::GetEnv("MIXTAPE_FIXTURES"); dir && !dir->empty())
    return *dir;
  std::string dir = MIXTAPE_SOURCE_DIR; // appended, not operator+: GCC 12 -Warray-bounds bug
  dir += "/tests/fixtures";
  return dir;
}

inline bool underCI() {
  llvm::Optional<std::string> ci = llvm::sys::Process::GetEnv("CI");
  llvm::StringRef value = ci ? llvm::StringRef(*ci).trim() : "";
  return !value.empty() && value != "0" && !value.equals_insensitive("false");
}

} // namespace mixtape::test

/// Ends the test (in its body or SetUp) when the fixture file or folder `path` is missing:
/// skipped, or failed under CI.
#define MIXTAPE_REQUIRE_FIXTURES(path)                                                                       \
  do {                                                                                                       \
    const std::string mixtapeFixture = (path);                                                               \
    if (!llvm::sys::fs::exists(mixtapeFixture)) {                                                            \
      if (::mixtape::test::underCI())                                                                        \
        FAIL() << "no fixture at " << mixtapeFixture << " (CI is set: a test that cannot run fails there)";  \
      GTEST_SKIP() << "no fixture at " << mixtapeFixture;                                                    \
    }                                                                                                        \
  } while (false)
