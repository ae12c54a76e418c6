//===- LocalLauncher.cpp - fork, exec, forward, reap ----------------------===//
#include "mixtape/dist/LocalLauncher.h"

#include "mixtape/support/Error.h"
#include "mixtape/support/Signals.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <arpa/inet.h>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <optional>
#include <random>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

using namespace mixtape::dist;
using mixtape::makeError;
using Clock = std::chrono::steady_clock;

llvm::Expected<uint16_t> mixtape::dist::freeLocalPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return makeError(llvm::Twine("cannot open a socket to find a free port: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  bool ok = ::bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok)
    return makeError(llvm::Twine("cannot find a free port: ") + std::strerror(saved));
  return ntohs(addr.sin_port);
}

namespace {

struct Worker {
  int Rank = 0;
  pid_t Pid = -1;
  int Output = -1; ///< read end of the worker's stdout and stderr
  std::string Partial; ///< an unfinished last line
  bool Exited = false;
  int Status = 0;
};

std::string describe(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return llvm::formatv("was killed by signal {0} ({1})", WTERMSIG(status), ::strsignal(WTERMSIG(status))).str();
  return "stopped";
}

bool failed(int status) { return !WIFEXITED(status) || WEXITSTATUS(status) != 0; }

/// In the child, between fork and exec: only async-signal-safe calls.
[[noreturn]] void execWorker(pid_t launcher, int outputFd, char *const argv[], char *const envp[]) {
#ifdef __linux__
  ::prctl(PR_SET_PDEATHSIG, SIGKILL); // the launcher killed: no orphaned workers
  if (::getppid() != launcher) // it died before prctl took effect
    ::_exit(127);
#endif
  ::setpgid(0, 0); // a terminal's Ctrl-C reaches the launcher alone, which passes it on once
  ::dup2(outputFd, STDOUT_FILENO);
  ::dup2(outputFd, STDERR_FILENO);
  ::execve(argv[0], argv, envp);
  const char message[] = "mixtape: cannot execute the worker\n";
  (void)!::write(STDERR_FILENO, message, sizeof message - 1);
  ::_exit(127);
}

void forwardLines(Worker &w, llvm::StringRef data, llvm::raw_ostream &out, bool flushPartial) {
  w.Partial += data.str();
  size_t start = 0, newline;
  while ((newline = w.Partial.find('\n', start)) != std::string::npos) {
    out << "[rank " << w.Rank << "] " << llvm::StringRef(w.Partial).slice(start, newline + 1);
    start = newline + 1;
  }
  w.Partial.erase(0, start);
  if (flushPartial && !w.Partial.empty()) {
    out << "[rank " << w.Rank << "] " << w.Partial << "\n";
    w.Partial.clear();
  }
  out.flush();
}

} // namespace

llvm::Error mixtape::dist::launchLocalWorkers(const LaunchOptions &options, llvm::raw_ostream &out) {
  if (options.Nproc < 1 || options.Command.empty())
    return makeError("--nproc needs a positive count and a worker command");
  llvm::Expected<uint16_t> port = freeLocalPort();
  if (!port)
    return port.takeError();

  // Built before forking: the child may only exec.
  std::vector<std::string> environment;
  bool threadsSet = false;
  for (char **e = environ; *e; ++e) {
    llvm::StringRef var(*e);
    llvm::StringRef name = var.split('=').first;
    if (name == "RANK" || name == "WORLD_SIZE" || name == "LOCAL_RANK" || name == "LOCAL_WORLD_SIZE" ||
        name == "MASTER_ADDR" || name == "MASTER_PORT" || name == "TORCHELASTIC_USE_AGENT_STORE" ||
        name == "TORCHELASTIC_RESTART_COUNT" || name == "MIXTAPE_RUN_ID")
      continue;
    threadsSet |= name == "MIXTAPE_NUM_THREADS";
    environment.push_back(var.str());
  }
  environment.push_back("WORLD_SIZE=" + std::to_string(options.Nproc));
  environment.push_back("LOCAL_WORLD_SIZE=" + std::to_string(options.Nproc));
  environment.push_back("MASTER_ADDR=127.0.0.1");
  environment.push_back("MASTER_PORT=" + std::to_string(*port));
  // Keys of its own in the store, should another launch meet this one at the port.
  environment.push_back(llvm::formatv("MIXTAPE_RUN_ID={0:x-}", std::random_device()()).str());
  if (!threadsSet) // N workers share the cores instead of each taking them all
    environment.push_back("MIXTAPE_NUM_THREADS=" +
                          std::to_string(std::max(1u, std::thread::hardware_concurrency() / unsigned(options.Nproc))));
  std::vector<char *> argv;
  for (const std::string &a : options.Command)
    argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);

  std::vector<Worker> workers(static_cast<size_t>(options.Nproc));
  // A rank that could not start: the ones started go, reaped, their pipes closed.
  auto stopStarted = [&] {
    for (Worker &w : workers) {
      if (w.Pid > 0) {
        ::kill(w.Pid, SIGKILL);
        ::waitpid(w.Pid, &w.Status, 0);
      }
      if (w.Output >= 0)
        ::close(w.Output);
    }
  };
  const pid_t launcher = ::getpid();
  catchStopSignals();
  bool passedOn = false;
  for (int r = 0; r < options.Nproc; ++r) {
    std::vector<std::string> env = environment;
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("LOCAL_RANK=" + std::to_string(r));
    std::vector<char *> envp;
    for (std::string &e : env)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      int saved = errno;
      stopStarted();
      return makeError(llvm::Twine("cannot create a pipe for rank ") + llvm::Twine(r) + ": " + std::strerror(saved));
    }
    pid_t pid = ::fork();
    if (pid == 0)
      execWorker(launcher, fds[1], argv.data(), envp.data());
    int saved = errno;
    ::close(fds[1]);
    if (pid < 0) {
      ::close(fds[0]);
      stopStarted();
      return makeError(llvm::Twine("cannot start rank ") + llvm::Twine(r) + ": " + std::strerror(saved));
    }
    workers[size_t(r)] = Worker{r, pid, fds[0], {}, false, 0};
  }

  // Failures in the order they were seen; within one look, deaths by a signal first (a rank
  // killed makes its peers fail a moment later).
  std::vector<std::pair<std::pair<int, int>, Worker *>> failures;
  int look = 0;
  std::optional<Clock::time_point> deadline, drained;
  std::vector<int> killed;
  auto running = [&] { return llvm::any_of(workers, [](const Worker &w) { return !w.Exited || w.Output >= 0; }); };
  while (running()) {
    std::vector<pollfd> fds;
    std::vector<Worker *> owners;
    for (Worker &w : workers)
      if (w.Output >= 0) {
        fds.push_back({w.Output, POLLIN, 0});
        owners.push_back(&w);
      }
    if (!fds.empty())
      ::poll(fds.data(), fds.size(), 100);
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
        continue;
      char buffer[4096];
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        forwardLines(*owners[i], llvm::StringRef(buffer, size_t(n)), out, false);
      } else if (n == 0 || errno != EINTR) {
        forwardLines(*owners[i], "", out, true);
        ::close(owners[i]->Output);
        owners[i]->Output = -1;
      }
    }
    ++look;
    // Asked to stop: every worker finishes its step, checkpoints and exits 128 + signal.
    if (int signal = stopSignal(); signal && !passedOn) {
      passedOn = true;
      for (Worker &w : workers)
        if (!w.Exited)
          ::kill(w.Pid, signal);
    }
    for (Worker &w : workers) {
      if (w.Exited || ::waitpid(w.Pid, &w.Status, WNOHANG) != w.Pid)
        continue;
      w.Exited = true;
      if (failed(w.Status) && !llvm::is_contained(killed, w.Rank))
        failures.push_back({{look, WIFSIGNALED(w.Status) ? 0 : 1}, &w});
    }
    if (!failures.empty() && !deadline)
      deadline = Clock::now() + options.Grace;
    if (deadline && Clock::now() > *deadline)
      for (Worker &w : workers)
        if (!w.Exited && !llvm::is_contained(killed, w.Rank) && ::kill(w.Pid, SIGKILL) == 0)
          killed.push_back(w.Rank);
    // Every worker gone, but a pipe held open by a grandchild: what it wrote within a few
    // seconds is forwarded, then the launcher lets go.
    if (!drained && llvm::all_of(workers, [](const Worker &w) { return w.Exited; }))
      drained = Clock::now() + std::chrono::seconds(3);
    if (drained && Clock::now() > *drained)
      for (Worker &w : workers)
        if (w.Output >= 0) {
          forwardLines(w, "", out, true);
          ::close(w.Output);
          w.Output = -1;
        }
  }
  if (failures.empty())
    return llvm::Error::success();
  llvm::stable_sort(failures, [](const auto &a, const auto &b) { return a.first < b.first; });
  std::string message;
  for (const auto &[order, w] : failures)
    message += llvm::formatv("rank {0} of {1} {2}; ", w->Rank, options.Nproc, describe(w->Status)).str();
  message += "every rank stopped";
  if (!killed.empty()) {
    llvm::sort(killed);
    message += llvm::formatv(" (rank {0} killed after {1} s)",
                             llvm::join(llvm::map_range(killed, [](int r) { return std::to_string(r); }), ", "),
                             std::chrono::duration_cast<std::chrono::seconds>(options.Grace).count())
                   .str();
  }
  return makeError(message);
}
