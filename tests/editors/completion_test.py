#!/usr/bin/env python3
"""Shell completion generated from the option tables: `mixtape completion bash` is sourced into
bash, and the completion of a command line (COMP_WORDS, COMP_CWORD, then the function that
`complete -p mixtape` names) gives subcommands, options, choices and files; `mixtape completion
zsh` is checked by `zsh -n`, and in zsh through bashcompinit, when zsh is installed. The
runtime's commands (run, exec, export, merge) are checked when `mixtape-runtime` is built beside
`mixtape`, and zsh where it is installed (scripts/setup installs it); a check that cannot run
makes the test exit 77, skipped, once the others have passed (under CI, 1: tests/skipping.py).

usage: completion_test.py MIXTAPE WORKDIR"""
import os, shlex, shutil, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

MIXTAPE, WORK = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
HAVE_RUNTIME = os.access(os.path.join(os.path.dirname(MIXTAPE), "mixtape-runtime"), os.X_OK)
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(os.path.join(WORK, "runs", "quickstart"))
for name in ("quickstart.toml", "notes.txt", "plan.json"):
    open(os.path.join(WORK, name), "w").close()
failures, skipped = [], []


def generate(shell):
    r = subprocess.run([MIXTAPE, "completion", shell], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        failures.append(f"mixtape completion {shell}: exit {r.returncode}\n{r.stderr}")
    if r.stderr and HAVE_RUNTIME:
        failures.append(f"mixtape completion {shell} warned:\n{r.stderr}")
    path = os.path.join(WORK, f"mixtape.{shell}")
    with open(path, "w") as f:
        f.write(r.stdout)
    return path


def complete(script, line, shell="bash"):
    """The completions of `line` (the cursor at its end), sorted. Words are split as bash splits
    them, '=' being a word of its own (COMP_WORDBREAKS)."""
    words = line.replace("=", " = ").split(" ")
    if line.endswith("="):
        words.pop()
    body = (f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT={len(line)}; ")
    if shell == "bash":
        program = ["bash", "--norc", "-c", f"source {shlex.quote(script)}; {body}"
                   "$(complete -p mixtape | sed -E 's/.*-F ([^ ]+) .*/\\1/'); printf '%s\\n' \"${COMPREPLY[@]}\""]
    else:
        # compgen and complete come from zsh's bashcompinit, whose compgen leaves matching the
        # word typed to zsh (so these lists are not filtered: expect() looks for a subset).
        program = ["zsh", "-f", "-c", "autoload -U compinit && compinit -u; " f"source {shlex.quote(script)}; "
                   f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
                   "_mixtape; printf '%s\\n' \"${COMPREPLY[@]}\""]
    r = subprocess.run(program, capture_output=True, text=True, timeout=60, cwd=WORK)
    if r.returncode != 0:
        failures.append(f"{shell}: completing '{line}': exit {r.returncode}\n{r.stderr}")
    return sorted(w for w in r.stdout.splitlines() if w)


def expect(script, line, want, shell="bash", exact=True):
    got = complete(script, line, shell)
    ok = got == sorted(want) if exact else set(want) <= set(got)
    if not ok:
        failures.append(f"{shell}: '{line}<TAB>' gives {got}, expected {'' if exact else 'at least '}{sorted(want)}")


bash = generate("bash")
expect(bash, "mixtape ru", ["run"])
expect(bash, "mixtape ", ["lint", "plan", "run", "data", "report", "schema", "completion"], exact=False)
expect(bash, "mixtape --v", ["--version"])
expect(bash, "mixtape data pre", ["prepare"])
expect(bash, "mixtape data tasks ", ["convert"])
expect(bash, "mixtape lint -W", ["-Werror", "-Wno-"])
expect(bash, "mixtape lint --format ", ["json", "text"])
expect(bash, "mixtape lint ", ["quickstart.toml", "runs"])         # recipes and folders to go into
expect(bash, "mixtape plan q", ["quickstart.toml"])
expect(bash, "mixtape report ", ["runs"])                          # a run directory
expect(bash, "mixtape completion ", ["bash", "zsh"])
expect(bash, "mixtape data prepare --tokenizer b", ["bytes"])
if HAVE_RUNTIME:
    expect(bash, "mixtape run --ru", ["--run-dir"])
    expect(bash, "mixtape run --verify-data ", ["cached", "full"])
    expect(bash, "mixtape run --verify-data=", ["cached", "full"])
    expect(bash, "mixtape run --run-dir ", ["runs"])
    expect(bash, "mixtape run --nproc 2 ", ["quickstart.toml", "runs"])
    expect(bash, "mixtape exec ", ["plan.json", "runs"])
    expect(bash, "mixtape merge --method s", ["slerp"])
else:
    skipped.append("run, exec and merge: no mixtape-runtime beside mixtape")

zsh = generate("zsh")
if shutil.which("zsh"):
    r = subprocess.run(["zsh", "-n", zsh], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        failures.append(f"zsh -n {zsh}: exit {r.returncode}\n{r.stderr}")
    expect(zsh, "mixtape ru", ["run"], "zsh", exact=False)
    expect(zsh, "mixtape data pre", ["prepare"], "zsh", exact=False)
    expect(zsh, "mixtape lint ", ["quickstart.toml", "runs"], "zsh")
    if HAVE_RUNTIME:
        expect(zsh, "mixtape run --ru", ["--run-dir"], "zsh", exact=False)
        expect(zsh, "mixtape run --verify-data ", ["cached", "full"], "zsh")
else:
    skipped.append("zsh: not installed")

if failures:
    print("FAIL:\n" + "\n".join(failures))
    sys.exit(1)
if skipped:
    skipping.skip("; ".join(skipped))
print("ok: bash and zsh completion")
