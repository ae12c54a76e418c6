//===- AdamW.cpp ----------------------------------------------------------===//
#include "mixtape/train/AdamW.h"

#include "mixtape/model/TorchCompat.h"
#include "mixtape/safetensors/SafeTensors.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"

#include "llvm/ADT/StringExtras.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/stack.h>

#include <cmath>
#include <cstring>

using namespace mixtape::train;
using mixtape::model::NamedParameter;
using mixtape::model::ParamKind;
namespace st = mixtape::safetensors;
using mixtape::fileError;

AdamW::AdamW(llvm::ArrayRef<NamedParameter> params, AdamWOptions options, std::vector<double> lrScales)
    : Params(params.begin(), params.end()), Options(options),
      Groups{{"decay", options.WeightDecay, {}}, {"no_decay", 0.0, {}}},
      LRScale(lrScales.empty() ? std::vector<double>(params.size(), 1.0) : std::move(lrScales)) {
  assert(LRScale.size() == Params.size() && "one LR scale per parameter");
  for (size_t i = 0; i < Params.size(); ++i) {
    bool decays = options.DecayAllParameters || Params[i].Kind == ParamKind::Matrix;
    Decay.push_back(decays ? options.WeightDecay : 0.0);
    // The fused kernel takes one LR per group: scaled parameters get groups of their own.
    auto group = llvm::find_if(Groups, [&](const ParamGroup &g) {
      return llvm::StringRef(g.Name).startswith("decay") == decays && g.LRScale == LRScale[i];
    });
    if (group == Groups.end()) {
      Groups.push_back({(decays ? "decay x" : "no_decay x") + mixtape::formatNumber(LRScale[i]), Decay[i], {},
                        LRScale[i]});
      group = std::prev(Groups.end());
    }
    group->Members.push_back(i);
  }
  ExpAvg.resize(Params.size());
  ExpAvgSq.resize(Params.size());
}

void AdamW::step(double lr) {
  at::NoGradGuard noGrad;
  ++Steps;
  for (size_t i = 0; i < Params.size(); ++i) {
    if (Params[i].Tensor.grad().defined() && !ExpAvg[i].defined()) {
      ExpAvg[i] = at::zeros_like(Params[i].Tensor, at::MemoryFormat::Preserve);
      ExpAvgSq[i] = at::zeros_like(Params[i].Tensor, at::MemoryFormat::Preserve);
    }
  }
  if (!Params.empty() && compat::canFuseAdamW(Params.front().Tensor)) {
    // LibTorch 2.x on CUDA: one fused kernel per group (TorchCompat.h).
    // The kernel reads each parameter's step count from a device scalar; one tensor holds
    // them all, refilled once per step, so no host value is copied per parameter.
    if (!StepCounts.defined() || StepCounts.device() != Params.front().Tensor.device())
      StepCounts = at::empty({int64_t(Params.size())}, Params.front().Tensor.options().dtype(at::kFloat));
    StepCounts.fill_(double(Steps));
    for (const ParamGroup &group : Groups) {
      std::vector<at::Tensor> params, grads, expAvgs, expAvgSqs, steps;
      for (size_t i : group.Members) {
        if (!Params[i].Tensor.grad().defined())
          continue;
        params.push_back(Params[i].Tensor);
        grads.push_back(Params[i].Tensor.grad());
        expAvgs.push_back(ExpAvg[i]);
        expAvgSqs.push_back(ExpAvgSq[i]);
        steps.push_back(StepCounts[int64_t(i)]);
      }
      compat::fusedAdamW(params, grads, expAvgs, expAvgSqs, steps, lr * group.LRScale, Options.Beta1, Options.Beta2,
                         group.WeightDecay, Options.Eps);
    }
    return;
  }
  for (size_t i = 0; i < Params.size(); ++i)
    if (Params[i].Tensor.grad().defined())
      update(Params[i].Tensor, Params[i].Tensor.grad(), ExpAvg[i], ExpAvgSq[i], lr * LRScale[i], Decay[i], Steps,
             Options);
}

