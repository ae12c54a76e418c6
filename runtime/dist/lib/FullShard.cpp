//===- FullShard.cpp - gather per unit, reduce-scatter as backward ends ---===//
#include "mixtape/dist/FullShard.h"
#include "ShardLayout.h"
#include "SlicedCollectives.h"

#include "mixtape/support/Error.h"

#include "llvm/Support/Path.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <cassert>
#include <cmath>
#include <numeric>

using namespace mixtape::dist;
using mixtape::makeError;
using mixtape::model::NamedParameter;

struct FullShard::Unit {
  std::vector<size_t> Params; ///< indices into the model's parameters
  std::unique_ptr<ShardLayout> Layout;
  at::Tensor Shard, ExpAvg, ExpAvgSq; ///< [ShardSize]: this rank's weights and moments
  at::Tensor GradShard;               ///< [ShardSize]: the summed gradients, once reduced
  bool Reduced = false;               ///< GradShard holds this step's gradients
  bool Gathered = true;               ///< the parameter tensors hold the whole unit
  size_t Waiting = 0;                 ///< gradients the running backward has yet to accumulate
};

/// An all-gather of a unit's shards, in the compute dtype, into one buffer, started, not yet
/// copied into its parameters.
struct FullShard::UnitGather {
  UnitGather(Collectives &comm, Unit &unit, at::Tensor whole)
      : Target(&unit), Whole(std::move(whole)), Sent(movable(unit.Shard.to(Whole.scalar_type()))),
        Received(movable(Whole)), Work(comm.startAllGather(Sent, Received)) {}
  /// `t`, or for bf16 its bits as fp16's: an all-gather moves bits, and Gloo moves no bf16.
  static at::Tensor movable(const at::Tensor &t) {
    return t.scalar_type() == at::kBFloat16 ? t.view(at::kHalf) : t;
  }
  Unit *Target;
  at::Tensor Whole;
  /// The shard itself, or its copy in the compute dtype, and Whole as the collective sees
  /// them: alive until the gather ends.
  at::Tensor Sent, Received;
  std::unique_ptr<PendingCollective> Work;
};

namespace mixtape::dist {
/// Runs after autograd accumulated a parameter's gradient.
struct UnitGradientHook final : torch::autograd::FunctionPostHook {
  UnitGradientHook(FullShard &owner, size_t param) : Owner(owner), Param(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list &outputs,
                                            const torch::autograd::variable_list &) override {
    Owner.gradientReady(Param);
    return outputs;
  }
  FullShard &Owner;
  size_t Param;
};
} // namespace mixtape::dist

namespace {

/// Frees a parameter's storage; the tensor keeps its shape and identity (autograd may hold it).
void dropStorage(const at::Tensor &t) {
  c10::StorageImpl *storage = t.storage().unsafeGetStorageImpl();
  storage->set_data_ptr_noswap(c10::DataPtr(nullptr, t.device()));
  storage->set_nbytes(0);
}

/// Gives a parameter fresh storage and returns a tensor over it that shares no version
/// counter with the parameter: filling it during backward does not look like an in-place
/// change of a tensor autograd saved.
at::Tensor refillStorage(const at::Tensor &t) {
  c10::StorageImpl *storage = t.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  storage->set_data_ptr_noswap(storage->allocator()->allocate(bytes));
  storage->set_nbytes(bytes);
  return at::from_blob(storage->data(), t.sizes(), t.options().requires_grad(false));
}

/// Points a parameter's storage at `whole` from element `offset` on; the storage keeps
/// `whole`'s alive until it is dropped or pointed elsewhere.
void aliasStorage(const at::Tensor &t, const at::Tensor &whole, int64_t offset) {
  c10::StorageImpl *storage = t.storage().unsafeGetStorageImpl();
  const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  void *data = static_cast<char *>(whole.data_ptr()) + offset * static_cast<int64_t>(whole.element_size());
  storage->set_data_ptr_noswap(c10::DataPtr(
      data, new c10::Storage(whole.storage()), [](void *keep) { delete static_cast<c10::Storage *>(keep); },
      t.device()));
  storage->set_nbytes(bytes);
}

/// Makes parameter `t`, whose storage is freed, a tensor of `dtype` holding no storage; it
/// stays the same leaf tensor (the optimizer and the model hold it), its gradients of `dtype`.
void retype(const at::Tensor &t, c10::ScalarType dtype) {
  t.set_data(at::empty(t.sizes(), t.options().dtype(dtype).requires_grad(false)));
  dropStorage(t);
}

} // namespace

