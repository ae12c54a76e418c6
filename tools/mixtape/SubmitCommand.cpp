//===- SubmitCommand.cpp - `mixtape submit --slurm` -----------------------===//
//
// Compile a recipe's plan and submit it as Slurm jobs: one job per train node, each
// depending (afterok) on the jobs of its inputs; the init nodes in one first job; an eval
// or merge joins the job that produces its last input when it can, and the rest go to one
// closing job, so a sweep does not become a hundred tiny jobs. Each job runs
// `mixtape exec PLAN --node ...` under srun. Every name and path from the recipe reaches
// the shell single-quoted; #SBATCH lines get sanitized names and the options' values verbatim.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Lower.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
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

/// A name Slurm and file systems take as is: job names, and the script and log files named
/// after them.
std::string safeName(llvm::StringRef text) {
  std::string out;
  for (char c : text)
    out += llvm::isAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '_';
  return out.substr(0, 100);
}

struct Job {
  std::string Name;
  std::vector<std::string> Nodes; ///< run in this order
  std::set<size_t> After;         ///< jobs this one waits for
};

std::vector<Job> groupJobs(const plan::Plan &plan) {
  std::vector<Job> jobs;
  std::vector<int> jobOf(plan.Nodes.size(), -1);
  std::vector<size_t> small;
  // Every job a node's output waits on, transitively: a small node can join job J when
  // all its inputs are produced by J or by jobs J already waits for.
  std::vector<std::set<size_t>> closure;
  auto addJob = [&](std::string name) {
    jobs.push_back(Job{std::move(name), {}, {}});
    closure.emplace_back();
    return jobs.size() - 1;
  };
  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    const plan::Node &n = plan.Nodes[i];
    if (n.Kind == plan::NodeKind::Init) {
      if (jobs.empty())
        addJob(plan.Recipe + ".init");
      jobOf[i] = 0;
      jobs[0].Nodes.push_back(n.Name);
      continue;
    }
    if (n.Kind == plan::NodeKind::Train) {
      size_t j = addJob(plan.Recipe + "." + n.Name);
      jobs[j].Nodes.push_back(n.Name);
      for (const plan::NodeRef &in : n.Inputs)
        if (int from = jobOf[in.Index]; from >= 0 && static_cast<size_t>(from) != j) {
          jobs[j].After.insert(from);
          closure[j].insert(from);
          closure[j].insert(closure[from].begin(), closure[from].end());
        }
      jobOf[i] = static_cast<int>(j);
      continue;
    }
    // An eval or merge: join the job of its last-produced input if the others are done by then.
    int target = -1;
    for (const plan::NodeRef &in : n.Inputs)
      target = std::max(target, jobOf[in.Index]);
    bool fits = target >= 0 && llvm::all_of(n.Inputs, [&](const plan::NodeRef &in) {
      return jobOf[in.Index] == target || closure[target].count(static_cast<size_t>(jobOf[in.Index]));
    });
    if (fits) {
      jobs[target].Nodes.push_back(n.Name);
      jobOf[i] = target;
    } else {
      small.push_back(i);
    }
  }
  if (!small.empty()) {
    size_t j = addJob(plan.Recipe + ".finish");
    for (size_t i : small) {
      jobs[j].Nodes.push_back(plan.Nodes[i].Name);
      for (const plan::NodeRef &in : plan.Nodes[i].Inputs)
        if (jobOf[in.Index] >= 0 && static_cast<size_t>(jobOf[in.Index]) != j)
          jobs[j].After.insert(jobOf[in.Index]);
      jobOf[i] = static_cast<int>(j);
    }
  }
  return jobs;
}

struct SlurmOptions {
  std::string Partition, Account, Time;
  unsigned Nodes = 1, GpusPerNode = 0;
};

/// sbatch reads #SBATCH lines itself, not through a shell: a value goes there verbatim
/// ("24:00:00", "gpu,debug"), so it must hold nothing that reader splits at or strips
/// (spaces, quotes, backslashes, '#') and no line break.
bool fitsSbatchLine(llvm::StringRef value) {
  return llvm::none_of(value, [](unsigned char c) {
    return c <= ' ' || c == 0x7f || llvm::StringRef("\"'\\#").contains(c);
  });
}

std::string script(const Job &job, const SlurmOptions &o, llvm::StringRef mixtape, llvm::StringRef planPath,
                   llvm::StringRef runDir, llvm::StringRef logDir) {
  std::string s = "#!/bin/bash\n";
  s += "#SBATCH --job-name=" + safeName(job.Name) + "\n";
  s += llvm::formatv("#SBATCH --nodes={0}\n", o.Nodes).str();
  if (o.GpusPerNode)
    s += llvm::formatv("#SBATCH --gpus-per-node={0}\n#SBATCH --ntasks-per-node={0}\n", o.GpusPerNode).str();
  if (!o.Partition.empty())
    s += "#SBATCH --partition=" + o.Partition + "\n";
  if (!o.Account.empty())
    s += "#SBATCH --account=" + o.Account + "\n";
  if (!o.Time.empty())
    s += "#SBATCH --time=" + o.Time + "\n";
  s += "#SBATCH --output=" + safeName(job.Name) + "-%j.out\n";
  s += "set -euo pipefail\ncd " + shellQuote(logDir) + "\n";
  s += "srun " + shellQuote(mixtape) + " exec " + shellQuote(planPath) + " --run-dir " + shellQuote(runDir);
  for (const std::string &n : job.Nodes)
    s += " --node " + shellQuote(n);
  return s + "\n";
}

} // namespace

