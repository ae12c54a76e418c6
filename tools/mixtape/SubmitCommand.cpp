//===- SubmitCommand.cpp - `mixtape submit --slurm` -----------------------===//
//
// Compile a recipe's plan and submit it as Slurm jobs: one job per train node, each
// depending (afterok) on the jobs of its inputs; the init nodes in one first job; an eval
// or merge joins the job that produces its last input when it can, and the rest go to one
// closing job, so a sweep does not become a hundred tiny jobs. Each job runs
// `mixtape exec PLAN --node ...` under srun. Every name and path from the recipe reaches
// the shell single-quoted; #SBATCH lines get sanitized names.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/PlanReport.h"
#include "mixtape/compiler/Sema.h"
#include "mixtape/data/ShardCatalog.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <set>

using namespace mixtape;

namespace {

/// 'text' for the shell: single quotes, each ' written as '\''.
std::string shellQuote(llvm::StringRef text) {
  std::string out = "'";
  for (char c : text)
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// A name Slurm and file systems take as is.
std::string safeName(llvm::StringRef text) {
  std::string out;
  for (char c : text)
    out += llvm::isAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '_';
  return out.substr(0, 100);
}

struct Job {
  std::string name;
  std::vector<std::string> nodes; ///< run in this order
  std::set<size_t> after;         ///< jobs this one waits for
};

std::vector<Job> groupJobs(const Plan &plan) {
  std::vector<Job> jobs;
  std::vector<int> jobOf(plan.nodes.size(), -1);
  std::vector<size_t> small;
  // Every job a node's output waits on, transitively: a small node can join job J when
  // all its inputs are produced by J or by jobs J already waits for.
  std::vector<std::set<size_t>> closure;
  auto addJob = [&](std::string name) {
    jobs.push_back(Job{std::move(name), {}, {}});
    closure.emplace_back();
    return jobs.size() - 1;
  };
  for (size_t i = 0; i < plan.nodes.size(); ++i) {
    const PlanNode &n = plan.nodes[i];
    if (n.kind == NodeKind::Init) {
      if (jobs.empty())
        addJob(plan.recipe + ".init");
      jobOf[i] = 0;
      jobs[0].nodes.push_back(n.name);
      continue;
    }
    if (n.kind == NodeKind::Train) {
      size_t j = addJob(plan.recipe + "." + n.name);
      jobs[j].nodes.push_back(n.name);
      for (size_t in : n.inputs)
        if (jobOf[in] >= 0 && static_cast<size_t>(jobOf[in]) != j) {
          jobs[j].after.insert(jobOf[in]);
          closure[j].insert(jobOf[in]);
          closure[j].insert(closure[jobOf[in]].begin(), closure[jobOf[in]].end());
        }
      jobOf[i] = static_cast<int>(j);
      continue;
    }
    // An eval or merge: join the job of its last-produced input if the others are done by then.
    int target = -1;
    for (size_t in : n.inputs)
      target = std::max(target, jobOf[in]);
    bool fits = target >= 0 && llvm::all_of(n.inputs, [&](size_t in) {
      return jobOf[in] == target || closure[target].count(static_cast<size_t>(jobOf[in]));
    });
    if (fits) {
      jobs[target].nodes.push_back(n.name);
      jobOf[i] = target;
    } else {
      small.push_back(i);
    }
  }
  if (!small.empty()) {
    size_t j = addJob(plan.recipe + ".finish");
    for (size_t i : small) {
      jobs[j].nodes.push_back(plan.nodes[i].name);
      for (size_t in : plan.nodes[i].inputs)
        if (jobOf[in] >= 0 && static_cast<size_t>(jobOf[in]) != j)
          jobs[j].after.insert(jobOf[in]);
      jobOf[i] = static_cast<int>(j);
    }
  }
  return jobs;
}

struct SlurmOptions {
  std::string partition, account, time;
  unsigned nodes = 1, gpusPerNode = 0;
};

std::string script(const Job &job, const SlurmOptions &o, llvm::StringRef mixtape, llvm::StringRef planPath,
                   llvm::StringRef runDir, llvm::StringRef logDir) {
  std::string s = "#!/bin/bash\n";
  s += "#SBATCH --job-name=" + safeName(job.name) + "\n";
  s += llvm::formatv("#SBATCH --nodes={0}\n", o.nodes).str();
  if (o.gpusPerNode)
    s += llvm::formatv("#SBATCH --gpus-per-node={0}\n#SBATCH --ntasks-per-node={0}\n", o.gpusPerNode).str();
  if (!o.partition.empty())
    s += "#SBATCH --partition=" + safeName(o.partition) + "\n";
  if (!o.account.empty())
    s += "#SBATCH --account=" + safeName(o.account) + "\n";
  if (!o.time.empty())
    s += "#SBATCH --time=" + safeName(o.time) + "\n";
  s += "#SBATCH --output=" + safeName(job.name) + "-%j.out\n";
  s += "set -euo pipefail\ncd " + shellQuote(logDir) + "\n";
  s += "srun " + shellQuote(mixtape) + " exec " + shellQuote(planPath) + " --run-dir " + shellQuote(runDir);
  for (const std::string &n : job.nodes)
    s += " --node " + shellQuote(n);
  return s + "\n";
}

void printSubmitHelp(llvm::raw_ostream &os) {
  os << "usage: mixtape submit RECIPE --slurm [--partition P] [--nodes N] [--gpus-per-node G]\n"
        "                        [--account A] [--time T] [--run-dir DIR] [--dry-run [--out DIR]]\n"
        "  writes DIR/plan.json and one sbatch script per job (DIR/slurm/, or --out), each job\n"
        "  depending on its inputs' jobs (--dependency=afterok:...), and submits them with sbatch;\n"
        "  --dry-run only writes the scripts and a submit.sh that would submit them\n";
}

} // namespace

int mixtape::cli::submitMain(llvm::ArrayRef<llvm::StringRef> args) {
  SlurmOptions slurm;
  std::string recipePath, runDir, outDir;
  bool dryRun = false, useSlurm = false;
  for (size_t i = 0; i < args.size(); ++i) {
    llvm::StringRef a = args[i];
    auto value = [&](std::string &into) {
      if (i + 1 >= args.size())
        return false;
      into = args[++i].str();
      return true;
    };
    std::string number;
    bool ok = true;
    if (a == "--help" || a == "-h") {
      printSubmitHelp(llvm::outs());
      return Success;
    } else if (a == "--slurm") {
      useSlurm = true;
    } else if (a == "--dry-run") {
      dryRun = true;
    } else if (a == "--partition") {
      ok = value(slurm.partition);
    } else if (a == "--account") {
      ok = value(slurm.account);
    } else if (a == "--time") {
      ok = value(slurm.time);
    } else if (a == "--run-dir") {
      ok = value(runDir);
    } else if (a == "--out") {
      ok = value(outDir);
    } else if (a == "--nodes" || a == "--gpus-per-node") {
      unsigned n = 0;
      ok = value(number) && !llvm::StringRef(number).getAsInteger(10, n) && (n > 0 || a == "--gpus-per-node");
      (a == "--nodes" ? slurm.nodes : slurm.gpusPerNode) = n;
    } else if (a.startswith("-") || !recipePath.empty()) {
      ok = false;
    } else {
      recipePath = a.str();
    }
    if (!ok) {
      printSubmitHelp(llvm::errs());
      return Usage;
    }
  }
  if (recipePath.empty() || !useSlurm || (!outDir.empty() && !dryRun)) {
    printSubmitHelp(llvm::errs());
    return Usage;
  }

  llvm::SourceMgr sources;
  DiagnosticEngine diags(sources);
  bool color = llvm::sys::Process::StandardErrIsDisplayed();
  std::unique_ptr<CheckedRecipe> recipe = loadRecipe(recipePath, diags);
  if (!recipe) {
    diags.print(llvm::errs(), color);
    return Failure;
  }
  if (runDir.empty())
    runDir = cli::defaultRunDir(recipe->name);
  llvm::SmallString<256> absRun(runDir);
  llvm::sys::fs::make_absolute(absRun);
  std::unique_ptr<data::ShardCatalog> catalog = cli::runDirCatalog(absRun);
  std::optional<Plan> plan = lowerToPlan(*recipe, *catalog, CostModel(), diags);
  diags.print(llvm::errs(), color);
  if (!plan)
    return Failure;
  if (plan->provisional) {
    llvm::errs() << "mixtape submit: the plan is provisional (data or checkpoints are missing); jobs would refuse it\n";
    if (!dryRun)
      return Failure;
  }
  std::string scriptDir = outDir.empty() ? std::string(absRun) + "/slurm" : outDir;
  if (std::error_code ec = llvm::sys::fs::create_directories(scriptDir)) {
    llvm::errs() << "mixtape submit: " << scriptDir << ": " << ec.message() << "\n";
    return Failure;
  }
  llvm::SmallString<256> absScripts(scriptDir);
  llvm::sys::fs::make_absolute(absScripts);
  std::string planPath = std::string(absRun) + "/plan.json";
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(planPath, ec);
    if (ec) {
      llvm::errs() << "mixtape submit: " << planPath << ": " << ec.message() << "\n";
      return Failure;
    }
    out << llvm::formatv("{0:2}\n", plan->toJSON());
  }
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, reinterpret_cast<void *>(&cli::submitMain));
  std::vector<Job> jobs = groupJobs(*plan);

  // Scripts, and the commands that submit them in order with their dependencies.
  std::string submit = "#!/bin/bash\n# Submits the jobs of " + safeName(plan->recipe) + " in dependency order.\n"
                       "set -euo pipefail\ncd " + shellQuote(absScripts) + "\n";
  std::vector<std::string> paths;
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::string path = llvm::formatv("{0}/{1:2}-{2}.sbatch", absScripts, j, safeName(jobs[j].name)).str();
    std::replace(path.begin() + absScripts.size(), path.end(), ' ', '0');
    std::error_code ec;
    llvm::raw_fd_ostream out(path, ec);
    if (ec) {
      llvm::errs() << "mixtape submit: " << path << ": " << ec.message() << "\n";
      return Failure;
    }
    out << script(jobs[j], slurm, self, planPath, std::string(absRun), std::string(absScripts));
    paths.push_back(path);
    std::vector<std::string> deps;
    for (size_t d : jobs[j].after)
      deps.push_back(llvm::formatv("${job{0}}", d).str());
    submit += llvm::formatv("job{0}=$(sbatch --parsable{1} {2})\n", j,
                            deps.empty() ? "" : " --dependency=afterok:" + llvm::join(deps, ":"), shellQuote(path))
                  .str();
  }
  std::string submitPath = std::string(absScripts) + "/submit.sh";
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(submitPath, ec);
    out << submit;
  }
  llvm::outs() << llvm::formatv("mixtape submit: {0} nodes in {1} jobs; scripts in {2}\n", plan->nodes.size(),
                                jobs.size(), absScripts);
  if (dryRun)
    return Success;

  llvm::ErrorOr<std::string> sbatch = llvm::sys::findProgramByName("sbatch");
  if (!sbatch) {
    llvm::errs() << "mixtape submit: sbatch not found on PATH (is this a Slurm login node?); the scripts are in "
                 << absScripts << "\n";
    return Failure;
  }
  std::vector<std::string> ids;
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::vector<std::string> argv{*sbatch, "--parsable"};
    std::vector<std::string> deps;
    for (size_t d : jobs[j].after)
      deps.push_back(ids[d]);
    if (!deps.empty())
      argv.push_back("--dependency=afterok:" + llvm::join(deps, ":"));
    argv.push_back(paths[j]);
    llvm::SmallString<128> outFile;
    llvm::sys::fs::createTemporaryFile("mixtape-sbatch", "out", outFile);
    std::vector<llvm::StringRef> argRefs(argv.begin(), argv.end());
    llvm::Optional<llvm::StringRef> redirects[] = {llvm::None, llvm::StringRef(outFile), llvm::None};
    std::string message;
    int rc = llvm::sys::ExecuteAndWait(*sbatch, argRefs, llvm::None, redirects, 0, 0, &message);
    auto text = llvm::MemoryBuffer::getFile(outFile);
    llvm::sys::fs::remove(outFile);
    std::string id = text ? llvm::StringRef((*text)->getBuffer()).trim().split(';').first.str() : "";
    if (rc != 0 || id.empty()) {
      llvm::errs() << "mixtape submit: sbatch failed for " << paths[j] << (message.empty() ? "" : ": " + message)
                   << "\n";
      return Failure;
    }
    ids.push_back(id);
    llvm::outs() << "  job " << id << ": " << jobs[j].name << " (" << jobs[j].nodes.size() << " nodes)\n";
  }
  return Success;
}
