//===- FullShardBuildTest.cpp - the model built sharded, one unit at a time ---===//
//
// FullShard::build fills a model without storage one unit at a time: every rank ends with
// the shards that building the whole model and cutting it (FullShard::create) gives, bit for
// bit, from a seed or from a weights file; while rank 0 fills a unit, no other unit's
// parameters hold bytes; a unit rank 0 cannot fill fails the build on every rank. Built from
// a sharded checkpoint of another world size and shard mode, each rank reads its own shards
// (weights and moments) and no unit is ever whole; a shard missing or cut, a tensor absent
// or of another shape fails every rank.
//
//===----------------------------------------------------------------------===//
#include "TempDir.h"
#include "TinyModel.h"
#include "TwoRanks.h"

#include "mixtape/dist/FullShard.h"
#include "mixtape/model/Model.h"
#include "mixtape/support/Error.h"
#include "mixtape/train/AdamW.h"

#include "llvm/Support/FileSystem.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

using namespace mixtape;
using namespace mixtape::dist;

namespace {

constexpr uint64_t kSeed = 5;
constexpr int64_t kSteps = 7; ///< the optimizer steps of a checkpoint's state

/// 3 blocks of 560 elements (q, k, v, o 8x8; gate, up 12x8, down 8x12; two norms of 8), the
/// embedding and (untied) head 11x8 each, the final norm 8: 1864 elements.
model::ModelConfig tinyConfig(model::Family family, bool tied) {
  model::ModelConfig c = model::ModelConfig::defaults(family, /*vocab=*/11, /*layers=*/3, /*d=*/8, /*heads=*/2,
                                                      /*positions=*/12);
  c.FfnHidden = 12;
  c.TieEmbeddings = tied;
  return c;
}

std::unique_ptr<model::Model> unallocated(const model::ModelConfig &c) {
  llvm::Expected<std::unique_ptr<model::Model>> m = model::Model::createUnallocated(c, at::kCPU);
  EXPECT_TRUE(bool(m)) << (m ? "" : llvm::toString(m.takeError()));
  return m ? std::move(*m) : nullptr;
}

/// Bytes the model's parameters hold now.
uint64_t liveBytes(const model::Model &m) {
  uint64_t bytes = 0;
  for (const model::NamedParameter &p : m.parameters())
    bytes += p.Tensor.storage().nbytes();
  return bytes;
}

/// This rank's shards of the whole model `config` with seed kSeed, cut after building it
/// whole; `withState`: and of the moments test::giveState gives it.
std::vector<at::Tensor> shardsCutFromTheWhole(Collectives &c, const model::ModelConfig &config,
                                              bool withState = false) {
  llvm::Expected<std::unique_ptr<model::Model>> whole = model::Model::create(config, kSeed);
  EXPECT_TRUE(bool(whole));
  train::AdamW optimizer((*whole)->parameters(), train::AdamWOptions{});
  if (withState)
    test::giveState(optimizer, kSteps);
  llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(c, **whole, optimizer);
  EXPECT_TRUE(bool(full)) << (full ? "" : llvm::toString(full.takeError()));
  std::vector<at::Tensor> shards;
  for (const StateSlice &s : (*full)->checkpointSlices())
    shards.push_back(s.View.clone());
  return shards;
}

void expectSameShards(const std::vector<at::Tensor> &want, const FullShard &built) {
  std::vector<StateSlice> slices = built.checkpointSlices();
  ASSERT_EQ(slices.size(), want.size());
  for (size_t i = 0; i < slices.size(); ++i)
    EXPECT_TRUE(at::equal(slices[i].View, want[i])) << slices[i].Name << " from element " << slices[i].Begin;
}

std::string errorText(llvm::Error e) { return e ? llvm::toString(std::move(e)) : ""; }

/// The whole model `config` with seed kSeed and test::giveState's moments, as a sharded
/// checkpoint in `dir` that `writers` processes without sharding wrote: each its even share
/// of the parameters laid end to end, whose borders are not the units'.
void writeUnshardedCheckpoint(const std::string &dir, const model::ModelConfig &config, int writers) {
  llvm::Expected<std::unique_ptr<model::Model>> whole = model::Model::create(config, kSeed);
  ASSERT_TRUE(bool(whole));
  train::AdamW optimizer((*whole)->parameters(), train::AdamWOptions{});
  test::giveState(optimizer, kSteps);
  for (int rank = 0; rank < writers; ++rank)
    ASSERT_EQ(errorText(writeShard(dir, rank, writers, replicatedSlices(optimizer, rank, writers, SlicePurpose::Save))),
              "");
  ASSERT_EQ(errorText(writeShardIndex(dir, writers, "none", kSteps)), "");
}

/// FullShard::build without a fill, then each rank's shards read from the checkpoint
/// `index`, as a resume under full sharding does: the error, if any.
std::string buildFromCheckpoint(Collectives &c, model::Model &m, const std::string &index,
                                std::unique_ptr<FullShard> *built = nullptr) {
  train::AdamW optimizer(m.parameters(), train::AdamWOptions{});
  llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::build(c, m, optimizer, nullptr);
  if (!full)
    return llvm::toString(full.takeError());
  EXPECT_EQ(liveBytes(m), 0u) << "no unit got storage";
  std::string error = errorText(loadCheckpointSlices(c, index, (*full)->checkpointSlices(), optimizer));
  EXPECT_EQ(liveBytes(m), 0u) << "no unit was whole while its shards were read";
  if (error.empty()) {
    EXPECT_EQ(optimizer.steps(), kSteps);
  }
  if (built)
    *built = std::move(*full);
  return error;
}

} // namespace

