//===- SubmitCommand.cpp - `mixtape submit --slurm` -----------------------===//
//
// Compile a recipe's plan and submit it as Slurm jobs: one job per train node, each
// depending (afterok) on the jobs of its inputs; the init nodes in one first job; an eval
// or merge joins the job that produces its last input when it can, and the rest go to one
// closing job, so a sweep does not become a hundred tiny jobs. Each job runs
// `mixtape exec PLAN --node ...` under srun, in the background of its batch shell, which
// Slurm signals (USR1) before the time limit: the shell passes the signal on, waits for the
// checkpoint and requeues the job. Every name and path from the recipe reaches the shell
// single-quoted; #SBATCH lines get sanitized names and the options' values verbatim.
// `--status RUN_DIR` reads back the job ids recorded at submission and asks squeue and sacct.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "mixtape/compiler/Lower.h"
#include "mixtape/plan/PlanJSON.h"
#include "mixtape/rundir/RunDir.h"
#include "mixtape/support/Error.h"
#include "mixtape/support/Files.h"
#include "mixtape/support/JSON.h"
#include "mixtape/support/Options.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
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
  bool Trains = false, Evaluates = false; ///< holds a train node; an eval node
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
  auto join = [&](size_t j, size_t node) {
    const plan::Node &n = plan.Nodes[node];
    jobs[j].Nodes.push_back(n.Name);
    jobs[j].Trains |= n.Kind == plan::NodeKind::Train;
    jobs[j].Evaluates |= n.Kind == plan::NodeKind::Eval;
    jobOf[node] = static_cast<int>(j);
  };
  for (size_t i = 0; i < plan.Nodes.size(); ++i) {
    const plan::Node &n = plan.Nodes[i];
    if (n.Kind == plan::NodeKind::Init) {
      if (jobs.empty())
        addJob(plan.Recipe + ".init");
      join(0, i);
      continue;
    }
    if (n.Kind == plan::NodeKind::Train) {
      size_t j = addJob(plan.Recipe + "." + n.Name);
      join(j, i);
      for (const plan::NodeRef &in : n.Inputs)
        if (int from = jobOf[in.Index]; from >= 0 && static_cast<size_t>(from) != j) {
          jobs[j].After.insert(from);
          closure[j].insert(from);
          closure[j].insert(closure[from].begin(), closure[from].end());
        }
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
      join(static_cast<size_t>(target), i);
    } else {
      small.push_back(i);
    }
  }
  if (!small.empty()) {
    size_t j = addJob(plan.Recipe + ".finish");
    for (size_t i : small) {
      for (const plan::NodeRef &in : plan.Nodes[i].Inputs)
        if (jobOf[in.Index] >= 0 && static_cast<size_t>(jobOf[in.Index]) != j)
          jobs[j].After.insert(jobOf[in.Index]);
      join(j, i);
    }
  }
  return jobs;
}

struct SlurmOptions {
  std::string Partition, Account, Time;
  unsigned Nodes = 1, GpusPerNode = 0;
  std::vector<std::string> SbatchArgs; ///< --sbatch-arg: more #SBATCH lines, verbatim
};

/// sbatch reads #SBATCH lines itself, not through a shell: a value goes there verbatim
/// ("24:00:00", "gpu,debug"), so it must hold nothing that reader splits at or strips
/// (spaces, quotes, backslashes, '#') and no line break.
bool fitsSbatchLine(llvm::StringRef value) {
  return llvm::none_of(value, [](unsigned char c) {
    return c <= ' ' || c == 0x7f || llvm::StringRef("\"'\\#").contains(c);
  });
}

/// What a job asks for: a train job the training nodes and GPUs (a task per GPU); a job of
/// evals without training one GPU (none when training has none); a job of init and merge
/// nodes, which compute on the CPU, one task and no GPU.
std::string resources(const Job &job, const SlurmOptions &o) {
  if (job.Trains)
    return llvm::formatv("#SBATCH --nodes={0}\n", o.Nodes).str() +
           (o.GpusPerNode ? llvm::formatv("#SBATCH --gpus-per-node={0}\n#SBATCH --ntasks-per-node={0}\n",
                                          o.GpusPerNode)
                                .str()
                          : "");
  return std::string("#SBATCH --nodes=1\n#SBATCH --ntasks=1\n") +
         (job.Evaluates && o.GpusPerNode ? "#SBATCH --gpus=1\n" : "");
}

