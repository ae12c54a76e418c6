//===- HuggingFaceTest.cpp - logits and loss equal transformers' ----------===//
//
// ../shared/fixtures/hf-tiny-* were written by transformers 5.17 with the logits and loss
// it computed for expected.json's input ids (see the fixtures' README).
//
//===----------------------------------------------------------------------===//
#include "ModelTestSupport.h"

#include "mixtape/safetensors/SafeTensors.h"

#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <fstream>
#include <iterator>

using namespace mixtape::model;
using namespace mixtape::model::test;

namespace {

struct Expected {
  at::Tensor inputIds; // [1, T]
  at::Tensor logits;   // [1, T, V]
  double loss = 0;
};

Expected readExpected(const std::string &path) {
  Expected e;
  auto buffer = llvm::MemoryBuffer::getFile(path);
  EXPECT_TRUE(!!buffer) << path;
  llvm::Expected<llvm::json::Value> json = llvm::json::parse((*buffer)->getBuffer());
  EXPECT_TRUE(!!json) << llvm::toString(json.takeError());
  const llvm::json::Object &obj = *json->getAsObject();
  std::vector<int64_t> ids;
  for (const llvm::json::Value &v : *obj.getArray("input_ids"))
    ids.push_back(*v.getAsInteger());
  std::vector<float> logits;
  int64_t vocab = 0;
  for (const llvm::json::Value &row : *obj.getArray("logits")) {
    vocab = int64_t(row.getAsArray()->size());
    for (const llvm::json::Value &v : *row.getAsArray())
      logits.push_back(float(*v.getAsNumber()));
  }
  int64_t t = int64_t(ids.size());
  e.inputIds = at::tensor(ids, at::kLong).view({1, t});
  e.logits = at::tensor(logits, at::kFloat).view({1, t, vocab});
  e.loss = *obj.getNumber("loss");
  return e;
}

std::string readBytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class HuggingFace : public testing::TestWithParam<Family> {
protected:
  std::string dir() const {
    return fixturesDir() + "/hf-tiny-" + familyName(GetParam()).str();
  }
};

} // namespace

TEST_P(HuggingFace, LogitsAndLossMatchTransformers) {
  MIXTAPE_REQUIRE_FIXTURES();
  llvm::Expected<std::unique_ptr<Model>> model = Model::fromHuggingFace(dir());
  ASSERT_TRUE(!!model) << llvm::toString(model.takeError());
  EXPECT_EQ((*model)->config().family, GetParam());
  Expected want = readExpected(dir() + "/expected.json");

  at::NoGradGuard noGrad;
  at::Tensor logits = (*model)->forward(want.inputIds);
  ASSERT_EQ(logits.sizes(), want.logits.sizes());
  double maxDiff = (logits - want.logits).abs().max().item<double>();
  EXPECT_LT(maxDiff, 1e-4) << "largest logit difference";
  std::cout << familyName(GetParam()).str() << ": largest |logit - transformers'| = " << maxDiff
            << "\n";

  // transformers' causal-LM loss: labels = input ids, shifted inside the model.
  const int64_t t = want.inputIds.size(1);
  at::Tensor sum = maskedTokenLossSum(logits.narrow(1, 0, t - 1), want.inputIds.narrow(1, 1, t - 1));
  EXPECT_NEAR(sum.item<double>() / double(t - 1), want.loss, 1e-4);
  std::cout << familyName(GetParam()).str() << ": loss " << sum.item<double>() / double(t - 1)
            << ", transformers' " << want.loss << "\n";
}

TEST_P(HuggingFace, SavedWeightsAreByteIdenticalToTheCheckpoint) {
  MIXTAPE_REQUIRE_FIXTURES();
  llvm::Expected<std::unique_ptr<Model>> model = Model::fromHuggingFace(dir());
  ASSERT_TRUE(!!model) << llvm::toString(model.takeError());
  TempDir tmp;
  ASSERT_FALSE(llvm::errorToBool((*model)->saveWeights(tmp / "model.safetensors")));
  EXPECT_EQ(readBytes(tmp / "model.safetensors"), readBytes(dir() + "/model.safetensors"));
}