/// The checks create and build share: the optimizer holds the model's parameters, each
/// its own storage (`unallocated`: none yet), of one dtype and device.
static llvm::Error checkShardable(const mixtape::model::Model &model, const mixtape::train::AdamW &optimizer,
                                  bool unallocated) {
  llvm::ArrayRef<NamedParameter> params = model.parameters();
  if (params.empty())
    return makeError("--shard full: the model has no parameters");
  llvm::ArrayRef<NamedParameter> optimized = optimizer.parameters();
  if (optimized.size() != params.size() ||
      llvm::any_of(llvm::zip(optimized, params), [](auto pair) {
        return !std::get<0>(pair).Tensor.is_same(std::get<1>(pair).Tensor);
      }))
    return makeError("--shard full: the optimizer does not hold the model's parameters");
  for (const NamedParameter &p : params) {
    const size_t bytes = unallocated ? 0 : static_cast<size_t>(p.Tensor.numel()) * p.Tensor.element_size();
    if (!p.Tensor.is_contiguous() || p.Tensor.storage_offset() != 0 || p.Tensor.storage().nbytes() != bytes ||
        p.Tensor.scalar_type() != params.front().Tensor.scalar_type() ||
        p.Tensor.device() != params.front().Tensor.device())
      return makeError("--shard full frees each parameter's storage: parameter '" + p.Name + "' " +
                       (unallocated ? "holds storage before the sharded build" : "shares its storage") +
                       " or differs in dtype or device from '" + params.front().Name + "'");
  }
  return llvm::Error::success();
}

/// Gloo (the CPU's collectives) sums no bf16: the gradients of a CPU world reduce in fp32.
static llvm::Error checkPrecision(const Collectives &collectives, const FullShardOptions &options) {
  if (options.ReduceDtype == at::kBFloat16 && collectives.deviceType() == c10::DeviceType::CPU)
    return makeError("--shard full: Gloo, the CPU's collectives, cannot reduce gradients in bf16; reduce them in fp32");
  return llvm::Error::success();
}

llvm::Expected<std::unique_ptr<FullShard>> FullShard::create(Collectives &collectives, model::Model &model,
                                                             train::AdamW &optimizer, FullShardOptions options) {
  if (llvm::Error e = checkShardable(model, optimizer, /*unallocated=*/false))
    return e;
  if (llvm::Error e = checkPrecision(collectives, options))
    return e;
  std::unique_ptr<FullShard> full(new FullShard(collectives, model, options));
  for (Unit &unit : full->Units)
    full->takeShard(unit, optimizer);
  full->finishSetup(optimizer);
  return full;
}

llvm::Expected<std::unique_ptr<FullShard>>
FullShard::build(Collectives &collectives, model::Model &model, train::AdamW &optimizer,
                 llvm::function_ref<llvm::Error(llvm::ArrayRef<size_t>)> fill, FullShardOptions options) {
  if (llvm::Error e = checkShardable(model, optimizer, /*unallocated=*/true))
    return e;
  if (llvm::Error e = checkPrecision(collectives, options))
    return e;
  std::unique_ptr<FullShard> full(new FullShard(collectives, model, options));
  Collectives &comm = full->Comm;
  for (size_t u = 0; u < full->Units.size(); ++u) {
    Unit &unit = full->Units[u];
    if (!fill) { // each rank reads its shards itself once built
      full->allocateShards(unit);
      unit.Gathered = false;
      continue;
    }
    std::vector<NamedParameter> params;
    for (size_t i : unit.Params) {
      refillStorage(full->Params[i].Tensor);
      params.push_back(full->Params[i]);
    }
    // Rank 0's values for all, as DataParallel starts from rank 0's parameters.
    llvm::Error filled = comm.rank() == 0 ? fill(unit.Params) : llvm::Error::success();
    if (llvm::Error e = everyRankSucceeded(comm, std::move(filled),
                                           "building unit " + std::to_string(u) + " of the sharded model"))
      return e;
    broadcastParameters(comm, params);
    full->takeShard(unit, optimizer);
    unit.Gathered = true;
    full->release(unit);
  }
  full->finishSetup(optimizer);
  return full;
}