TEST(FullShardBuild, FromASeedEachRankGetsTheShardsOfTheWholeModelCut) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  // Llama with its own head; GPT-2's tied head puts the final norm in the embedding's unit,
  // filled out of parameter order.
  for (auto [family, tied] : {std::pair{model::Family::Llama, false}, {model::Family::GPT2, true}}) {
    const model::ModelConfig config = tinyConfig(family, tied);
    test::ranks(4, [&](Collectives &c) {
      const std::vector<at::Tensor> want = shardsCutFromTheWhole(c, config);
      std::unique_ptr<model::Model> m = unallocated(config);
      train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
      model::Model::Initializer init(*m, kSeed);
      llvm::Expected<std::unique_ptr<FullShard>> built =
          FullShard::build(c, *m, optimizer, [&](llvm::ArrayRef<size_t> unit) { return init.fill(unit); });
      ASSERT_TRUE(bool(built)) << llvm::toString(built.takeError());
      expectSameShards(want, **built);
    });
  }
}

TEST(FullShardBuild, NoRankHoldsMoreThanOneUnitWhole) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const model::ModelConfig config = tinyConfig(model::Family::Llama, /*tied=*/false);
  constexpr uint64_t kBlockBytes = 560 * 4; // of the model's 1864 * 4
  test::ranks(2, [&](Collectives &c) {
    std::unique_ptr<model::Model> m = unallocated(config);
    EXPECT_EQ(liveBytes(*m), 0u);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    model::Model::Initializer init(*m, kSeed);
    uint64_t peak = 0;
    llvm::Expected<std::unique_ptr<FullShard>> built =
        FullShard::build(c, *m, optimizer, [&](llvm::ArrayRef<size_t> unit) {
          uint64_t unitBytes = 0;
          for (size_t i : unit)
            unitBytes += static_cast<uint64_t>(m->parameters()[i].Tensor.numel()) * 4;
          EXPECT_EQ(liveBytes(*m), unitBytes) << "only the unit being filled holds bytes";
          peak = std::max(peak, liveBytes(*m));
          return init.fill(unit);
        });
    ASSERT_TRUE(bool(built)) << llvm::toString(built.takeError());
    if (c.rank() == 0) { // the one that fills: a block is the largest unit
      EXPECT_EQ(peak, kBlockBytes);
    }
    EXPECT_EQ(liveBytes(*m), 0u) << "every unit freed after its shard was cut";
    EXPECT_EQ((*built)->shardElements(), 1864 / 2); // every unit's size is even: no padding
  });
}