void AdamW::update(at::Tensor param, const at::Tensor &grad, at::Tensor expAvg, at::Tensor expAvgSq, double lr,
                   double weightDecay, int64_t step, const AdamWOptions &options) {
  at::NoGradGuard noGrad;
  const double b1 = options.Beta1, b2 = options.Beta2;
  const double biasCorrection1 = 1 - std::pow(b1, double(step));
  const double biasCorrection2Sqrt = std::sqrt(1 - std::pow(b2, double(step)));
  // torch/optim/adamw.py, _single_tensor_adamw, step for step.
  if (weightDecay != 0)
    param.mul_(1 - lr * weightDecay);
  expAvg.lerp_(grad, 1 - b1);
  expAvgSq.mul_(b2).addcmul_(grad, grad, 1 - b2);
  at::Tensor denom = (expAvgSq.sqrt() / biasCorrection2Sqrt).add_(options.Eps);
  param.addcdiv_(expAvg, denom, -lr / biasCorrection1);
}

void AdamW::setMoments(size_t i, at::Tensor expAvg, at::Tensor expAvgSq) {
  ExpAvg[i] = std::move(expAvg);
  ExpAvgSq[i] = std::move(expAvgSq);
}

void AdamW::zeroGrad() {
  for (NamedParameter &p : Params)
    p.Tensor.mutable_grad() = at::Tensor();
}

void AdamW::resetState() {
  for (size_t i = 0; i < Params.size(); ++i)
    ExpAvg[i] = ExpAvgSq[i] = at::Tensor();
  Steps = 0;
}

double mixtape::train::clipGradNorm(llvm::ArrayRef<NamedParameter> params, double maxNorm) {
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> grads;
  for (const NamedParameter &p : params)
    if (p.Tensor.grad().defined())
      grads.push_back(p.Tensor.grad());
  if (grads.empty())
    return 0;
  // Multi-tensor kernels: on CUDA a handful of launches instead of two per parameter.
  double total = at::stack(at::_foreach_norm(grads, 2)).norm(2).item<double>();
  double factor = clipFactor(total, maxNorm);
  if (factor < 1)
    at::_foreach_mul_(grads, factor);
  return total;
}

std::optional<std::string> mixtape::train::firstNonFinite(const AdamW &optimizer) {
  at::NoGradGuard noGrad;
  llvm::ArrayRef<NamedParameter> params = optimizer.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::pair<const at::Tensor *, const char *> tensors[] = {
        {&params[i].Tensor, ""}, {&optimizer.expAvg(i), ".exp_avg"}, {&optimizer.expAvgSq(i), ".exp_avg_sq"}};
    for (const auto &[t, suffix] : tensors)
      if (t->defined() && !at::isfinite(*t).all().item<bool>())
        return params[i].Name + suffix;
  }
  return std::nullopt;
}

double mixtape::train::clipFactor(double norm, double maxNorm) {
  double coef = maxNorm / (norm + 1e-6);
  return maxNorm > 0 && coef < 1 ? coef : 1;
}

//===----------------------------------------------------------------------===//
// State files
//===----------------------------------------------------------------------===//

static std::optional<st::DType> stateType(c10::ScalarType type) {
  if (type == at::kFloat)
    return st::DType::F32;
  if (type == at::kDouble)
    return st::DType::F64;
  return std::nullopt;
}

llvm::Error AdamW::saveState(llvm::StringRef path) const {
  return saveState(path, [&](size_t i) {
    // A parameter that never had a gradient has zero moments.
    auto orZeros = [&](const at::Tensor &moment) {
      return moment.defined() ? moment : at::zeros(Params[i].Tensor.sizes(), Params[i].Tensor.dtype());
    };
    return std::pair{orZeros(ExpAvg[i]), orZeros(ExpAvgSq[i])};
  });
}

