#!/usr/bin/env python3
"""Continued pre-training from a Hugging Face checkpoint, end to end:
  vocab     -- the fixture Llama (vocabulary 256) under the byte tokenizer (264): `mixtape plan`
               refuses, naming both sizes
  continue  -- the fixture Llama with its embedding and head grown to 264 rows (as a
               vocabulary extension does): `mixtape run` trains it a few steps, `mixtape
               export` writes a Hugging Face folder whose config keeps the checkpoint's
               architecture and whose weights are the node's; a second run starts from the
               export (our reader re-imports it); export refuses what it must
  merge     -- recipes/instruct-residual.toml with checkpoints made from the fixture (base:
               grown to 264 rows; instruct: base with every weight moved): the task-arithmetic
               merge of the trained node and the two hf: checkpoints is, tensor by tensor,
               cpt + (instruct - base) computed here; the merge's hash follows the instruct
               checkpoint's fingerprint (its config, or one weight) and the trained node's
               does not; a plan made before a weight changed refuses to run; an instruct
               checkpoint of another shape is an error naming it
    hf_test.py MIXTAPE SCENARIO WORKDIR
The fixture is tests/fixtures/hf-tiny-llama: without it the test exits 77 (skipped), and under
CI 1 (tests/skipping.py)."""
import array, json, os, shutil, struct, subprocess, sys

from e2e_common import finish, read_safetensors

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

mixtape, scenario, work = sys.argv[1:4]
fixture = skipping.fixture("hf-tiny-llama")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, MIXTAPE_NUM_THREADS="1")
failures = []

def run(args):
    return subprocess.run([mixtape, *args], capture_output=True, text=True, env=env, timeout=600)

def write_safetensors(path, tensors):
    """tensors: name -> (dtype, shape, bytes), written in name order like save_pretrained."""
    header, offset = {}, 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for name in sorted(tensors):
            f.write(tensors[name][2])

def tensors_of(path):
    header, data = read_safetensors(path)
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}

RECIPE = """
[recipe]
name = "hf-continue"
seed = 5

[model]
family = "llama"
init = "hf:{ckpt}"
seq_len = 32

[streams.prose]
shards = "synth:prose"
val = "2%"

[[stage]]
name = "continue"
tokens = "1Ki"
batch = "4 sequences"
mix = "prose"
lr = "warmup(10%, peak = 1e-3) then cosine(final = 1e-4)"
"""