// Slurm's --signal=B:USR1@120 signals the batch shell alone, up to 60 s before the 120 s it
// asks for: srun runs in the background so that the shell's trap runs at once, passes USR1 to
// srun (which passes it to every task: mixtape finishes its step, writes a checkpoint and exits
// 138), waits for it, and requeues the job, which reruns the nodes not done from their
// checkpoints. `--requeue` alone requeues after a node failure or a preemption, not at a time
// limit. A TERM (scancel, a preemption) is passed on without a requeue: Slurm decides that.
const char kTraps[] = R"(step=
stopping=
trap 'stopping=USR1; kill -USR1 "$step" 2>/dev/null' USR1
trap 'stopping=TERM; kill -TERM "$step" 2>/dev/null' TERM
)";
const char kWaitAndRequeue[] = R"(step=$!
# A signal that came before srun started.
[ -z "$stopping" ] || kill -"$stopping" "$step"
wait "$step"
status=$?
# A trapped signal ends `wait` early; wait until the step has written its checkpoint.
while kill -0 "$step" 2>/dev/null; do
  wait "$step"
  status=$?
done
if [ "$stopping" = USR1 ] && [ "$status" -ne 0 ]; then
  echo "mixtape submit: stopped by SIGUSR1 before the time limit (exit $status); requeueing job $SLURM_JOB_ID"
  scontrol requeue "$SLURM_JOB_ID" && exit 0
fi
exit "$status"
)";

std::string script(const Job &job, const SlurmOptions &o, llvm::StringRef mixtape, llvm::StringRef planPath,
                   llvm::StringRef runDir) {
  std::string s = "#!/bin/bash\n";
  s += "#SBATCH --job-name=" + safeName(job.Name) + "\n";
  s += resources(job, o);
  if (!o.Partition.empty())
    s += "#SBATCH --partition=" + o.Partition + "\n";
  if (!o.Account.empty())
    s += "#SBATCH --account=" + o.Account + "\n";
  if (!o.Time.empty())
    s += "#SBATCH --time=" + o.Time + "\n";
  s += "#SBATCH --requeue\n#SBATCH --signal=B:USR1@120\n#SBATCH --open-mode=append\n";
  for (const std::string &arg : o.SbatchArgs)
    s += "#SBATCH " + arg + "\n";
  s += "set -uo pipefail\ncd " + shellQuote(runDir) + "\n";
  s += kTraps;
  s += "srun " + shellQuote(mixtape) + " exec " + shellQuote(planPath) + " --run-dir " + shellQuote(runDir);
  for (const std::string &n : job.Nodes)
    s += " --node " + shellQuote(n);
  return s + " &\n" + kWaitAndRequeue;
}

/// Where a job's output goes: the run directory's slurm/ (one file per attempt's job id;
/// a requeued attempt appends), whatever folder holds the scripts. On sbatch's command
/// line, where the shell quotes it, not in an #SBATCH line that could not hold every path.
std::string outputArg(llvm::StringRef runDir, const Job &job) {
  return "--output=" + joinPath(joinPath(runDir, "slurm"), safeName(job.Name) + "-%j.out");
}

/// RUN_DIR/slurm/jobs.json: the jobs of the last submission, for `--status`.
struct SubmittedJob {
  std::string Id, Name;
  std::vector<std::string> Nodes;
};

std::string jobsPath(llvm::StringRef runDir) { return joinPath(joinPath(runDir, "slurm"), "jobs.json"); }

llvm::Error writeJobs(llvm::StringRef runDir, llvm::ArrayRef<SubmittedJob> jobs) {
  std::string text;
  llvm::raw_string_ostream os(text);
  llvm::json::OStream out(os, 2);
  out.object([&] {
    out.attribute("format", "mixtape-slurm-jobs");
    out.attribute("version", 1);
    out.attributeArray("jobs", [&] {
      for (const SubmittedJob &job : jobs)
        out.object([&] {
          out.attribute("id", job.Id);
          out.attribute("name", job.Name);
          out.attributeArray("nodes", [&] {
            for (const std::string &n : job.Nodes)
              out.value(n);
          });
        });
    });
  });
  return writeFileDurably(jobsPath(runDir), os.str() + "\n");
}

llvm::Expected<std::vector<SubmittedJob>> readJobs(llvm::StringRef runDir) {
  const std::string path = jobsPath(runDir);
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return fileError(path, buffer.getError().message() + " (jobs are recorded when `mixtape submit --slurm` submits)");
  llvm::Expected<llvm::json::Value> value = parseJSON((*buffer)->getBuffer(), path);
  if (!value)
    return value.takeError();
  const llvm::json::Object *root = value->getAsObject();
  const llvm::json::Array *list = root ? root->getArray("jobs") : nullptr;
  if (!list || root->getString("format") != llvm::StringRef("mixtape-slurm-jobs"))
    return fileError(path, "not a mixtape-slurm-jobs file");
  std::vector<SubmittedJob> jobs;
  for (const llvm::json::Value &v : *list) {
    const llvm::json::Object *job = v.getAsObject();
    const llvm::json::Array *nodes = job ? job->getArray("nodes") : nullptr;
    if (!job || !job->getString("id") || !job->getString("name") || !nodes)
      return fileError(path, "a job needs \"id\", \"name\" and \"nodes\"");
    SubmittedJob out{job->getString("id")->str(), job->getString("name")->str(), {}};
    for (const llvm::json::Value &n : *nodes)
      if (llvm::Optional<llvm::StringRef> name = n.getAsString())
        out.Nodes.push_back(name->str());
    jobs.push_back(std::move(out));
  }
  return jobs;
}

