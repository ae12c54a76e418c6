#!/usr/bin/env python3
"""The command line through the real binaries: `mixtape --help`, `help` and `--version`; every
subcommand's --help (usage line, its options, exit 0, nothing on stderr); `--opt value` and
`--opt=value` alike; usage errors (a mistyped subcommand or option, a missing argument or
value) exit 2 with a clear message; NO_COLOR and --color; and `mixtape` never linking LibTorch.
The runtime's commands (run, exec, export, merge) are checked when `mixtape-runtime` is built
beside `mixtape`. A check that cannot run here (no mixtape-runtime, no pseudo-terminal, no ldd,
or the binary does not start) makes the test exit 77, skipped, once the others have passed:
never a Passed for what was not checked; under CI, 1 (tests/skipping.py).

usage: usage_test.py MIXTAPE WORKDIR"""
import os, re, shutil, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

MIXTAPE, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
RUNTIME = os.path.join(os.path.dirname(MIXTAPE), "mixtape-runtime")
HAVE_RUNTIME = os.access(RUNTIME, os.X_OK)
ESC = "\x1b"

shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
failures = []
checks = 0


def check(ok, what):
    global checks
    checks += 1
    if not ok:
        failures.append(what)
    return ok


def run(*args, env=None, cwd=WORK):
    """`mixtape ARGS`, text output; None (a failure) when it hangs."""
    try:
        return subprocess.run([MIXTAPE, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                              env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        check(False, f"mixtape {' '.join(args)}: timed out")
        return None


def shown(r):
    return f"exit {r.returncode}\nstdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-2000:]}"


# The binary runs at all, or the test is skipped.
try:
    version = subprocess.run([MIXTAPE, "--version"], capture_output=True, text=True, timeout=60)
except (OSError, subprocess.TimeoutExpired) as e:
    skipping.skip(f"cannot run {MIXTAPE}: {e}")

# --version: "mixtape <project version> (plan format 2)", the version from CMakeLists.txt.
with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
    m = re.search(r"project\(\s*mixtape\b[^)]*\bVERSION\s+([0-9][0-9.]*)", f.read())
want = f"mixtape {m.group(1)} (plan format 2)" if m else None
check(want is not None, "no project(mixtape VERSION x.y.z) in CMakeLists.txt")
check(version.returncode == 0 and version.stdout.strip() == want and not version.stderr,
      f"--version: want {want!r}\n{shown(version)}")

# --help, -h and help: exit 0, every subcommand listed, on stdout.
COMMANDS = ["lint", "plan", "run", "exec", "submit", "export", "merge", "data", "report"]
RUNTIME_COMMANDS = {"run", "exec", "export", "merge"}
for spelling in ["--help", "-h", "help"]:
    r = run(spelling)
    if r is None:
        continue
    check(r.returncode == 0 and r.stdout.startswith("usage: mixtape") and not r.stderr,
          f"mixtape {spelling}: {shown(r)}")
    listed = set(re.findall(r"^  (\S+)  ", r.stdout, re.M))
    check(set(COMMANDS) <= listed, f"mixtape {spelling} lists {sorted(listed)}, not every one of {COMMANDS}")
    check("--version" in r.stdout, f"mixtape {spelling} does not mention --version")
# No command at all: the help, on stderr, exit 2.
r = run()
if r is not None:
    check(r.returncode == 2 and "usage: mixtape" in r.stderr and not r.stdout, f"mixtape (no arguments): {shown(r)}")

# Each command's --help: its usage line and options that the sources declare.
OPTIONS = {
    ("lint",): ["--format", "-Werror", "-Wno-", "--verify", "--color", "--no-color"],
    ("plan",): ["--out", "--dot", "--explain", "--run-dir", "--peak-tflops", "--mfu"],
    ("submit",): ["--slurm", "--partition", "--nodes", "--gpus-per-node", "--account", "--time", "--sbatch-arg",
                  "--run-dir", "--dry-run", "--out", "--status"],
    ("data", "synth"): ["--out", "--seed", "--docs", "--domains"],
    ("data", "prepare"): ["--out", "--format", "--tokenizer"],
    ("data", "manifest"): ["--tokenizer", "--eod"],
    ("data", "inspect"): ["--docs", "--chars", "--eot", "--tokenizer", "--eod"],
    ("data", "tasks", "convert"): ["--from", "--out"],
    ("report",): ["--out", "--tensorboard"],
    ("run",): ["--run-dir", "--node", "--device", "--quiet", "--nproc", "--timeout", "--shard", "--zero1", "--verify-data"],
    ("exec",): ["--run-dir", "--node", "--device", "--quiet", "--nproc", "--timeout", "--shard", "--zero1", "--verify-data"],
    ("export",): ["--hf"],
    ("merge",): ["--method", "--weights", "--normalize", "--no-normalize", "--density", "--t", "--seed", "--base", "--out"],
}
# What could not be checked here, in words.
not_checked = []
runtime_unchecked = []


def needs_runtime(command):
    if command[0] in RUNTIME_COMMANDS and not HAVE_RUNTIME:
        runtime_unchecked.append(" ".join(command))
        return True
    return False


for command, options in OPTIONS.items():
    if needs_runtime(command):
        continue
    name = "mixtape " + " ".join(command)
    # mixtape-runtime takes most of a second to load LibTorch: its commands get the long forms only.
    slow = command[0] in RUNTIME_COMMANDS
    for spelling in ["--help"] if slow else ["--help", "-h"]:
        r = run(*command, spelling)
        if r is None:
            continue
        if not check(r.returncode == 0 and not r.stderr, f"{name} {spelling}: {shown(r)}"):
            continue
        check(r.stdout.startswith(f"usage: {name} [options]"), f"{name} {spelling}: no usage line\n{shown(r)}")
        # An option's row: "  --out FILE  help" or "  -h, --help  help".
        rows = set()
        for line in r.stdout.splitlines():
            if line.startswith("  -"):
                for spelled in line.strip().split("  ")[0].split(", "):
                    rows.add(spelled.split(" ")[0].split("<")[0])
        for option in options + ["--help", "-h"]:
            check(option in rows, f"{name} {spelling} does not list {option}\n{r.stdout}")
    # --help wins over any usage error, before or after it.
    for args in [["--no-such-option", "--help"]] + ([] if slow else [["--help", "--no-such-option"]]):
        r = run(*command, *args)
        if r is not None:
            check(r.returncode == 0 and r.stdout.startswith(f"usage: {name}"), f"{name} {' '.join(args)}: {shown(r)}")

# `mixtape data`: its own table of subcommands.
for spelling in ["--help", "help"]:
    r = run("data", spelling)
    if r is not None:
        listed = set(re.findall(r"^  (\S+)  ", r.stdout, re.M))
        check(r.returncode == 0 and r.stdout.startswith("usage: mixtape data") and
              {"synth", "prepare", "manifest", "inspect", "tasks"} <= listed, f"mixtape data {spelling}: {shown(r)}")
r = run("data", "inspekt", "x")
if r is not None:
    check(r.returncode == 2 and "did you mean 'inspect'" in r.stderr, f"mixtape data inspekt: {shown(r)}")

# `--opt value` and `--opt=value`: the same plan, byte for byte.
quickstart = os.path.join(ROOT, "recipes", "quickstart.toml")
run_dir = os.path.join(WORK, "runs", "quickstart")
plans = []
for form, args in [("separate", ["--out", os.path.join(WORK, "plan-a.json"), "--run-dir", run_dir]),
                   ("inline", ["--out=" + os.path.join(WORK, "plan-b.json"), "--run-dir=" + run_dir])]:
    r = run("plan", quickstart, *args)
    if r is not None and check(r.returncode == 0, f"mixtape plan {form} options: {shown(r)}"):
        with open(os.path.join(WORK, f"plan-{'a' if form == 'separate' else 'b'}.json"), "rb") as f:
            plans.append(f.read())
if len(plans) == 2:
    check(plans[0] == plans[1] and plans[0].startswith(b"{"), "--out X and --out=X wrote different plans")
# Numbers and choices too, and an option after the positional as before it.
for args in [["--format", "json"], ["--format=json"]]:
    r = run("lint", *args, quickstart)
    if r is not None:
        check(r.returncode == 0 and r.stdout.strip() == "[]", f"mixtape lint {' '.join(args)}: {shown(r)}")
r1 = run("plan", quickstart, "--run-dir", run_dir, "--mfu", "0.5")
r2 = run("plan", "--mfu=0.5", "--run-dir=" + run_dir, quickstart)
if r1 is not None and r2 is not None:
    check(r1.returncode == 0 and r1.stdout == r2.stdout, f"--mfu 0.5 vs --mfu=0.5:\n{shown(r1)}\n{shown(r2)}")

# Usage errors: exit 2, "<command>: <message>" and where to look, on stderr; nothing run.
bad = os.path.join(ROOT, "tests", "lint", "unknown-key.toml")
USAGE_ERRORS = [
    (["lnt", "x.toml"], ["mixtape: unknown command 'lnt'", "did you mean 'lint'?", "mixtape --help"]),
    (["pln", quickstart], ["did you mean 'plan'?"]),
    (["--verison"], ["unknown option '--verison'", "did you mean '--version'?"]),
    (["lint", "--bogus", bad], ["mixtape lint: unknown option '--bogus'", "run 'mixtape lint --help' for usage"]),
    (["plan", quickstart, "--ot", "x.json"], ["mixtape plan: unknown option '--ot'", "did you mean '--out'?"]),
    (["lint"], ["mixtape lint: expected at least 1 argument (RECIPE...), got 0"]),
    (["plan"], ["mixtape plan: expected 1 argument (RECIPE), got 0"]),
    (["plan", quickstart, quickstart], ["mixtape plan: unexpected argument"]),
    (["plan", quickstart, "--out"], ["mixtape plan: --out needs a value (FILE)"]),
    (["plan", quickstart, "--mfu", "fast"], ["mixtape plan: --mfu needs a positive number, not 'fast'"]),
    (["lint", "--format", "yaml", bad], ["--format needs one of text|json, not 'yaml'"]),
    (["lint", "--verify=yes", bad], ["--verify does not take a value"]),
    (["lint", "-Wno-unknown-ref", bad], ["'unknown-ref' is not a warning code"]),
    (["submit", quickstart], ["mixtape submit: say which scheduler: --slurm"]),
    (["submit", quickstart, "--slurm", "--nodes", "0"], ["--nodes needs an integer from 1 to"]),
    (["data", "synth"], ["mixtape data synth: missing --out DIR"]),
    (["data", "synth", "--out", "x", "--docs", "-3"], ["--docs needs a non-negative integer, not '-3'"]),
    (["data"], ["usage: mixtape data"]),
    (["report"], ["mixtape report: expected 1 to 2 arguments (RUN_DIR [RUN_B]), got 0"]),
    (["run"], ["mixtape run: expected 1 argument (RECIPE), got 0"]),
    (["run", quickstart, "--nproc", "0"], ["mixtape run: --nproc needs an integer from 1 to 1024, not '0'"]),
    (["exec", "plan.json", "--bogus"], ["mixtape exec: unknown option '--bogus'"]),
    (["export", "runs/x", "node"], ["mixtape export: missing --hf DIR"]),
    (["export", "runs/x", "node", "--hf", "out", "--max-shard-size", "5PB"],
     ["mixtape export: --max-shard-size needs a size like 5GB, 500MB, 2GiB or bytes, not '5PB'"]),
    (["export", "runs/x", "node", "--hf", "out", "--dtype", "fp16"], ["--dtype needs one of fp32|bf16, not 'fp16'"]),
    (["data", "prepare", "x.jsonl", "--out", "x", "--threads", "0"], ["--threads needs an integer from 1 to 4096"]),
    (["merge", "a.safetensors", "--out", "m.safetensors"], ["mixtape merge: missing --method"]),
    (["merge", "a.safetensors", "--method", "average", "--out", "m.safetensors"],
     ["--method needs one of", "not 'average'"]),
    (["merge", "a", "b", "--method", "linear", "--normalize", "--no-normalize", "--out", "m"],
     ["mixtape merge: --normalize and --no-normalize contradict each other"]),
    (["merge", "a", "b", "--method", "slerp", "--no-normalize", "--out", "m"],
     ["mixtape merge: slerp has no weights: --normalize and --no-normalize do not apply"]),
]
for args, wants in USAGE_ERRORS:
    if needs_runtime(args):
        continue
    r = run(*args)
    if r is None:
        continue
    check(r.returncode == 2 and all(w in r.stderr for w in wants) and "Traceback" not in r.stderr,
          f"mixtape {' '.join(args)}: want exit 2 and {wants}\n{shown(r)}")
check(not os.path.exists(os.path.join(WORK, "x")) and not os.path.exists(os.path.join(WORK, "x.json")),
      "a command that failed its usage check wrote files")


# Color: --color forces it, --no-color and NO_COLOR (on a terminal too) turn it off.
def has_esc(text):
    return ESC in text


r = run("lint", "--color", bad, env={"NO_COLOR": ""})
if r is not None:
    check(r.returncode == 1 and has_esc(r.stderr), f"lint --color: no color\n{shown(r)}")
    check(r.returncode == 1 and "unknown key 'layer'" in re.sub(ESC + r"\[[0-9;]*m", "", r.stderr),
          f"lint --color: the diagnostic itself\n{shown(r)}")
for args, env in [(["--no-color"], {}), ([], {"NO_COLOR": "1"}), (["--no-color"], {"NO_COLOR": "1"}),
                  (["--color", "--no-color"], {})]:
    r = run("lint", *args, bad, env=env)
    if r is not None:
        check(r.returncode == 1 and "unknown key 'layer'" in r.stderr and not has_esc(r.stderr),
              f"lint {args} {env}: colored or wrong\n{shown(r)}")
# An explicit --color wins over NO_COLOR (no-color.org: a flag overrides the variable).
r = run("lint", "--color", bad, env={"NO_COLOR": "1"})
if r is not None:
    check(r.returncode == 1 and has_esc(r.stderr), f"lint --color with NO_COLOR: no color\n{shown(r)}")


def on_terminal(args, env):
    """(exit code, what `mixtape ARGS` wrote to a pseudo-terminal as its stderr), or None."""
    try:
        import pty
        master, slave = pty.openpty()
    except (ImportError, OSError):
        return None
    try:
        p = subprocess.Popen([MIXTAPE, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
                             cwd=WORK, env=env)
    finally:
        os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(timeout=120), out.decode("utf-8", "replace")


env_tty = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
for command in (["lint", bad], ["plan", bad]):
    colored = on_terminal(command, env_tty)
    if colored is None:
        not_checked.append("the colors on a terminal (no pseudo-terminal here)")
        break
    plain = on_terminal(command, dict(env_tty, NO_COLOR="1"))
    check(colored[0] == 1 and has_esc(colored[1]), f"{command} on a terminal: no color\n{colored}")
    check(plain[0] == 1 and "unknown key 'layer'" in plain[1] and not has_esc(plain[1]),
          f"{command} on a terminal with NO_COLOR=1: colored\n{plain}")
    empty = on_terminal(command, dict(env_tty, NO_COLOR=""))  # empty: as if unset
    check(empty[0] == 1 and has_esc(empty[1]), f"{command} on a terminal with NO_COLOR empty: no color\n{empty}")

# `mixtape` starts without LibTorch: no libtorch or libc10 among its libraries.
if shutil.which("ldd"):
    r = subprocess.run(["ldd", MIXTAPE], capture_output=True, text=True)
    torch = [line.strip() for line in r.stdout.splitlines() if re.search(r"libtorch|libc10", line)]
    check(r.returncode == 0 and not torch, f"mixtape links LibTorch:\n" + "\n".join(torch) + r.stderr)
else:
    not_checked.append("that mixtape does not link LibTorch (no ldd)")

# The runtime's commands through the driver, and the driver's error when mixtape-runtime is
# missing (a copy of `mixtape` alone in a folder).
lonely = os.path.join(WORK, "lonely")
os.makedirs(lonely)
shutil.copy(MIXTAPE, lonely)
r = subprocess.run([os.path.join(lonely, "mixtape"), "merge", "--help"], capture_output=True, text=True, timeout=60)
check(r.returncode == 1 and "mixtape-runtime" in r.stderr and "LibTorch" in r.stderr,
      f"mixtape merge without mixtape-runtime beside it: {shown(r)}")
if HAVE_RUNTIME:
    r = subprocess.run([RUNTIME, "--help"], capture_output=True, text=True, timeout=60)
    listed = set(re.findall(r"^  (\S+)  ", r.stdout, re.M))
    check(r.returncode == 0 and RUNTIME_COMMANDS <= listed, f"mixtape-runtime --help: {shown(r)}")
else:
    not_checked.append(f"{len(runtime_unchecked)} uses of the runtime's commands ({', '.join(sorted(RUNTIME_COMMANDS))}): "
                       f"no {RUNTIME}")

for f in failures:
    print("FAIL:", f)
print(f"{checks - len(failures)} passed, {len(failures)} failed")
if failures:
    sys.exit(1)
if not_checked:
    skipping.skip("not checked: " + "; ".join(not_checked))
