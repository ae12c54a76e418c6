//===- World.cpp - torchrun's and Slurm's environment ---------------------===//
#include "mixtape/dist/World.h"

#include "mixtape/support/Error.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Twine.h"

#include <cstdlib>

using namespace mixtape::dist;
using mixtape::makeError;

namespace {

using GetEnv = std::function<std::optional<std::string>(llvm::StringRef)>;

/// A variable that must hold an integer in [min, max].
llvm::Expected<int64_t> integerVar(const GetEnv &getenv, llvm::StringRef name, int64_t min, int64_t max) {
  std::optional<std::string> text = getenv(name);
  if (!text)
    return makeError(name + " is not set");
  int64_t value = 0;
  if (llvm::StringRef(*text).trim().getAsInteger(10, value) || value < min || value > max)
    return makeError(name + "='" + *text + "' is not an integer in [" + llvm::Twine(min) + ", " + llvm::Twine(max) +
                     "]");
  return value;
}

/// Splits at the commas outside brackets.
llvm::SmallVector<llvm::StringRef, 4> splitTopLevel(llvm::StringRef list) {
  llvm::SmallVector<llvm::StringRef, 4> parts;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    depth += list[i] == '[' ? 1 : list[i] == ']' ? -1 : 0;
    if (list[i] == ',' && depth == 0) {
      parts.push_back(list.slice(start, i));
      start = i + 1;
    }
  }
  parts.push_back(list.substr(start));
  return parts;
}

/// One host pattern, brackets expanded left to right (rack[1-2]-n[1-2]: rack1-n1, rack1-n2, ...).
llvm::Error expandPattern(llvm::StringRef pattern, llvm::StringRef whole, std::vector<std::string> &out) {
  size_t open = pattern.find('[');
  if (open == llvm::StringRef::npos) {
    if (pattern.empty() || pattern.contains(']'))
      return makeError("host list '" + whole + "': malformed host '" + pattern + "'");
    out.push_back(pattern.str());
    return llvm::Error::success();
  }
  size_t close = pattern.find(']', open);
  if (close == llvm::StringRef::npos)
    return makeError("host list '" + whole + "': unclosed '['");
  llvm::StringRef prefix = pattern.take_front(open), rest = pattern.substr(close + 1);
  llvm::SmallVector<llvm::StringRef, 8> ranges;
  pattern.slice(open + 1, close).split(ranges, ',');
  for (llvm::StringRef range : ranges) {
    auto [lowText, highText] = range.split('-');
    if (highText.empty())
      highText = lowText;
    uint64_t low = 0, high = 0;
    if (lowText.getAsInteger(10, low) || highText.getAsInteger(10, high) || low > high || high - low > 100000)
      return makeError("host list '" + whole + "': malformed range '" + range + "'");
    for (uint64_t n = low; n <= high; ++n) {
      std::string digits = std::to_string(n);
      if (digits.size() < lowText.size()) // node[01-04]: the width of the lower bound
        digits.insert(0, lowText.size() - digits.size(), '0');
      if (llvm::Error e = expandPattern((prefix + digits + rest).str(), whole, out))
        return e;
    }
  }
  return llvm::Error::success();
}

} // namespace

llvm::Expected<std::vector<std::string>> mixtape::dist::expandNodeList(llvm::StringRef list) {
  std::vector<std::string> hosts;
  for (llvm::StringRef part : splitTopLevel(list.trim()))
    if (llvm::Error e = expandPattern(part.trim(), list, hosts))
      return e;
  return hosts;
}