/// `--status RUN_DIR`: each recorded job's state from squeue (queued, running or just ended),
/// else from sacct (finished; Slurm keeps it only with accounting), and how many of its nodes
/// are done.
int printStatus(llvm::StringRef runDir) {
  llvm::Expected<std::vector<SubmittedJob>> jobs = readJobs(runDir);
  if (!jobs) {
    llvm::errs() << "mixtape submit: " << llvm::toString(jobs.takeError()) << "\n";
    return cli::Failure;
  }
  std::vector<std::string> ids;
  for (const SubmittedJob &job : *jobs)
    ids.push_back(job.Id);
  const std::string idList = llvm::join(ids, ",");
  // "ID|STATE|ELAPSED|REASON" (squeue) or "...|EXIT CODE" (sacct) per line, squeue's first.
  std::map<std::string, std::vector<std::string>> state;
  auto read = [&](llvm::StringRef tool, std::vector<std::string> args) {
    llvm::ErrorOr<std::string> path = llvm::sys::findProgramByName(tool);
    if (!path)
      return false;
    cli::Captured c = cli::runCapturing(*path, args);
    if (c.Status != 0)
      return false;
    llvm::SmallVector<llvm::StringRef, 0> lines;
    llvm::StringRef(c.Out).split(lines, '\n', -1, false);
    for (llvm::StringRef line : lines) {
      llvm::SmallVector<llvm::StringRef, 4> f;
      line.trim().split(f, '|');
      if (f.size() >= 3 && !state.count(f[0].str()))
        state[f[0].str()] = {f[1].str(), f[2].str(), f.size() > 3 ? f[3].str() : ""};
    }
    return true;
  };
  // `-t all`: also the jobs that ended within slurmctld's MinJobAge (5 minutes by default).
  const bool queue = read("squeue", {"-h", "-t", "all", "-j", idList, "-o", "%i|%T|%M|%r"});
  const bool accounting = read("sacct", {"-n", "-X", "-P", "-j", idList, "-o", "JobID,State,Elapsed,ExitCode"});
  llvm::Expected<plan::Plan> plan = plan::readPlanFile(joinPath(runDir, "plan.json"));
  if (!plan) {
    llvm::errs() << "mixtape submit: " << llvm::toString(plan.takeError()) << "\n";
    return cli::Failure;
  }
  size_t width = 3;
  for (const SubmittedJob &job : *jobs)
    width = std::max(width, job.Name.size());
  llvm::outs() << llvm::formatv("{0,-10}  {1}  {2,-12}  {3,10}  {4}\n", "job", llvm::left_justify("name", width),
                                "state", "elapsed", "nodes done");
  for (const SubmittedJob &job : *jobs) {
    size_t done = llvm::count_if(job.Nodes, [&](const std::string &name) {
      std::optional<size_t> node = plan::findNode(*plan, name);
      return node && rundir::isDone(runDir, plan->Nodes[*node]);
    });
    auto it = state.find(job.Id);
    std::vector<std::string> s = it == state.end() ? std::vector<std::string>{"unknown", "-", ""} : it->second;
    llvm::outs() << llvm::formatv("{0,-10}  {1}  {2,-12}  {3,10}  {4}/{5}{6}\n", job.Id,
                                  llvm::left_justify(job.Name, width), s[0], s[1], done, job.Nodes.size(),
                                  s[2].empty() || s[2] == "None" || s[2] == "0:0" ? "" : "  (" + s[2] + ")");
  }
  if (!queue && !accounting)
    llvm::errs() << "mixtape submit: neither squeue nor sacct answered: job states unknown\n";
  else if (!accounting)
    llvm::errs() << "mixtape submit: sacct did not answer (no accounting storage?): finished jobs show as unknown\n";
  return cli::Success;
}

} // namespace