FullShard::FullShard(Collectives &collectives, model::Model &model, FullShardOptions options)
    : DataParallel(collectives), Model(model), Params(model.parameters()),
      ShardDtype(Params.front().Tensor.scalar_type()), ComputeDtype(options.ComputeDtype.value_or(ShardDtype)),
      ReduceDtype(options.ReduceDtype.value_or(ShardDtype)) {
  const std::vector<std::vector<size_t>> parts = model.partParameters();
  UnitOfPart.assign(parts.size(), 0);
  UnitOfParam.assign(Params.size(), 0);
  // A unit per part; a tied head's last part joins the first (the embedding) in one unit.
  const bool tied = llvm::any_of(parts.back(), [&](size_t i) { return llvm::is_contained(parts.front(), i); });
  for (size_t part = 0; part < parts.size(); ++part) {
    if (tied && part + 1 == parts.size()) {
      for (size_t i : parts[part])
        if (!llvm::is_contained(Units.front().Params, i))
          Units.front().Params.push_back(i);
      UnitOfPart[part] = 0;
      continue;
    }
    UnitOfPart[part] = Units.size();
    Units.emplace_back();
    Units.back().Params = parts[part];
  }
  Outer = UnitOfPart.back();
  for (size_t u = 0; u < Units.size(); ++u) {
    Unit &unit = Units[u];
    std::vector<int64_t> numels;
    for (size_t i : unit.Params) {
      UnitOfParam[i] = u;
      numels.push_back(Params[i].Tensor.numel());
    }
    unit.Layout = std::make_unique<ShardLayout>(numels, Comm.rank(), Comm.worldSize());
  }
}

void FullShard::allocateShards(Unit &unit) {
  at::TensorOptions options = Params.front().Tensor.options().dtype(ShardDtype).requires_grad(false);
  unit.Shard = at::zeros({unit.Layout->ShardSize}, options);
  unit.ExpAvg = at::zeros({unit.Layout->ShardSize}, options);
  unit.ExpAvgSq = at::zeros({unit.Layout->ShardSize}, options);
  unit.GradShard = at::empty({unit.Layout->ShardSize}, options);
}

void FullShard::takeShard(Unit &unit, const train::AdamW &optimizer) {
  at::NoGradGuard noGrad;
  allocateShards(unit);
  for (const ShardLayout::Piece &p : unit.Layout->Pieces) {
    const size_t i = unit.Params[p.Tensor];
    auto take = [&](at::Tensor &shard, const at::Tensor &whole) {
      shard.narrow(0, p.InShard, p.Length).copy_(whole.detach().reshape({-1}).narrow(0, p.InTensor, p.Length));
    };
    take(unit.Shard, Params[i].Tensor);
    if (optimizer.expAvg(i).defined()) {
      take(unit.ExpAvg, optimizer.expAvg(i));
      take(unit.ExpAvgSq, optimizer.expAvgSq(i));
    }
  }
}

void FullShard::finishSetup(train::AdamW &optimizer) {
  for (Unit &unit : Units)
    release(unit);
  // Before autograd's accumulators are taken: a new dtype makes a parameter a new one.
  if (ComputeDtype != ShardDtype)
    for (const NamedParameter &p : Params)
      retype(p.Tensor, ComputeDtype);
  for (size_t i = 0; i < Params.size(); ++i) {
    optimizer.setMoments(i, at::Tensor(), at::Tensor());
    const_cast<at::Tensor &>(Params[i].Tensor).mutable_grad() = at::Tensor();
    Accumulators.push_back(torch::autograd::impl::grad_accumulator(Params[i].Tensor));
    HookKeys.push_back(Accumulators.back()->add_post_hook(std::make_unique<UnitGradientHook>(*this, i)));
  }
  Model.setPartRunner(this);
}

FullShard::~FullShard() {
  Model.setPartRunner(nullptr);
  for (size_t i = 0; i < Accumulators.size(); ++i)
    Accumulators[i]->del_post_hook(HookKeys[i]);
}