def grown_checkpoint(folder, move=None):
    """The fixture with its embedding and head grown to 264 rows (rows 256..263 copy row 0),
    as a vocabulary extension does; `move(i)`, if given, is added to each float32 weight's
    i-th value. Returns the config and the tensors written."""
    os.makedirs(folder)
    config = json.load(open(os.path.join(fixture, "config.json")))
    config["vocab_size"] = 264
    json.dump(config, open(os.path.join(folder, "config.json"), "w"), indent=2)
    tensors = tensors_of(os.path.join(fixture, "model.safetensors"))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        dtype, shape, data = tensors[name]
        row = data[:len(data) // shape[0]]
        tensors[name] = (dtype, [264, shape[1]], data + row * 8)
    if move:
        for name, (dtype, shape, data) in tensors.items():
            values = array.array("f", data)
            tensors[name] = (dtype, shape, array.array("f", [v + move(i) for i, v in enumerate(values)]).tobytes())
    write_safetensors(os.path.join(folder, "model.safetensors"), tensors)
    return config, tensors

def write_recipe(name, ckpt):
    path = os.path.join(work, name)
    open(path, "w").write(RECIPE.format(ckpt=ckpt))
    return path

if scenario == "vocab":
    shutil.copytree(fixture, os.path.join(work, "ckpt"))
    r = run(["plan", write_recipe("recipe.toml", "ckpt"), "--run-dir", os.path.join(work, "run")])
    want = "exceeds the checkpoint's vocab_size 256"
    if r.returncode != 1 or "vocabulary of 264 tokens" not in r.stderr or want not in r.stderr:
        failures.append(f"a 264-token tokenizer on a 256-row checkpoint was planned: exit {r.returncode}\n{r.stderr}")
    total = 1

elif scenario == "continue":
    config, tensors = grown_checkpoint(os.path.join(work, "ckpt"))

    run_dir = os.path.join(work, "run")
    r = run(["run", write_recipe("recipe.toml", "ckpt"), "--run-dir", run_dir, "--quiet"])
    if r.returncode != 0:
        failures.append("the run from the checkpoint failed:\n" + r.stderr[-3000:])
    plan = json.load(open(os.path.join(run_dir, "plan.json")))
    train = [n for n in plan["nodes"] if n["kind"] == "train"]
    node = train[-1]
    node_weights = os.path.join(run_dir, node["dir"], "model.safetensors")

    # Export the trained node: the checkpoint's architecture, the node's weights.
    out = os.path.join(work, "exported")
    r = run(["export", run_dir, node["name"], "--hf", out])
    if r.returncode != 0:
        failures.append("export failed:\n" + r.stderr)
    else:
        ours = json.load(open(os.path.join(out, "config.json")))
        for key in ("model_type", "architectures", "vocab_size", "hidden_size", "intermediate_size",
                    "num_attention_heads", "num_key_value_heads", "num_hidden_layers", "head_dim",
                    "rms_norm_eps", "rope_parameters", "tie_word_embeddings", "hidden_act",
                    "max_position_embeddings", "attention_bias", "mlp_bias", "dtype"):
            if ours.get(key) != config.get(key):
                failures.append(f"exported config {key}: {ours.get(key)!r}, the checkpoint's {config.get(key)!r}")
        if open(os.path.join(out, "model.safetensors"), "rb").read() != open(node_weights, "rb").read():
            failures.append("the exported weights are not the node's")
        exported = tensors_of(os.path.join(out, "model.safetensors"))
        if sorted(exported) != sorted(tensors) or any(exported[k][:2] != tensors[k][:2] for k in tensors):
            failures.append("the exported tensors' names, dtypes or shapes are not the checkpoint's")
        elif all(exported[k][2] == tensors[k][2] for k in tensors):
            failures.append("training changed no weight")
        if [p for p in os.listdir(work) if ".tmp" in p]:
            failures.append("export left a temporary folder behind")
        # The byte tokenizer has no Hugging Face files: none are written; its end-of-text ends generation.
        if sorted(os.listdir(out)) != ["config.json", "generation_config.json", "model.safetensors"]:
            failures.append(f"export of a byte-tokenizer run wrote {sorted(os.listdir(out))}")
        generation = json.load(open(os.path.join(out, "generation_config.json")))
        if generation != {"_from_model_config": True, "eos_token_id": 256}:
            failures.append(f"generation_config.json: {generation}")
        if "99999" in open(os.path.join(out, "config.json")).read():
            failures.append("config.json spells a float longer than it needs")

    # Re-import: a run that starts from the export.
    r = run(["run", write_recipe("again.toml", "exported"), "--run-dir", os.path.join(work, "again"), "--quiet"])
    if r.returncode != 0:
        failures.append("a run from the exported folder failed:\n" + r.stderr[-3000:])

    # Refusals: an existing folder, an unknown node, a node that is not done.
    r = run(["export", run_dir, node["name"], "--hf", out])
    if r.returncode != 1 or "exists" not in r.stderr:
        failures.append(f"export over an existing folder: exit {r.returncode}\n{r.stderr}")
    r = run(["export", run_dir, "nope", "--hf", os.path.join(work, "x")])
    if r.returncode != 1 or "no node 'nope'" not in r.stderr:
        failures.append(f"export of an unknown node: exit {r.returncode}\n{r.stderr}")
    os.remove(os.path.join(run_dir, node["dir"], "DONE"))
    r = run(["export", run_dir, node["name"], "--hf", os.path.join(work, "y")])
    if r.returncode != 1 or "is not done" not in r.stderr:
        failures.append(f"export of an unfinished node: exit {r.returncode}\n{r.stderr}")
    r = run(["export", run_dir])
    if r.returncode != 2:
        failures.append(f"export without NODE and --hf: exit {r.returncode}, not the usage error")
    total = 12

elif scenario == "export-tokenizer":
    # A run with the fixture's BPE tokenizer: its files go into the export, bf16 weights in shards.
    tok = skipping.fixture("bpe-bytelevel")
    texts = os.path.join(work, "texts.jsonl")
    with open(texts, "w") as f:
        for i in range(400):
            f.write(json.dumps({"text": f"The river {i} runs past the mill, and {i * 7} boats wait."}) + "\n")
    r = subprocess.run([mixtape, "data", "prepare", texts, "--out", os.path.join(work, "web"),
                        "--tokenizer", "hf:" + os.path.join(tok, "tokenizer.json")], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("prepare failed:\n" + r.stderr)
    recipe = os.path.join(work, "recipe.toml")
    open(recipe, "w").write(f"""
[recipe]
name = "bpe-export"
seed = 3

[model]
family = "gpt2"
layers = 1
d_model = 32
heads = 2
seq_len = 32
tokenizer = "hf:{os.path.join(tok, 'tokenizer.json')}"

[streams.web]
shards = "web"

[[stage]]
name = "pretrain"
tokens = "1Ki"
batch = "4 sequences"
mix = "web"
lr = "constant(1e-3)"
""")
    run_dir = os.path.join(work, "run")
    r = run(["run", recipe, "--run-dir", run_dir, "--quiet"])
    if r.returncode != 0:
        sys.exit("the run failed:\n" + r.stderr[-3000:])
    out = os.path.join(work, "exported")
    r = run(["export", run_dir, "pretrain", "--hf", out, "--dtype", "bf16", "--max-shard-size", "40KB"])
    if r.returncode != 0:
        sys.exit("export failed:\n" + r.stderr)
    files = sorted(os.listdir(out))
    shards = [f for f in files if f.startswith("model-")]
    n = len(shards)
    if n < 2 or shards != [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]:
        failures.append(f"shards: {files}")
    if sorted(set(files) - set(shards)) != ["config.json", "generation_config.json", "merges.txt",
                                            "model.safetensors.index.json", "tokenizer.json",
                                            "tokenizer_config.json", "vocab.json"]:
        failures.append(f"the folder holds {files}")
    # The fixture has no tokenizer_config.json: the generic class, with its end-of-text.
    tokenizer_config = json.load(open(os.path.join(out, "tokenizer_config.json")))
    if tokenizer_config != {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}:
        failures.append(f"tokenizer_config.json: {tokenizer_config}")
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        if open(os.path.join(out, name), "rb").read() != open(os.path.join(tok, name), "rb").read():
            failures.append(f"{name} is not the run's tokenizer's")
    config = json.load(open(os.path.join(out, "config.json")))
    if config["model_type"] != "gpt2" or config["torch_dtype"] != "bfloat16" or config["eos_token_id"] != 0:
        failures.append(f"config.json: {config}")
    index = json.load(open(os.path.join(out, "model.safetensors.index.json")))
    total = 0
    for shard in shards:
        header, _ = read_safetensors(os.path.join(out, shard))
        for name, t in header.items():
            if name == "__metadata__":
                continue
            total += t["data_offsets"][1] - t["data_offsets"][0]
            if t["dtype"] != "BF16" or index["weight_map"].get(name) != shard:
                failures.append(f"{shard}: {name} is {t['dtype']}, mapped to {index['weight_map'].get(name)}")
    if index["metadata"]["total_size"] != total:
        failures.append(f"index total_size {index['metadata']['total_size']}, the shards hold {total}")
    # A run starts from the export: it re-imports (bf16 weights trained in fp32).
    again = os.path.join(work, "again.toml")
    open(again, "w").write(open(recipe).read().replace('family = "gpt2"', f'family = "gpt2"\ninit = "hf:{out}"')
                           .replace("layers = 1\nd_model = 32\nheads = 2\n", ""))
    r = run(["run", again, "--run-dir", os.path.join(work, "again"), "--quiet"])
    if r.returncode != 0:
        failures.append("a run from the exported folder failed:\n" + r.stderr[-3000:])
    total = 7
elif scenario == "merge":
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "recipes", "instruct-residual.toml")
    recipe = os.path.join(work, "instruct-residual.toml")
    shutil.copy(source, recipe)
    _, base = grown_checkpoint(os.path.join(work, "checkpoints", "base"))
    _, instruct = grown_checkpoint(os.path.join(work, "checkpoints", "instruct"), lambda i: 0.01 * (i % 7 - 3))
    run_dir = os.path.join(work, "run")
    r = run(["run", recipe, "--run-dir", run_dir, "--quiet"])
    if r.returncode != 0:
        sys.exit("the run failed:\n" + r.stderr[-3000:])
    plan = json.load(open(os.path.join(run_dir, "plan.json")))
    nodes = {n["name"]: n for n in plan["nodes"]}
    cpt = tensors_of(os.path.join(run_dir, nodes["cpt"]["dir"], "model.safetensors"))
    merged = tensors_of(os.path.join(run_dir, nodes["cpt-instruct"]["dir"], "model.safetensors"))
    if sorted(merged) != sorted(base):
        failures.append(f"the merge holds {sorted(merged)}, the checkpoints {sorted(base)}")
    worst, changed = 0.0, False
    for name in sorted(set(merged) & set(base)):
        b, c, i, m = (array.array("f", t[name][2]) for t in (base, cpt, instruct, merged))
        # In double, as MergeKit and Mixtape compute, rounded once to float32.
        want = array.array("f", [bv + ((cv - bv) + (iv - bv)) for bv, cv, iv in zip(b, c, i)])
        worst = max([worst] + [abs(x - y) for x, y in zip(m, want)])
        changed |= any(x != y for x, y in zip(c, b))
    if worst > 1e-7:
        failures.append(f"the merge differs from cpt + (instruct - base) by up to {worst}")
    if not changed:
        failures.append("training changed no weight: the merge would not show the residual on a trained model")
    evals = [json.loads(l) for l in open(os.path.join(run_dir, nodes["ppl@cpt-instruct"]["dir"], "metrics.jsonl"))
             if '"loss"' in l] if "ppl@cpt-instruct" in nodes else []
    if not evals:
        failures.append(f"no eval of the merged model: nodes {sorted(nodes)}")

    # Caching: another instruct checkpoint (its config) is a new merge; the trained node stays.
    def hashes():
        out = os.path.join(work, "plan.json")
        r = run(["plan", recipe, "--run-dir", run_dir, "--out", out])
        if r.returncode != 0:
            sys.exit("plan failed:\n" + r.stderr)
        return {n["name"]: n["hash"] for n in json.load(open(out))["nodes"]}
    before = hashes()
    config_path = os.path.join(work, "checkpoints", "instruct", "config.json")
    config = json.load(open(config_path))
    config["rms_norm_eps"] = 1e-5
    json.dump(config, open(config_path, "w"), indent=2)
    after = hashes()
    if after["cpt-instruct"] == before["cpt-instruct"]:
        failures.append("the merge's hash did not change with the instruct checkpoint")
    if after["cpt"] != before["cpt"]:
        failures.append("the trained node's hash changed with a checkpoint it does not read")

    # One weight of the instruct checkpoint changed in place (same size, same header): the
    # fingerprint hashes the weights, so the merge is new, and a plan made before refuses to run.
    stale = os.path.join(work, "stale.json")
    r = run(["plan", recipe, "--run-dir", run_dir, "--out", stale])
    if r.returncode != 0:
        sys.exit("plan failed:\n" + r.stderr)
    weights = os.path.join(work, "checkpoints", "instruct", "model.safetensors")
    data = bytearray(open(weights, "rb").read())
    data[-1] ^= 0x01
    open(weights, "wb").write(bytes(data))
    if hashes()["cpt-instruct"] == after["cpt-instruct"]:
        failures.append("the merge's hash did not change with one weight of the instruct checkpoint")
    r = run(["exec", stale, "--run-dir", os.path.join(work, "stale-run"), "--quiet"])
    if r.returncode == 0 or "checkpoint 'hf:checkpoints/instruct' changed since the plan was made" not in r.stderr:
        failures.append(f"a plan made before the weights changed ran: exit {r.returncode}\n{r.stderr[-2000:]}")

    # A checkpoint of another shape is an error at the reference, naming it.
    shutil.rmtree(os.path.join(work, "checkpoints", "instruct"))
    shutil.copytree(fixture, os.path.join(work, "checkpoints", "instruct"))
    r = run(["plan", recipe, "--run-dir", run_dir, "--out", os.path.join(work, "bad.json")])
    if r.returncode != 1 or "'hf:checkpoints/instruct'" not in r.stderr or "vocab 256 vs 264" not in r.stderr:
        failures.append(f"a 256-row instruct checkpoint was planned: exit {r.returncode}\n{r.stderr}")
    total = 9
else:
    sys.exit(f"unknown scenario {scenario}")

finish(failures, total)
