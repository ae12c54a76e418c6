#!/usr/bin/env python3
"""recipes/control-tokens.toml (conditional training, Korbak et al. 2023) end to end:
  - the plan's stream sizes count one control token per document: prose, whose every
    document has a quality, is its two kinds (hq: quality > 3, lq: the rest) plus one token
    per document, and so is each conditioned eval stream beside its plain one;
  - the plan holds the byte tokenizer's ids of <|good|> (259) and <|bad|> (260);
  - a run killed (SIGKILL) after its first checkpoint resumes there and ends with the
    uninterrupted run's weights, byte for byte;
  - the runtime reads the prefixes: an eval of a conditioned stream scores the plain one's
    targets plus the first document's first token (the prefix is given, never a target),
    under either token, and its loss differs from the plain one's.
That each prefix matches its document's column is checked sample by sample on the same
corpus in tests/unit/data/SamplerTest.cpp (ControlTokensPrefixEachDocumentByItsColumn);
a run this short barely learns what the tokens mean, so the losses are printed, not ranked.
    control_tokens_test.py MIXTAPE WORKDIR"""
import glob, json, os, signal, subprocess, time

from e2e_common import final_evals, finish, newest_checkpoint, run_recipe, start

mixtape, work, env, run = start(threads=2)
failures = []
checks = 6

run_dir = run_recipe(run, work, "control-tokens", failures, checks)

def weights(run_dir):
    return {os.path.relpath(path, run_dir): open(path, "rb").read()
            for path in sorted(glob.glob(os.path.join(run_dir, "*", "*.safetensors")))}


# Resume: kill a second run once it has a checkpoint; the rerun must end where the first did.
killed = os.path.join(work, "killed")
recipe = os.path.join(work, "control-tokens.toml")
p = subprocess.Popen([mixtape, "run", recipe, "--run-dir", killed, "--quiet"], env=env,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
deadline = time.time() + 120
while p.poll() is None and time.time() < deadline and not newest_checkpoint(killed):
    time.sleep(0.01)
p.send_signal(signal.SIGKILL)
if p.wait() != -signal.SIGKILL:
    failures.append(f"the second run was not killed mid-training: it ended with {p.returncode}")
else:
    r = run(["run", recipe, "--run-dir", killed])
    if r.returncode != 0 or "resuming from the checkpoint at step" not in r.stderr:
        failures.append("the killed run did not resume from its checkpoint:\n" + r.stderr[-2000:])
    elif weights(killed) != weights(run_dir):
        failures.append("the resumed run's weights differ from the uninterrupted run's")

plan = json.load(open(os.path.join(run_dir, "plan.json")))
streams = plan["streams"]
for split in ("train", "val"):
    tokens = lambda name: streams[name][f"{split}_tokens"]
    documents = lambda name: streams[name][f"{split}_documents"]
    kinds = tokens("hq") + documents("hq") + tokens("lq") + documents("lq")
    if tokens("prose") != kinds:
        failures.append(f"prose's {split} tokens are {tokens('prose')}, not its kinds' plus one per document: {kinds}")
for kind in ("hq", "lq"):
    for token in ("good", "bad"):
        name = f"{kind}_as_{token}"
        want = streams[kind]["val_tokens"] + streams[kind]["val_documents"]
        if streams[name]["val_tokens"] != want:
            failures.append(f"{name}'s val tokens are {streams[name]['val_tokens']}, not {want}")
control = streams["prose"]["transform"]["control_tokens"]
if (control["good"]["id"], control["bad"]["id"], control["column"], control["above"]) != (259, 260, "quality", 3):
    failures.append(f"prose's control tokens are not the byte tokenizer's: {control}")

evals = {stream: rec for (node, stream), rec in final_evals(run_dir).items()}
try:
    for kind in ("hq", "lq"):
        plain, good, bad = evals[kind], evals[f"{kind}_as_good"], evals[f"{kind}_as_bad"]
        print(f"{kind}.val loss: plain {plain['loss']:.4f}, after <|good|> {good['loss']:.4f}, "
              f"after <|bad|> {bad['loss']:.4f} ({good['tokens']} tokens)")
        if not good["tokens"] == bad["tokens"] == plain["tokens"] + 1:
            failures.append(f"{kind}: the conditioned evals do not score the plain targets plus one: "
                            f"{plain['tokens']}, {good['tokens']}, {bad['tokens']}")
        if good["loss"] == plain["loss"] or bad["loss"] == plain["loss"]:
            failures.append(f"{kind}: a conditioned eval reads like the plain one: no prefix was read")
except KeyError as missing:
    failures.append(f"no final eval of {missing}: {sorted(evals)}")
finish(failures, checks)