TEST(FullShardBuild, FromAWeightsFileEachRankGetsTheFilesShards) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  const model::ModelConfig config = tinyConfig(model::Family::Llama, /*tied=*/false);
  llvm::Expected<std::unique_ptr<model::Model>> saved = model::Model::create(config, kSeed);
  ASSERT_TRUE(bool(saved));
  ASSERT_FALSE(bool((*saved)->saveWeights(dir / "model.safetensors")));
  test::ranks(4, [&](Collectives &c) {
    const std::vector<at::Tensor> want = shardsCutFromTheWhole(c, config);
    std::unique_ptr<model::Model> m = unallocated(config);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<FullShard>> built = FullShard::build(
        c, *m, optimizer, [&](llvm::ArrayRef<size_t> unit) { return m->loadWeights(dir / "model.safetensors", unit); });
    ASSERT_TRUE(bool(built)) << llvm::toString(built.takeError());
    expectSameShards(want, **built);
  });
}

TEST(FullShardBuild, AUnitRankZeroCannotFillFailsEveryRank) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const model::ModelConfig config = tinyConfig(model::Family::Llama, /*tied=*/false);
  test::ranks(2, [&](Collectives &c) {
    std::unique_ptr<model::Model> m = unallocated(config);
    train::AdamW optimizer(m->parameters(), train::AdamWOptions{});
    size_t filled = 0;
    llvm::Expected<std::unique_ptr<FullShard>> built =
        FullShard::build(c, *m, optimizer, [&](llvm::ArrayRef<size_t>) -> llvm::Error {
          return filled++ == 2 ? makeError("no such weights") : llvm::Error::success();
        });
    ASSERT_FALSE(bool(built));
    // Rank 0 its own error; the others what rank 0 was doing.
    EXPECT_EQ(llvm::toString(built.takeError()),
              c.rank() == 0 ? "no such weights" : "1 other rank(s) failed while building unit 2 of the sharded model");
  });
}

TEST(FullShardBuild, AModelWithStorageIsRefused) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::ranks(2, [&](Collectives &c) {
    llvm::Expected<std::unique_ptr<model::Model>> m = model::Model::create(tinyConfig(model::Family::Llama, false), 1);
    ASSERT_TRUE(bool(m));
    train::AdamW optimizer((*m)->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<FullShard>> built =
        FullShard::build(c, **m, optimizer, [](llvm::ArrayRef<size_t>) { return llvm::Error::success(); });
    ASSERT_FALSE(bool(built));
    EXPECT_EQ(llvm::toString(built.takeError()),
              "--shard full frees each parameter's storage: parameter 'model.embed_tokens.weight' holds storage "
              "before the sharded build or differs in dtype or device from 'model.embed_tokens.weight'");
  });
}

TEST(FullShardBuild, FromACheckpointOfAnotherWorldEachRankReadsItsShards) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  for (auto [family, tied] : {std::pair{model::Family::Llama, false}, {model::Family::GPT2, true}}) {
    const model::ModelConfig config = tinyConfig(family, tied);
    test::TempDir dir;
    writeUnshardedCheckpoint(dir.Path, config, /*writers=*/3);
    test::ranks(4, [&](Collectives &c) {
      const std::vector<at::Tensor> want = shardsCutFromTheWhole(c, config, /*withState=*/true);
      std::unique_ptr<model::Model> m = unallocated(config);
      std::unique_ptr<FullShard> built;
      ASSERT_EQ(buildFromCheckpoint(c, *m, dir / kCheckpointIndex, &built), "");
      expectSameShards(want, *built);
    });
  }
}

