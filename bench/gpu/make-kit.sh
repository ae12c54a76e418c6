#!/usr/bin/env bash
# The kit the GPU machine needs, made here: ../shared/device/make-devkit.sh (LLVM Support,
# TOML++, GoogleTest) plus xxhash.h, which that machine lacks (CMake then compiles xxHash
# from the header). Run in the project root; carry ".devkit" with the device call.
set -euo pipefail
cd "$(dirname "$0")/../.."
../shared/device/make-devkit.sh .devkit
cp /usr/include/xxhash.h .devkit/usr/include/
grep -qx '/.devkit/' .git/info/exclude 2>/dev/null || echo '/.devkit/' >>.git/info/exclude
du -sh .devkit