TEST_P(HuggingFace, LoadsHalfPrecisionCheckpoints) {
  MIXTAPE_REQUIRE_FIXTURES();
  namespace st = mixtape::safetensors;
  llvm::Expected<st::File> file = st::File::open(dir() + "/model.safetensors");
  ASSERT_TRUE(!!file) << llvm::toString(file.takeError());
  // Rewrite the checkpoint in bf16 and in fp16; loading converts to fp32 exactly.
  for (auto [stType, atType] : {std::pair{st::DType::BF16, at::kBFloat16}, {st::DType::F16, at::kHalf}}) {
    std::vector<at::Tensor> keep;
    std::vector<st::TensorData> tensors;
    for (const st::TensorInfo &t : file->tensors()) {
      at::Tensor f32 = at::from_blob(const_cast<uint8_t *>(t.bytes.data()), t.shape, at::kFloat);
      at::Tensor half = f32.to(atType).contiguous();
      keep.push_back(half);
      tensors.push_back({t.name, stType, t.shape,
                         {static_cast<const uint8_t *>(half.data_ptr()), half.nbytes()}});
    }
    TempDir tmp;
    ASSERT_FALSE(llvm::errorToBool(st::write(tmp / "half.safetensors", tensors)));
    llvm::Expected<std::unique_ptr<Model>> model = Model::fromHuggingFace(dir());
    ASSERT_TRUE(!!model);
    ASSERT_FALSE(llvm::errorToBool((*model)->loadWeights(tmp / "half.safetensors")));
    for (size_t i = 0; i < tensors.size(); ++i) {
      const NamedParameter *p = (*model)->findParameter(tensors[i].name);
      ASSERT_TRUE(p) << tensors[i].name;
      EXPECT_TRUE(at::equal(p->tensor, keep[i].to(at::kFloat))) << tensors[i].name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Families, HuggingFace, testing::ValuesIn(AllFamilies), familyLabel);

TEST(HuggingFaceConfig, ReadsTheThreeFamilies) {
  MIXTAPE_REQUIRE_FIXTURES();
  llvm::Expected<ModelConfig> gpt2 = readHFConfig(fixturesDir() + "/hf-tiny-gpt2/config.json");
  ASSERT_TRUE(!!gpt2) << llvm::toString(gpt2.takeError());
  EXPECT_EQ(gpt2->family, Family::GPT2);
  EXPECT_EQ(gpt2->dModel, 32);
  EXPECT_EQ(gpt2->ffnHidden, 128); // n_inner null: 4 * n_embd
  EXPECT_TRUE(gpt2->tieEmbeddings);
  EXPECT_EQ(gpt2->activation, Activation::GELUTanh);

  llvm::Expected<ModelConfig> llama = readHFConfig(fixturesDir() + "/hf-tiny-llama/config.json");
  ASSERT_TRUE(!!llama) << llvm::toString(llama.takeError());
  EXPECT_EQ(llama->numHeads, 4);
  EXPECT_EQ(llama->numKVHeads, 2);
  EXPECT_EQ(llama->ropeTheta, 10000.0);
  EXPECT_EQ(llama->normEps, 1e-6);
  EXPECT_FALSE(llama->tieEmbeddings);

  llvm::Expected<ModelConfig> neox = readHFConfig(fixturesDir() + "/hf-tiny-gpt_neox/config.json");
  ASSERT_TRUE(!!neox) << llvm::toString(neox.takeError());
  EXPECT_EQ(neox->rotaryPct, 0.25);
  EXPECT_EQ(neox->rotaryDim(), 2);
  EXPECT_TRUE(neox->parallelResidual);
  EXPECT_EQ(neox->activation, Activation::GELU);
}

TEST(HuggingFaceConfig, LegacySpellingsAndErrors) {
  llvm::Expected<ModelConfig> neox = parseHFConfig(
      R"({"model_type":"gpt_neox","vocab_size":50,"hidden_size":16,"num_attention_heads":2,
          "num_hidden_layers":1,"intermediate_size":64,"max_position_embeddings":32,
          "rotary_pct":0.5,"rotary_emb_base":500.0,"use_parallel_residual":false,
          "hidden_act":"gelu"})",
      "neox.json");
  ASSERT_TRUE(!!neox) << llvm::toString(neox.takeError());
  EXPECT_EQ(neox->rotaryPct, 0.5);
  EXPECT_EQ(neox->ropeTheta, 500.0);
  EXPECT_FALSE(neox->parallelResidual);

  auto error = [](llvm::StringRef json) {
    llvm::Expected<ModelConfig> c = parseHFConfig(json, "config.json");
    return c ? std::string() : llvm::toString(c.takeError());
  };
  EXPECT_EQ(error(R"({"model_type":"bert"})"),
            "config.json: model_type 'bert' is not one of gpt2, llama, mistral, qwen2, gpt_neox");
  EXPECT_EQ(error(R"({"model_type":"gpt2","vocab_size":10,"n_embd":8,"n_head":2,"n_positions":8})"),
            "config.json: missing integer 'n_layer'");
  EXPECT_EQ(error(R"({"model_type":"llama","vocab_size":10,"hidden_size":8,"num_attention_heads":4,
                      "num_key_value_heads":3,"num_hidden_layers":1,"intermediate_size":8,
                      "max_position_embeddings":8})"),
            "config.json: model config: 4 heads are not divisible by 3 kv_heads");
}

TEST(Weights, LoadErrorsNameFileAndTensor) {
  TempDir tmp;
  std::unique_ptr<Model> a = makeModel(tinyConfig(Family::Llama));
  ModelConfig wider = tinyConfig(Family::Llama);
  wider.ffnHidden = 16;
  std::unique_ptr<Model> b = makeModel(wider);
  ASSERT_FALSE(llvm::errorToBool(b->saveWeights(tmp / "wide.safetensors")));
  llvm::Error err = a->loadWeights(tmp / "wide.safetensors");
  ASSERT_TRUE(!!err);
  EXPECT_EQ(llvm::toString(std::move(err)),
            tmp / "wide.safetensors" +
                ": tensor 'model.layers.0.mlp.gate_proj.weight' has shape [16, 8], the model "
                "needs [12, 8]");

  // A checkpoint cut short: the reader names the file, the byte and the tensor.
  std::string whole = readBytes(tmp / "wide.safetensors");
  {
    std::ofstream cut(tmp / "cut.safetensors", std::ios::binary);
    cut.write(whole.data(), std::streamsize(whole.size() - 100));
  }
  std::unique_ptr<Model> wide = makeModel(wider);
  err = wide->loadWeights(tmp / "cut.safetensors");
  ASSERT_TRUE(!!err);
  std::string message = llvm::toString(std::move(err));
  EXPECT_EQ(message.find(tmp / "cut.safetensors: byte "), 0u) << message;
  EXPECT_NE(message.find("tensor 'model.layers.1.self_attn.v_proj.weight' ends at data offset "
                         "5440, past the end of the data region (5372 bytes)"),
            std::string::npos)
      << message;

  std::unique_ptr<Model> gpt2 = makeModel(tinyConfig(Family::GPT2));
  err = gpt2->loadWeights(tmp / "wide.safetensors");
  ASSERT_TRUE(!!err);
  EXPECT_NE(llvm::toString(std::move(err)).find("is not a parameter of this gpt2 model"),
            std::string::npos);
}