int64_t FullShard::shardElements() const {
  int64_t total = 0;
  for (const Unit &unit : Units)
    total += unit.Layout->ShardSize;
  return total;
}

std::vector<StateSlice> FullShard::checkpointSlices() const {
  std::vector<StateSlice> out;
  for (const Unit &unit : Units)
    for (const ShardLayout::Piece &p : unit.Layout->Pieces) {
      const model::NamedParameter &param = Params[unit.Params[p.Tensor]];
      const std::vector<int64_t> shape = param.Tensor.sizes().vec();
      out.push_back({param.Name, shape, p.InTensor, unit.Shard.narrow(0, p.InShard, p.Length)});
      out.push_back({expAvgName(param.Name), shape, p.InTensor, unit.ExpAvg.narrow(0, p.InShard, p.Length)});
      out.push_back({expAvgSqName(param.Name), shape, p.InTensor, unit.ExpAvgSq.narrow(0, p.InShard, p.Length)});
    }
  return out;
}

void FullShard::gather(Unit &unit) {
  if (unit.Gathered)
    return;
  at::NoGradGuard noGrad;
  if (Ahead && Ahead->Target != &unit)
    dropPrefetch();
  std::unique_ptr<UnitGather> gathering =
      Ahead ? std::move(Ahead) : std::make_unique<UnitGather>(Comm, unit, gatherBuffer(unit));
  gathering->Work->wait();
  for (size_t k = 0; k < unit.Params.size(); ++k)
    aliasStorage(Params[unit.Params[k]].Tensor, gathering->Whole, unit.Layout->Offsets[k]);
  unit.Gathered = true;
}

at::Tensor FullShard::gatherBuffer(const Unit &unit) {
  const int64_t elements = unit.Layout->ShardSize * Comm.worldSize();
  at::Tensor *best = nullptr;
  for (at::Tensor &buffer : GatherBuffers)
    if (buffer.storage().use_count() == 1 && buffer.numel() >= elements && buffer.numel() <= elements + elements / 8 &&
        (!best || buffer.numel() < best->numel()))
      best = &buffer;
  if (best)
    return best->narrow(0, 0, elements);
  // Sized for the largest unit it could serve: an untied head then reuses the embedding's.
  int64_t size = elements;
  for (const Unit &other : Units)
    if (int64_t n = other.Layout->ShardSize * Comm.worldSize(); n > size && n <= elements + elements / 8)
      size = n;
  GatherBuffers.push_back(at::empty({size}, unit.Shard.options().dtype(ComputeDtype)));
  return GatherBuffers.back().narrow(0, 0, elements);
}

void FullShard::prefetch(size_t part) {
  if (part >= UnitOfPart.size() || Ahead)
    return;
  Unit &unit = Units[UnitOfPart[part]];
  if (unit.Gathered)
    return;
  at::NoGradGuard noGrad;
  Ahead = std::make_unique<UnitGather>(Comm, unit, gatherBuffer(unit));
}

void FullShard::dropPrefetch() {
  if (!Ahead)
    return;
  Ahead->Work->wait(); // its error, if a peer died, is this rank's too
  Ahead.reset();
}

void FullShard::release(Unit &unit) {
  if (!unit.Gathered || KeepWhole)
    return;
  for (size_t i : unit.Params)
    dropStorage(Params[i].Tensor);
  unit.Gathered = false;
}

at::Tensor FullShard::run(size_t part, const at::Tensor &input,
                          llvm::function_ref<at::Tensor(const at::Tensor &)> body) {
  const size_t index = UnitOfPart[part];
  Unit &unit = Units[index];
  const bool outer = index == Outer, last = part + 1 == UnitOfPart.size();
  if (!outer || !unit.Gathered) { // the outer unit, once gathered, stays until it is reduced
    gather(unit);
    if (at::GradMode::is_enabled())
      unit.Waiting = unit.Params.size();
  }
  prefetch(part + 1); // overlaps `body`
  at::Tensor out = body(input);
  // The outer unit stays while gradients are to come (with none, to the pass's end).
  if (!outer || (last && !out.requires_grad()))
    release(unit);
  if (out.requires_grad()) // the part's backward starts once this gradient is complete
    out.register_hook([this, part, outer](const at::TensorBase &) {
      if (!outer)
        gather(Units[UnitOfPart[part]]);
      if (part > 0)
        prefetch(part - 1); // overlaps this part's backward
    });
  return out;
}