int mixtape::cli::submitMain(llvm::ArrayRef<llvm::StringRef> args) {
  SlurmOptions slurm;
  std::string runDir, outDir;
  std::vector<std::string> recipe;
  bool dryRun = false, useSlurm = false, status = false;
  OptionParser options("mixtape submit", "RECIPE --slurm | --status RUN_DIR",
                       "Writes DIR/plan.json and one sbatch script per job (DIR/slurm/, or --out), each job\n"
                       "depending on its inputs' jobs (--dependency=afterok:...), and submits them with sbatch;\n"
                       "jobs log to DIR/slurm/<job>-<id>.out, and requeue themselves after a checkpoint when\n"
                       "their time runs out. --status RUN_DIR: the submitted jobs' states.");
  options.flag("--slurm", useSlurm, "submit to Slurm (the one scheduler so far)")
      .value("--partition", "P", slurm.Partition, "#SBATCH --partition")
      .integer("--nodes", "N", slurm.Nodes, 1, 1u << 16, "#SBATCH --nodes of train jobs (default 1)")
      .integer("--gpus-per-node", "G", slurm.GpusPerNode, 0, 1024,
               "#SBATCH --gpus-per-node and --ntasks-per-node of train jobs (default 0: none); jobs of evals "
               "alone ask for one GPU, jobs of init and merge nodes for none")
      .value("--account", "A", slurm.Account, "#SBATCH --account")
      .value("--time", "T", slurm.Time, "#SBATCH --time")
      .list("--sbatch-arg", "ARG", slurm.SbatchArgs,
            "one more #SBATCH line in every script, verbatim (--sbatch-arg=--qos=high; repeatable)")
      .value("--run-dir", "DIR", runDir, "the run directory (default runs/<recipe name>)")
      .flag("--dry-run", dryRun, "only write the scripts and a submit.sh that would submit them")
      .value("--out", "DIR", outDir, "with --dry-run: where to write the scripts (default DIR/slurm)")
      .flag("--status", status, "the jobs submitted for the run directory given instead of RECIPE: squeue and sacct")
      .positional("RECIPE", recipe, 1, 1)
      .epilog("exit status: 0 submitted (or written), 1 errors, 2 usage");
  if (std::optional<int> exit = options.parse(args))
    return *exit;
  if (status)
    return printStatus(recipe[0]);
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
  for (const std::string &arg : slurm.SbatchArgs)
    if (!llvm::StringRef(arg).startswith("-") || !fitsSbatchLine(arg))
      return options.usageError("--sbatch-arg '" + arg +
                                "': an #SBATCH line takes one option (starting with '-') without spaces, quotes, "
                                "backslashes, '#' or control characters");

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
  // The scripts' folder, and RUN_DIR/slurm where the jobs log (the same by default).
  std::string scriptDir = outDir.empty() ? joinPath(absRun, "slurm") : outDir;
  for (const std::string &dir : {scriptDir, joinPath(absRun, "slurm")})
    if (std::error_code ec = llvm::sys::fs::create_directories(dir)) {
      llvm::errs() << "mixtape submit: " << dir << ": " << ec.message() << "\n";
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
    if (llvm::Error e = writeFileDurably(path, script(jobs[j], slurm, self, planPath, absRun))) {
      llvm::errs() << "mixtape submit: " << llvm::toString(std::move(e)) << "\n";
      return Failure;
    }
    paths.push_back(path);
    std::vector<std::string> deps;
    for (size_t d : jobs[j].After)
      deps.push_back(llvm::formatv("${job{0}}", d).str());
    submit += llvm::formatv("job{0}=$(sbatch --parsable {1}{2} {3})\n", j, shellQuote(outputArg(absRun, jobs[j])),
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
  std::vector<SubmittedJob> submitted;
  for (size_t j = 0; j < jobs.size(); ++j) {
    std::vector<std::string> argv{"--parsable", outputArg(absRun, jobs[j])};
    std::vector<std::string> deps;
    for (size_t d : jobs[j].After)
      deps.push_back(submitted[d].Id);
    if (!deps.empty())
      argv.push_back("--dependency=afterok:" + llvm::join(deps, ":"));
    argv.push_back(paths[j]);
    cli::Captured c = cli::runCapturing(*sbatch, argv);
    std::string id = llvm::StringRef(c.Out).trim().split(';').first.str();
    if (c.Status != 0 || id.empty()) {
      llvm::errs() << "mixtape submit: sbatch failed for " << paths[j] << (c.Message.empty() ? "" : ": " + c.Message)
                   << "\n";
      if (llvm::Error e = writeJobs(absRun, submitted))
        llvm::errs() << "mixtape submit: " << llvm::toString(std::move(e)) << "\n";
      return Failure;
    }
    submitted.push_back({id, jobs[j].Name, jobs[j].Nodes});
    llvm::outs() << "  job " << id << ": " << jobs[j].Name << " (" << jobs[j].Nodes.size() << " nodes)\n";
  }
  if (llvm::Error e = writeJobs(absRun, submitted)) {
    llvm::errs() << "mixtape submit: " << llvm::toString(std::move(e)) << "\n";
    return Failure;
  }
  llvm::outs() << "  `mixtape submit --status " << absRun << "` shows their states\n";
  return Success;
}
