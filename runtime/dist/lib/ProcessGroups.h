//===- ProcessGroups.h - Collectives over a c10d process group --*- C++ -*-===//
//
// Private to runtime/dist. LibTorch 1.13's process groups derive from c10d::ProcessGroup,
// 2.x's from c10d::Backend, and their work handles changed type; the calls used here
// (allreduce, broadcast, _allgather_base, _reduce_scatter_base, wait) are spelled the
// same in both, so one template serves Gloo and NCCL on either version.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "mixtape/dist/Collectives.h"

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace mixtape::dist {

/// The backends each live in a file CMake compiles only where LibTorch has them.
std::unique_ptr<Collectives> makeGlooCollectives(const c10::intrusive_ptr<c10d::Store> &store, const World &world,
                                                 std::chrono::milliseconds timeout);
std::unique_ptr<Collectives> makeNcclCollectives(const c10::intrusive_ptr<c10d::Store> &store, const World &world,
                                                 std::chrono::milliseconds timeout);

/// Collectives::paceByRankZero over the rendezvous store: while the pace lasts rank 0 bumps
/// a heartbeat counter there, and it sets a key as it starts each collective and at the end;
/// the others poll both. `sequence` numbers the paces (every rank starts the same ones), so
/// that each has keys of its own.
std::unique_ptr<RankZeroPace> paceOverStore(c10d::Store &store, int rank, uint64_t sequence, const std::string &what,
                                            std::chrono::milliseconds timeout);

/// `Group` is c10d::ProcessGroupGloo or c10d::ProcessGroupNCCL. NCCL reduce-scatters and
/// all-gathers one flat buffer in place (`FlatCollectives`). Gloo (1.13) has neither flat
/// call: it all-reduces and keeps this rank's slice, and gathers with a broadcast from each
/// rank into its row, since its list all-gather (NCCL's too) copies through a second
/// buffer of the whole output — under full sharding a unit's parameters twice.
template <typename Group, bool FlatCollectives> class ProcessGroupCollectives final : public Collectives {
public:
  ProcessGroupCollectives(c10::intrusive_ptr<Group> group, c10::intrusive_ptr<c10d::Store> store, const World &world,
                          c10::DeviceType device, std::chrono::milliseconds timeout)
      : PG(std::move(group)), Store(std::move(store)), Rank(world.Rank), Size(world.Size), DeviceType(device),
        Timeout(timeout) {}

  int rank() const override { return Rank; }
  int worldSize() const override { return Size; }

  void allReduceSum(at::Tensor &tensor) override { startAllReduceSum(tensor)->wait(); }

  std::unique_ptr<PendingCollective> startAllReduceSum(at::Tensor &tensor) override {
    std::vector<at::Tensor> tensors{tensor};
    std::unique_ptr<PendingCollective> pending;
    guarded("all-reduce", [&] { pending = makePending("all-reduce", std::vector{PG->allreduce(tensors)}); });
    return pending;
  }

  void reduceScatterSum(const at::Tensor &input, at::Tensor &output) override {
    guarded("reduce-scatter", [&] {
      if constexpr (FlatCollectives) {
        PG->_reduce_scatter_base(output, const_cast<at::Tensor &>(input))->wait();
      } else {
        std::vector<at::Tensor> tensors{input.clone()};
        PG->allreduce(tensors)->wait();
        output.copy_(tensors[0].view({-1}).narrow(0, Rank * output.numel(), output.numel()).view_as(output));
      }
    });
  }

  void allGather(const at::Tensor &input, at::Tensor &output) override { startAllGather(input, output)->wait(); }

  std::unique_ptr<PendingCollective> startAllGather(const at::Tensor &input, at::Tensor &output) override {
    std::unique_ptr<PendingCollective> pending;
    guarded("all-gather", [&] {
      if constexpr (FlatCollectives) {
        pending = makePending("all-gather", std::vector{PG->_allgather_base(output, const_cast<at::Tensor &>(input))});
      } else {
        at::Tensor rows = output.view({Size, -1});
        rows[Rank].copy_(input.view({-1}));
        std::vector<decltype(PG->broadcast(std::declval<std::vector<at::Tensor> &>()))> works;
        for (int r = 0; r < Size; ++r) {
          std::vector<at::Tensor> row{rows[r]};
          c10d::BroadcastOptions options;
          options.rootRank = r;
          works.push_back(PG->broadcast(row, options));
        }
        pending = makePending("all-gather", std::move(works));
      }
    });
    return pending;
  }

  void broadcast(at::Tensor &tensor, int root) override {
    guarded("broadcast", [&] {
      std::vector<at::Tensor> tensors{tensor};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      PG->broadcast(tensors, options)->wait();
    });
  }

  /// An all-reduce read back on the host: NCCL's own barrier guesses a device, and a
  /// wait() on NCCL work only orders the stream.
  void barrier() override {
    at::Tensor one = at::ones({1}, at::TensorOptions(at::kInt).device(DeviceType));
    allReduceSum(one);
    if (one.item<int>() != Size)
      throw std::runtime_error(context("barrier") + "counted " + std::to_string(one.item<int>()) + " ranks");
  }

  c10::DeviceType deviceType() const override { return DeviceType; }

  std::unique_ptr<RankZeroPace> paceByRankZero(const std::string &what) override {
    return paceOverStore(*Store, Rank, Paces++, what, Timeout);
  }

private:
  /// c10d's work handles (their type differs between LibTorch versions), waited for in
  /// order as the blocking calls wait.
  template <typename Work> class Pending final : public PendingCollective {
  public:
    Pending(ProcessGroupCollectives &owner, const char *op, std::vector<Work> works)
        : Owner(owner), Op(op), Works(std::move(works)) {}
    void wait() override {
      Owner.guarded(Op, [&] {
        for (Work &w : Works)
          w->wait();
      });
    }

  private:
    ProcessGroupCollectives &Owner;
    const char *Op;
    std::vector<Work> Works;
  };
  template <typename Work> std::unique_ptr<PendingCollective> makePending(const char *op, std::vector<Work> works) {
    return std::make_unique<Pending<Work>>(*this, op, std::move(works));
  }

  std::string context(const char *op) const {
    return std::string(op) + " over " + std::to_string(Size) + " ranks: ";
  }
  /// A peer that died or timed out surfaces as c10d's exception: say which operation met
  /// it (the command line names this rank).
  template <typename Op> void guarded(const char *op, Op &&run) {
    try {
      run();
    } catch (const std::exception &e) {
      throw std::runtime_error(context(op) + firstLines(e));
    }
  }

  c10::intrusive_ptr<Group> PG;
  c10::intrusive_ptr<c10d::Store> Store;
  int Rank, Size;
  c10::DeviceType DeviceType;
  std::chrono::milliseconds Timeout;
  uint64_t Paces = 0;
};

} // namespace mixtape::dist
