//===- MergeFiles.cpp - a streamed merge of safetensors files --------------===//
//
// All inputs are mapped (safetensors::File), so a tensor's bytes are read from the page
// cache when it is merged and dropped after: the resident set is one tensor per input,
// its double-precision copies and the merged tensor, whatever the models' size.
//
//===----------------------------------------------------------------------===//
#include "mixtape/merge/Merge.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Format.h"

#include "mixtape/safetensors/SafeTensors.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstring>

using namespace mixtape;
using namespace mixtape::merge;
namespace st = mixtape::safetensors;

namespace {

std::optional<c10::ScalarType> floatingType(st::DType type) {
  switch (type) {
  case st::DType::F64: return at::kDouble;
  case st::DType::F32: return at::kFloat;
  case st::DType::F16: return at::kHalf;
  case st::DType::BF16: return at::kBFloat16;
  default: return std::nullopt;
  }
}

/// The tensor's bytes as an ATen tensor: a view of the mapping when it is aligned for the
/// dtype (it is, in files written 8-aligned), else a copy.
at::Tensor asTensor(const st::TensorInfo &t, c10::ScalarType type) {
  auto options = at::TensorOptions().dtype(type);
  void *data = const_cast<uint8_t *>(t.Bytes.data());
  if (reinterpret_cast<uintptr_t>(data) % st::dtypeSize(t.Dtype) == 0)
    return at::from_blob(data, t.Shape, options);
  at::Tensor copy = at::empty(t.Shape, options);
  std::memcpy(copy.data_ptr(), data, t.Bytes.size());
  return copy;
}

/// A NaN or infinity in one input would spread into the merge (slerp's norms and ties' sign
/// election take the whole tensor), so it is an error naming the file and the tensor. One
/// pass over the tensor; the count and the first position only on the way to the error.
llvm::Error checkFinite(const at::Tensor &t, const st::File &file, llvm::StringRef name) {
  if (at::isfinite(t).all().item<bool>())
    return llvm::Error::success();
  at::Tensor flat = t.reshape({-1});
  at::Tensor bad = at::logical_not(at::isfinite(flat));
  const int64_t first = bad.nonzero()[0][0].item<int64_t>();
  return fileError(file.path(), llvm::formatv("tensor '{0}' holds {1} value(s) that are not finite, the first {2} "
                                              "at index {3}: it cannot be merged",
                                              name, bad.sum().item<int64_t>(),
                                              formatNumber(flat[first].item<double>()), first));
}

/// Every input has the first model's tensor names, and per name its shape and dtype.
llvm::Error checkSameTensors(llvm::ArrayRef<const st::File *> files) {
  const st::File &first = *files.front();
  for (const st::File *f : files.drop_front()) {
    for (const st::TensorInfo &t : first.tensors()) {
      const st::TensorInfo *other = f->find(t.Name);
      if (!other)
        return makeError("tensor '" + t.Name + "' is in " + first.path() + " but not in " + f->path());
      if (other->Shape != t.Shape)
        return makeError("tensor '" + t.Name + "' has shape " + st::shapeText(t.Shape) + " in " + first.path() +
                     " but " + st::shapeText(other->Shape) + " in " + f->path());
      if (other->Dtype != t.Dtype)
        return makeError("tensor '" + t.Name + "' is " + st::dtypeName(t.Dtype) + " in " + first.path() + " but " +
                     st::dtypeName(other->Dtype) + " in " + f->path());
    }
    for (const st::TensorInfo &t : f->tensors())
      if (!first.find(t.Name))
        return makeError("tensor '" + t.Name + "' is in " + f->path() + " but not in " + first.path());
  }
  return llvm::Error::success();
}

} // namespace

llvm::Error mixtape::merge::mergeFiles(const MergeOptions &options, llvm::ArrayRef<std::string> models,
                                       const std::optional<std::string> &base, llvm::StringRef out) {
  if (llvm::Error e = options.validate(models.size(), base.has_value()))
    return e;
  std::vector<st::File> files;
  for (const std::string &path : models) {
    llvm::Expected<st::File> f = st::File::open(path);
    if (!f)
      return f.takeError();
    files.push_back(std::move(*f));
  }
  if (base) {
    llvm::Expected<st::File> f = st::File::open(*base);
    if (!f)
      return f.takeError();
    files.push_back(std::move(*f));
  }
  std::vector<const st::File *> all;
  for (const st::File &f : files)
    all.push_back(&f);
  if (llvm::Error e = checkSameTensors(all))
    return e;
  const st::File &first = files.front();
  const st::File &configSource = base ? files.back() : first;

  std::vector<st::TensorLayout> layout;
  for (const st::TensorInfo &t : first.tensors())
    layout.push_back({t.Name, t.Dtype, t.Shape});
  llvm::Expected<st::Writer> writer = st::Writer::create(out, layout, configSource.metadata());
  if (!writer)
    return writer.takeError();

  at::NoGradGuard noGrad;
  for (const st::TensorInfo &t : first.tensors()) {
    std::optional<c10::ScalarType> type = floatingType(t.Dtype);
    if (!type) {
      // Integer and bool tensors (buffers, not weights) cannot be averaged: they must agree.
      for (const st::File &f : files)
        if (!llvm::equal(f.find(t.Name)->Bytes, t.Bytes))
          return makeError("tensor '" + t.Name + "' is " + st::dtypeName(t.Dtype) + ", which is not merged, and " +
                       first.path() + " and " + f.path() + " disagree on it");
      if (llvm::Error e = writer->add(t.Name, t.Bytes))
        return e;
      continue;
    }
    std::vector<at::Tensor> inputs;
    for (size_t i = 0; i < models.size(); ++i)
      inputs.push_back(asTensor(*files[i].find(t.Name), *type));
    at::Tensor baseTensor = base ? asTensor(*files.back().find(t.Name), *type) : at::Tensor();
    for (size_t i = 0; i < files.size(); ++i)
      if (llvm::Error e = checkFinite(i < inputs.size() ? inputs[i] : baseTensor, files[i], t.Name))
        return e;
    at::Tensor merged;
    try {
      merged = mergeTensors(options, inputs, baseTensor, t.Name);
    } catch (const c10::Error &e) {
      return makeError("merging tensor '" + t.Name + "' into " + out + ": " + e.what_without_backtrace());
    }
    llvm::ArrayRef<uint8_t> bytes(static_cast<const uint8_t *>(merged.data_ptr()), merged.nbytes());
    if (llvm::Error e = writer->add(t.Name, bytes))
      return e;
  }
  return writer->commit();
}
