//===- HostMemoryTest.cpp - freed host memory stays in malloc's arenas ----===//
#include "mixtape/train/HostMemory.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

using namespace mixtape::train;

TEST(HostMemory, FreedBlocksStayInTheArena) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "malloc's thresholds are glibc's";
#else
  ASSERT_TRUE(retainFreedHostMemory());
  // Above glibc's default mmap threshold (128 KiB, at most 32 MiB once it adapts): without the
  // policy this block would be an mmap of its own, unmapped again by free.
  const size_t bytes = size_t(64) << 20;
  const struct mallinfo2 before = mallinfo2();
  void *volatile block = std::malloc(bytes);
  ASSERT_NE(block, nullptr);
  std::memset(block, 1, bytes);
  const struct mallinfo2 held = mallinfo2();
  EXPECT_EQ(held.hblkhd, before.hblkhd) << "the block was mmapped on its own";
  std::free(block);
  const struct mallinfo2 freed = mallinfo2();
  EXPECT_GE(freed.fordblks, before.fordblks + bytes) << "the freed block left the arena";
  // The next step's block of the same size reuses those pages: the arena does not grow.
  void *volatile again = std::malloc(bytes);
  EXPECT_EQ(mallinfo2().arena, freed.arena);
  std::free(again);
#endif
}

TEST(HostMemory, ShardedRanksKeepOnlySmallBlocks) {
#if !defined(__GLIBC__)
  GTEST_SKIP() << "malloc's thresholds are glibc's";
#else
  ASSERT_TRUE(retainFreedHostMemory(kShardedRetainedBlockBytes));
  // A gathered unit's size: an mmap of its own, back to the kernel when freed.
  const size_t large = 4 * kShardedRetainedBlockBytes, small = kShardedRetainedBlockBytes / 4;
  const struct mallinfo2 before = mallinfo2();
  void *volatile block = std::malloc(large);
  ASSERT_NE(block, nullptr);
  EXPECT_GE(mallinfo2().hblkhd, before.hblkhd + large) << "the large block came from the arena";
  std::free(block);
  EXPECT_EQ(mallinfo2().hblkhd, before.hblkhd) << "the large block stayed mapped";
  // An activation's size stays in the arena as before.
  void *volatile piece = std::malloc(small);
  ASSERT_NE(piece, nullptr);
  EXPECT_EQ(mallinfo2().hblkhd, before.hblkhd) << "the small block was mmapped on its own";
  std::free(piece);
  ASSERT_TRUE(retainFreedHostMemory()); // the process's policy as the other tests expect it
#endif
}
