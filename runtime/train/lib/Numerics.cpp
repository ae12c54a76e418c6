//===- Numerics.cpp -------------------------------------------------------===//
#include "mixtape/train/Numerics.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/StringRef.h"

#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <cstdlib>
#include <thread>

unsigned mixtape::train::configureThreads() {
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  if (const char *env = std::getenv(ThreadsEnvVar)) {
    unsigned value = 0;
    if (!llvm::StringRef(env).trim().getAsInteger(10, value) && value > 0)
      threads = value;
  }
  at::set_num_threads(int(threads));
  return threads;
}

/// The value of "<key>" in at::show_config()'s text, up to the next ',' or line end.
static std::string configValue(llvm::StringRef config, llvm::StringRef key) {
  size_t at = config.find(key);
  if (at == llvm::StringRef::npos)
    return "unknown";
  llvm::StringRef rest = config.substr(at + key.size());
  return rest.take_until([](char c) { return c == ',' || c == '\n'; }).trim().str();
}

llvm::Expected<c10::Device> mixtape::train::resolveDevice(llvm::StringRef spec) {
  std::string source = "device ";
  if (spec.empty()) {
    const char *env = std::getenv(DeviceEnvVar);
    spec = env && *env ? llvm::StringRef(env) : llvm::StringRef("auto");
    if (env && *env)
      source = std::string(DeviceEnvVar) + "=";
  }
  auto fail = [&](const llvm::Twine &why) {
    return mixtape::makeError(source + "'" + spec + "': " + why);
  };
  if (spec == "auto")
    return at::hasCUDA() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (spec == "cpu")
    return c10::Device(c10::kCPU);
  llvm::StringRef rest = spec;
  unsigned index = 0;
  if (!rest.consume_front("cuda") || (!rest.empty() && (!rest.consume_front(":") || rest.getAsInteger(10, index))))
    return fail("expected cpu, cuda, cuda:N or auto");
  if (!at::hasCUDA())
    return fail("this Mixtape's LibTorch (" TORCH_VERSION ") was built without CUDA, or this machine has no "
                "CUDA device; use --device cpu");
  const int devices = at::detail::getCUDAHooks().getNumGPUs();
  if (index >= unsigned(devices))
    return fail("this machine has " + llvm::Twine(devices) + " CUDA device" + (devices == 1 ? "" : "s"));
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string mixtape::train::numericsFingerprint(c10::Device device) {
  std::string config = at::show_config();
  // Debian's LibTorch reports BLAS_INFO=generic and reaches BLAS through libblas.so.3,
  // which the alternatives system points at OpenBLAS or the reference BLAS; ask the
  // loaded library itself when it can tell.
  std::string blas = configValue(config, "BLAS_INFO=");
  using GetConfig = const char *(*)();
  if (auto openblasConfig = reinterpret_cast<GetConfig>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    blas = llvm::StringRef(openblasConfig()).trim().str();
  return "libtorch " TORCH_VERSION "; blas " + blas + "; threads " +
         std::to_string(at::get_num_threads()) + "; cpu " +
         configValue(config, "CPU capability usage:") + (device.is_cuda() ? "; device " + device.str() : "");
}