int mixtape::cli::submitMain(llvm::ArrayRef<llvm::StringRef> args) {
  SlurmOptions slurm;
  std::string runDir, outDir;
  std::vector<std::string> recipe;
  bool dryRun = false, useSlurm = false;
  OptionParser options("mixtape submit", "RECIPE --slurm",
                       "Writes DIR/plan.json and one sbatch script per job (DIR/slurm/, or --out), each job\n"
                       "depending on its inputs' jobs (--dependency=afterok:...), and submits them with sbatch.");
  options.flag("--slurm", useSlurm, "submit to Slurm (the one scheduler so far)")
      .value("--partition", "P", slurm.Partition, "#SBATCH --partition")
      .integer("--nodes", "N", slurm.Nodes, 1, 1u << 16, "#SBATCH --nodes (default 1)")
      .integer("--gpus-per-node", "G", slurm.GpusPerNode, 0, 1024,
               "#SBATCH --gpus-per-node and --ntasks-per-node (default 0: none)")
      .value("--account", "A", slurm.Account, "#SBATCH --account")
      .value("--time", "T", slurm.Time, "#SBATCH --time")
      .value("--run-dir", "DIR", runDir, "the run directory (default runs/<recipe name>)")
      .flag("--dry-run", dryRun, "only write the scripts and a submit.sh that would submit them")
      .value("--out", "DIR", outDir, "with --dry-run: where to write the scripts (default DIR/slurm)")
      .positional("RECIPE", recipe, 1, 1)
      .epilog("exit status: 0 submitted (or written), 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  if (!useSlurm)
    return options.usageError("say which scheduler: --slurm");
  if (!outDir.empty() && !dryRun)
    return options.usageError("--out goes with --dry-run");
  for (auto [option, value] : {std::pair{"--partition", &slurm.Partition}, std::pair{"--account", &slurm.Account},
                               std::pair{"--time", &slurm.Time}})
    if (!fitsSbatchLine(*value))
      return options.usageError(llvm::Twine(option) + " '" + *value +
                                "': an #SBATCH value cannot hold spaces, quotes, backslashes, '#' or control "
                                "characters");

  std::optional<plan::Plan> plan = compileRecipe(recipe[0], runDir, defaultCost());
  if (!plan)
    return Failure;
  llvm::SmallString<256> absRun(runDir);
  llvm::sys::fs::make_absolute(absRun);
  if (plan->Provisional) {
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
  std::string planPath = joinPath(absRun, "plan.json");
  if (!writePlan("mixtape submit", *plan, planPath))
    return Failure;
  std::string self = llvm::sys::fs::getMainExecutable(nullptr, reinterpret_cast<void *>(&cli::submitMain));
  std::vector<Job> jobs = groupJobs(*plan);

  // Scripts, and the commands that submit them in order with their dependencies.
  std::string submit = "#!/bin/bash\n# Submits the jobs of " + safeName(plan->Recipe) + " in dependency order.\n"
                       "set -euo pipefail\ncd " + shellQuote(absScripts) + "\n";
  std::vector<std::string> paths;
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::string path = llvm::formatv("{0}/{1:2}-{2}.sbatch", absScripts, j, safeName(jobs[j].Name)).str();
    std::replace(path.begin() + absScripts.size(), path.end(), ' ', '0');
    if (llvm::Error e =
            writeFileDurably(path, script(jobs[j], slurm, self, planPath, std::string(absRun), std::string(absScripts)))) {
      llvm::errs() << "mixtape submit: " << llvm::toString(std::move(e)) << "\n";
      return Failure;
    }
    paths.push_back(path);
    std::vector<std::string> deps;
    for (size_t d : jobs[j].After)
      deps.push_back(llvm::formatv("${job{0}}", d).str());
    submit += llvm::formatv("job{0}=$(sbatch --parsable{1} {2})\n", j,
                            deps.empty() ? "" : " --dependency=afterok:" + llvm::join(deps, ":"), shellQuote(path))
                  .str();
  }
  if (llvm::Error e = writeFileDurably(joinPath(absScripts, "submit.sh"), submit)) {
    llvm::errs() << "mixtape submit: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::outs() << llvm::formatv("mixtape submit: {0} nodes in {1} jobs; scripts in {2}\n", plan->Nodes.size(),
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
    for (size_t d : jobs[j].After)
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
    llvm::outs() << "  job " << id << ": " << jobs[j].Name << " (" << jobs[j].Nodes.size() << " nodes)\n";
  }
  return Success;
}