void FullShard::gradientReady(size_t param) {
  Unit &unit = Units[UnitOfParam[param]];
  if (unit.Waiting && --unit.Waiting == 0)
    reduce(unit);
}

void FullShard::reduce(Unit &unit) {
  at::NoGradGuard noGrad;
  const ShardLayout &layout = *unit.Layout;
  std::vector<at::Tensor> grads; // flat views; undefined where a parameter got no gradient here
  for (size_t k = 0; k < unit.Params.size(); ++k) {
    at::Tensor &grad = const_cast<at::Tensor &>(Params[unit.Params[k]].Tensor).mutable_grad();
    grads.push_back(grad.defined() ? grad.reshape({-1}) : at::Tensor());
    grad = at::Tensor();
  }
  // Micro-batches add up here, each already summed over the ranks (gradients of the
  // compute dtype are converted to the reduce dtype slice by slice).
  if (!unit.Reduced && ReduceDtype == ShardDtype) {
    reduceScatterInSlices(Comm, layout, grads, unit.GradShard);
  } else {
    at::Tensor sum = at::empty({layout.ShardSize}, unit.Shard.options().dtype(ReduceDtype));
    reduceScatterInSlices(Comm, layout, grads, sum);
    if (unit.Reduced)
      unit.GradShard.add_(sum);
    else
      unit.GradShard.copy_(sum);
  }
  unit.Reduced = true;
  unit.Waiting = 0;
  release(unit);
}

void FullShard::sumCounts(int64_t &lossTokens, int64_t &tokens) {
  // A step begins: the gradient shards of the last one, applied or skipped, are spent.
  for (Unit &unit : Units)
    unit.Reduced = false;
  DataParallel::sumCounts(lossTokens, tokens);
}

void FullShard::sumGradients(llvm::ArrayRef<NamedParameter>, llvm::MutableArrayRef<double> sums) {
  // A unit some of whose parameters got no gradient in the last backward: reduced now, in
  // the same order on every rank.
  for (Unit &unit : Units)
    if (unit.Waiting)
      reduce(unit);
  sumLoss(sums);
}

double FullShard::clipAndStep(train::AdamW &optimizer, double clipNorm, double lr) {
  at::NoGradGuard noGrad;
  dropPrefetch(); // a gather in flight must not read the shards the step updates
  at::Tensor squares = at::zeros({1}, at::TensorOptions(at::kDouble).device(Units.front().Shard.device()));
  for (const Unit &unit : Units)
    if (unit.Reduced)
      squares += squaredSumInSlices(unit.GradShard);
  squares = squares.to(Comm.deviceType());
  Comm.allReduceSum(squares);
  const double norm = std::sqrt(squares.item<double>());
  const double factor = train::clipFactor(norm, clipNorm);
  const int64_t step = std::isfinite(norm) ? optimizer.countStep() : 0;
  for (Unit &unit : Units) {
    at::Tensor &grad = unit.GradShard;
    if (!unit.Reduced || !std::isfinite(norm)) // every rank sees the same norm: all skip the update
      continue;
    if (factor < 1)
      grad.mul_(factor);
    for (const ShardLayout::Piece &p : unit.Layout->Pieces)
      train::AdamW::update(unit.Shard.narrow(0, p.InShard, p.Length), grad.narrow(0, p.InShard, p.Length),
                           unit.ExpAvg.narrow(0, p.InShard, p.Length), unit.ExpAvgSq.narrow(0, p.InShard, p.Length),
                           lr * optimizer.lrScale(unit.Params[p.Tensor]), optimizer.weightDecay(unit.Params[p.Tensor]), step, optimizer.options());
  }
  return norm;
}

void FullShard::gatherWhole() {
  for (Unit &unit : Units)
    gather(unit);
  KeepWhole = true;
}

void FullShard::releaseWhole() {
  KeepWhole = false;
  for (Unit &unit : Units)
    release(unit);
}

