//===- CheckpointingTest.cpp - blocks recomputed in the backward pass -----===//
#include "ModelTestSupport.h"

#include <torch/csrc/autograd/function.h>

#include <unordered_set>

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

/// Nodes of the graph behind `t` that recompute a block.
int recomputedBlocks(const at::Tensor &t) {
  std::vector<torch::autograd::Node *> stack{t.grad_fn().get()};
  std::unordered_set<torch::autograd::Node *> seen;
  int count = 0;
  while (!stack.empty()) {
    torch::autograd::Node *node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node).second)
      continue;
    count += node->name().find("RecomputedBlock") != std::string::npos;
    for (const torch::autograd::Edge &edge : node->next_edges())
      stack.push_back(edge.function.get());
  }
  return count;
}

class CheckpointingFamily : public testing::TestWithParam<Family> {};

} // namespace

TEST(ActivationCheckpointing, EveryNthBlock) {
  EXPECT_FALSE(ActivationCheckpointing{0}.checkpoints(0));
  EXPECT_TRUE(ActivationCheckpointing{1}.checkpoints(5));
  ActivationCheckpointing every{3};
  EXPECT_TRUE(every.checkpoints(0));
  EXPECT_FALSE(every.checkpoints(2));
  EXPECT_TRUE(every.checkpoints(6));
}

// Recomputation runs the same ops on the same input: the loss and every gradient are the
// plain pass's bit for bit, through packed documents and a loss mask.
TEST_P(CheckpointingFamily, GradientsAreBitIdentical) {
  ModelConfig config = tinyConfig(GetParam());
  config.NumLayers = 5;
  std::unique_ptr<Model> model = makeModel(config, 4);
  ASSERT_TRUE(model);
  const auto [inputs, targets, mask, starts] = packedBatch(9, config.VocabSize, 51);

  auto lossAndGrads = [&](const ActivationCheckpointing &checkpointing, int expectedRecomputed) {
    for (const NamedParameter &p : model->parameters())
      p.Tensor.mutable_grad() = at::Tensor();
    at::Tensor hidden = model->hiddenStates(inputs, starts, checkpointing);
    EXPECT_EQ(recomputedBlocks(hidden), expectedRecomputed);
    at::Tensor loss = chunkedTokenLosses(hidden, model->headWeight(), targets, mask).sum();
    loss.backward();
    std::vector<at::Tensor> out{loss.detach()};
    for (const NamedParameter &p : model->parameters())
      out.push_back(p.Tensor.grad().clone());
    return out;
  };
  std::vector<at::Tensor> plain = lossAndGrads(ActivationCheckpointing{0}, 0);
  for (auto [every, recomputed] : {std::pair{1, 5}, std::pair{2, 3}, std::pair{4, 2}}) {
    std::vector<at::Tensor> got = lossAndGrads(ActivationCheckpointing{static_cast<uint64_t>(every)}, recomputed);
    for (size_t i = 0; i < plain.size(); ++i)
      EXPECT_TRUE(at::equal(got[i], plain[i])) << "every " << every << ": " << (i ? model->parameters()[i - 1].Name : "loss");
  }

  // Without a gradient to compute, nothing is checkpointed and the states are forward's.
  at::NoGradGuard noGrad;
  at::Tensor hidden = model->hiddenStates(inputs, starts, ActivationCheckpointing{1});
  EXPECT_EQ(recomputedBlocks(hidden), 0);
  EXPECT_TRUE(at::equal(at::linear(hidden, model->headWeight()), model->forward(inputs, starts)));
}

INSTANTIATE_TEST_SUITE_P(Families, CheckpointingFamily, testing::ValuesIn(AllFamilies), familyLabel);