llvm::Expected<World> mixtape::dist::worldFromEnvironment(const GetEnv &getenv) {
  World w;
  const bool torchrun = getenv("RANK") || getenv("WORLD_SIZE");
  // sbatch exports SLURM_PROCID=0 and SLURM_NTASKS to the batch script itself: only srun's
  // tasks are in a job step.
  const bool slurm = !torchrun && getenv("SLURM_STEP_ID") && getenv("SLURM_PROCID") &&
                     (getenv("SLURM_STEP_NUM_TASKS") || getenv("SLURM_NTASKS"));
  if (!torchrun && !slurm)
    return w;
  const char *rankVar = torchrun ? "RANK" : "SLURM_PROCID",
             *sizeVar = torchrun                         ? "WORLD_SIZE"
                        : getenv("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS"
                                                         : "SLURM_NTASKS",
             *localVar = torchrun ? "LOCAL_RANK" : "SLURM_LOCALID";
  w.Source = torchrun ? "torchrun" : "slurm";
  llvm::Expected<int64_t> size = integerVar(getenv, sizeVar, 1, 1 << 20);
  if (!size)
    return size.takeError();
  llvm::Expected<int64_t> rank = integerVar(getenv, rankVar, 0, *size - 1);
  if (!rank)
    return rank.takeError();
  w.Size = static_cast<int>(*size);
  w.Rank = static_cast<int>(*rank);
  if (getenv(localVar)) {
    llvm::Expected<int64_t> local = integerVar(getenv, localVar, 0, *size - 1);
    if (!local)
      return local.takeError();
    w.LocalRank = static_cast<int>(*local);
  }
  if (w.Size == 1)
    return w;
  llvm::Expected<int64_t> step = slurm ? integerVar(getenv, "SLURM_STEP_ID", 0, INT64_MAX) : int64_t(0);
  if (!step)
    return step.takeError();
  if (torchrun) {
    // torchrun's agent keeps its store across restarts: each attempt's keys are its own.
    llvm::Expected<int64_t> restart =
        getenv("TORCHELASTIC_RESTART_COUNT") ? integerVar(getenv, "TORCHELASTIC_RESTART_COUNT", 0, INT64_MAX)
                                             : int64_t(0);
    if (!restart)
      return restart.takeError();
    w.StorePrefix = "mixtape/restart-" + std::to_string(*restart);
    if (std::optional<std::string> run = getenv("MIXTAPE_RUN_ID"); run && !run->empty())
      w.StorePrefix += "/run-" + *run;
  } else {
    w.StorePrefix = "mixtape/step-" + std::to_string(*step);
  }

  if (std::optional<std::string> addr = getenv("MASTER_ADDR"); addr && !addr->empty()) {
    w.MasterAddr = *addr;
  } else if (torchrun) {
    return makeError("MASTER_ADDR is not set (torchrun sets it with RANK and WORLD_SIZE)");
  } else {
    // The step's first host runs its task 0; the job's may not be in the step at all.
    std::optional<std::string> list = getenv("SLURM_STEP_NODELIST");
    if (!list)
      list = getenv("SLURM_JOB_NODELIST");
    if (!list)
      return makeError("neither MASTER_ADDR nor SLURM_STEP_NODELIST nor SLURM_JOB_NODELIST is set: no host for "
                       "rank 0's store");
    llvm::Expected<std::vector<std::string>> hosts = expandNodeList(*list);
    if (!hosts)
      return mixtape::prefixError(getenv("SLURM_STEP_NODELIST") ? "SLURM_STEP_NODELIST" : "SLURM_JOB_NODELIST",
                                  hosts.takeError());
    w.MasterAddr = hosts->front();
  }
  if (getenv("MASTER_PORT") || torchrun) {
    llvm::Expected<int64_t> port = integerVar(getenv, "MASTER_PORT", 1, 65535);
    if (!port)
      return port.takeError();
    w.MasterPort = static_cast<uint16_t>(*port);
  } else {
    // Every task of a step computes the same port; two jobs, or two steps of a job, that
    // share a node differ.
    llvm::Expected<int64_t> job = integerVar(getenv, "SLURM_JOB_ID", 0, INT64_MAX / 64);
    if (!job) {
      llvm::consumeError(job.takeError());
      return makeError("MASTER_PORT is not set and neither is SLURM_JOB_ID to derive it from");
    }
    w.MasterPort = static_cast<uint16_t>(20000 + (*job * 31 + *step) % 20000);
  }
  w.StoreServedByAgent = torchrun && getenv("TORCHELASTIC_USE_AGENT_STORE") == std::optional<std::string>("True");
  return w;
}

llvm::Expected<World> mixtape::dist::worldFromEnvironment() {
  return worldFromEnvironment([](llvm::StringRef name) -> std::optional<std::string> {
    if (const char *value = std::getenv(name.str().c_str()))
      return std::string(value);
    return std::nullopt;
  });
}
