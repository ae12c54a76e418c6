//===- HostMemory.cpp -----------------------------------------------------===//
#include "mixtape/train/HostMemory.h"

#include <climits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

bool mixtape::train::retainFreedHostMemory(size_t largestBlock) {
#if defined(__GLIBC__)
  // Setting either threshold also ends glibc's dynamic adjustment of the other: set both.
  return mallopt(M_MMAP_THRESHOLD, int(largestBlock)) == 1 && mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1;
#else
  return false;
#endif
}