TEST(FullShardBuild, FromACheckpointAShardMissingOrCutFailsEveryRank) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  const model::ModelConfig config = tinyConfig(model::Family::Llama, /*tied=*/false);
  test::TempDir dir;
  // Written by 2 ranks with `full`: read on 4, ranks 0 and 1 need only the first shard file
  // (every unit's size divides by 4), ranks 2 and 3 only the second.
  test::ranks(2, [&](Collectives &c) {
    llvm::Expected<std::unique_ptr<model::Model>> whole = model::Model::create(config, kSeed);
    ASSERT_TRUE(bool(whole));
    train::AdamW optimizer((*whole)->parameters(), train::AdamWOptions{});
    llvm::Expected<std::unique_ptr<FullShard>> full = FullShard::create(c, **whole, optimizer);
    ASSERT_TRUE(bool(full)) << llvm::toString(full.takeError());
    ASSERT_EQ(errorText(writeShard(dir.Path, c.rank(), 2, (*full)->checkpointSlices())), "");
    c.barrier();
    if (c.rank() == 0) {
      ASSERT_EQ(errorText(writeShardIndex(dir.Path, 2, "full", kSteps)), "");
    }
  });
  const std::string index = dir / kCheckpointIndex, shard = dir / "shard-00001-of-00002.safetensors";
  std::string original;
  {
    std::ifstream in(shard, std::ios::binary);
    original.assign(std::istreambuf_iterator<char>(in), {});
  }
  ASSERT_GT(original.size(), 40u);
  for (const char *fault : {"missing", "cut"}) {
    if (std::string(fault) == "missing")
      ASSERT_FALSE(llvm::sys::fs::remove(shard));
    else
      std::ofstream(shard, std::ios::binary) << original.substr(0, original.size() - 40);
    test::ranks(4, [&](Collectives &c) {
      std::unique_ptr<model::Model> m = unallocated(config);
      const std::string error = buildFromCheckpoint(c, *m, index);
      // The ranks that read the file name it; the others the checkpoint they were loading.
      if (c.rank() >= 2) {
        EXPECT_EQ(error.find(shard), 0u) << fault << ": " << error;
      } else {
        EXPECT_EQ(error, "2 other rank(s) failed while loading the checkpoint " + index) << fault;
      }
    });
  }
  std::ofstream(shard, std::ios::binary) << original;
  test::ranks(4, [&](Collectives &c) {
    std::unique_ptr<model::Model> m = unallocated(config);
    EXPECT_EQ(buildFromCheckpoint(c, *m, index), "") << "the shard restored";
  });
}

TEST(FullShardBuild, FromACheckpointATensorAbsentOrOfAnotherShapeFailsEveryRank) {
  if (!hasBackend(Device::CPU))
    GTEST_SKIP() << "this build has no Gloo";
  test::TempDir dir;
  writeUnshardedCheckpoint(dir.Path, tinyConfig(model::Family::Llama, /*tied=*/false), /*writers=*/2);
  const std::string index = dir / kCheckpointIndex;
  model::ModelConfig deeper = tinyConfig(model::Family::Llama, false), wider = deeper;
  deeper.NumLayers = 4;
  wider.VocabSize = 12; // 96 embedding elements, 8 per rank
  test::ranks(4, [&](Collectives &c) {
    std::unique_ptr<model::Model> m = unallocated(deeper);
    std::string error = buildFromCheckpoint(c, *m, index);
    EXPECT_EQ(error.find(index + ": has no tensor 'model.layers.3."), 0u) << error;
    m = unallocated(wider);
    error = buildFromCheckpoint(c, *m, index);
    EXPECT_EQ(error, index + ": tensor 'model.embed_tokens.weight' is [11, 8], not [12, 8] as this model's");
  });
}