llvm::Error AdamW::saveState(llvm::StringRef path,
                             llvm::function_ref<std::pair<at::Tensor, at::Tensor>(size_t)> momentsOf,
                             std::optional<c10::ScalarType> momentDtype) const {
  std::vector<st::TensorLayout> layouts;
  for (const model::NamedParameter &p : Params) {
    // Moments have their parameter's dtype (loadState holds a file to it).
    std::optional<st::DType> type = stateType(momentDtype.value_or(p.Tensor.scalar_type()));
    if (!type)
      return fileError(path, "optimizer state of '" + p.Name + "' is neither F32 nor F64");
    for (const char *suffix : {".exp_avg", ".exp_avg_sq"})
      layouts.push_back({p.Name + suffix, *type, p.Tensor.sizes().vec()});
  }
  std::map<std::string, std::string> metadata = {
      {"format", "mixtape-adamw-v1"},
      {"step", std::to_string(Steps)},
      {"beta1", mixtape::formatNumber(Options.Beta1)},
      {"beta2", mixtape::formatNumber(Options.Beta2)},
      {"eps", mixtape::formatNumber(Options.Eps)},
      {"weight_decay", mixtape::formatNumber(Options.WeightDecay)},
  };
  llvm::Expected<st::Writer> writer = st::Writer::create(path, layouts, metadata);
  if (!writer)
    return writer.takeError();
  for (size_t i = 0; i < Params.size(); ++i) {
    auto [expAvg, expAvgSq] = momentsOf(i);
    for (auto [suffix, moment] : {std::pair{".exp_avg", &expAvg}, {".exp_avg_sq", &expAvgSq}}) {
      at::Tensor t = moment->cpu().contiguous();
      if (llvm::Error e = writer->add(Params[i].Name + suffix,
                                      {static_cast<const uint8_t *>(t.data_ptr()), t.nbytes()}))
        return e;
    }
  }
  return writer->commit();
}

llvm::Error AdamW::loadState(llvm::StringRef path) {
  llvm::Expected<st::File> file = st::File::open(path);
  if (!file)
    return file.takeError();
  const std::map<std::string, std::string> &meta = file->metadata();
  auto format = meta.find("format");
  if (format == meta.end() || format->second != "mixtape-adamw-v1")
    return fileError(path, "not an AdamW state file (metadata format is not 'mixtape-adamw-v1')");
  int64_t steps = 0;
  auto step = meta.find("step");
  if (step == meta.end() || llvm::StringRef(step->second).getAsInteger(10, steps) || steps < 0)
    return fileError(path, "metadata 'step' is missing or not a count");
  if (file->tensors().size() != 2 * Params.size())
    return fileError(path, "holds " + llvm::Twine(file->tensors().size()) + " tensors; the model's " +
                               llvm::Twine(Params.size()) + " parameters need " + llvm::Twine(2 * Params.size()));
  std::vector<at::Tensor> expAvg(Params.size()), expAvgSq(Params.size());
  for (size_t i = 0; i < Params.size(); ++i) {
    const at::Tensor &param = Params[i].Tensor;
    for (auto [suffix, out] : {std::pair{".exp_avg", &expAvg[i]}, {".exp_avg_sq", &expAvgSq[i]}}) {
      std::string name = Params[i].Name + suffix;
      const st::TensorInfo *t = file->find(name);
      if (!t)
        return fileError(path, "missing tensor '" + name + "'");
      if (t->Shape != param.sizes().vec() || stateType(param.scalar_type()) != t->Dtype)
        return fileError(path, "tensor '" + name + "' does not match its parameter's shape and dtype");
      // Staged on the CPU (file data need not be aligned), then moved to the parameter's device.
      at::Tensor staging = at::empty(param.sizes(), param.options().device(at::kCPU));
      std::memcpy(staging.data_ptr(), t->Bytes.data(), t->Bytes.size());
      *out = staging.to(param.device());
    }
  }
  ExpAvg = std::move(expAvg);
  ExpAvgSq = std::move(expAvgSq);
  Steps = steps;
  return llvm::Error::success();
}