/// Every rank walks the parameters in a writer's order: each parameter's unit is
/// all-gathered when the walk first reaches it and dropped after its last parameter there.
/// Held at once: the units whose parameters the order interleaves (by name, the outer
/// unit's head and final norm lie at the two ends of model.safetensors), each as whole
/// buffers of the shards it reads (the weights, or both moments). Rank 0 paces the gathers:
/// it writes `file` between them.
class FullShard::UnitWalk {
public:
  UnitWalk(FullShard &owner, RankZeroPace &pace, llvm::StringRef file, std::vector<size_t> order,
           std::vector<at::Tensor Unit::*> shards)
      : Owner(owner), Pace(pace), File(llvm::sys::path::filename(file).str()), Order(std::move(order)),
        Shards(std::move(shards)), LastStep(owner.Units.size()), Held(owner.Units.size()),
        IndexInUnit(owner.Params.size()) {
    for (size_t step = 0; step < Order.size(); ++step)
      LastStep[Owner.UnitOfParam[Order[step]]] = step;
    for (const Unit &unit : Owner.Units)
      for (size_t k = 0; k < unit.Params.size(); ++k)
        IndexInUnit[unit.Params[k]] = k;
  }

  /// The next parameter's values, one per shard kind; it must be `param`. They stay valid
  /// until the next call.
  std::vector<at::Tensor> next(size_t param) {
    assert(Step < Order.size() && Order[Step] == param && "a writer asked for the parameters out of order");
    dropDone();
    const size_t index = Owner.UnitOfParam[param];
    Unit &unit = Owner.Units[index];
    if (Held[index].empty()) {
      Pace.next("writing " + File + " up to '" + Owner.Params[param].Name + "'");
      for (at::Tensor Unit::*shard : Shards) {
        Held[index].push_back(at::empty({unit.Layout->ShardSize * Owner.Comm.worldSize()}, unit.Shard.options()));
        Owner.Comm.allGather(unit.*shard, Held[index].back());
      }
    }
    const at::Tensor &tensor = Owner.Params[param].Tensor;
    std::vector<at::Tensor> values;
    for (const at::Tensor &whole : Held[index])
      values.push_back(whole.narrow(0, unit.Layout->Offsets[IndexInUnit[param]], tensor.numel()).view(tensor.sizes()));
    ++Step;
    return values;
  }

  /// Walks what is left: every rank makes the same all-gathers, whether or not rank 0's
  /// writer stopped early (or others, which write nothing, walked at all).
  void finish() {
    while (Step < Order.size())
      next(Order[Step]);
    dropDone();
  }

private:
  void dropDone() {
    for (size_t index = 0; index < Held.size(); ++index)
      if (!Held[index].empty() && LastStep[index] < Step)
        Held[index].clear();
  }

  FullShard &Owner;
  RankZeroPace &Pace;
  std::string File;
  std::vector<size_t> Order;
  std::vector<at::Tensor Unit::*> Shards;
  std::vector<size_t> LastStep;               ///< per unit: the step of its last parameter
  std::vector<std::vector<at::Tensor>> Held;  ///< per unit: its gathered buffers, while the walk needs them
  std::vector<size_t> IndexInUnit;            ///< per parameter: its place in its unit
  size_t Step = 0;
};

llvm::Error FullShard::saveWhole(const train::AdamW &optimizer, const std::string &what, llvm::StringRef modelPath,
                                 llvm::StringRef optimizerPath) {
  at::NoGradGuard noGrad;
  dropPrefetch();
  const bool root = Comm.rank() == 0;
  return Comm.rankZeroPaces(what, [&](RankZeroPace &pace) {
    UnitWalk weights(*this, pace, modelPath, Model.weightOrder(), {&Unit::Shard});
    llvm::Error written = root ? Model.saveWeights(modelPath, [&](size_t i) { return weights.next(i).front(); })
                               : llvm::Error::success();
    weights.finish();
    std::vector<size_t> order(Params.size());
    std::iota(order.begin(), order.end(), size_t(0));
    UnitWalk moments(*this, pace, optimizerPath, std::move(order), {&Unit::ExpAvg, &Unit::ExpAvgSq});
    if (root && !written)
      written = optimizer.saveState(optimizerPath, [&](size_t i) {
        std::vector<at::Tensor> m = moments.next(i);
        return std::pair{m[0], m[1]};
      }, ShardDtype);
    moments.finish();
    return written;
  });
}
