#!/usr/bin/env python3
"""The reference for bench/eval_bench.cpp: the same choice requests scored with the same model,
written the way a PyTorch user would — Hugging Face's Llama in miniature (as
bench/train_bench_ref.py, with the parameter names of the dumped safetensors), eval mode and
torch.no_grad(), requests sorted longest first in batches, right padding, and lm-eval-harness's
loglikelihood loop: log_softmax over the batch's logits, then per row the continuation's
positions, gather and sum.

Reads what `eval_bench --dump DIR` wrote: DIR/model.safetensors, DIR/requests.json and
DIR/mixtape_logliks.json. Scores all requests once as warmup, then `--reps` timed passes, and
prints one JSON line like eval_bench: items/s of the median pass (slowest, fastest), and the
largest absolute difference between its log-likelihoods and Mixtape's; exits 1 if that is
above --tolerance (1e-4).

  python3 eval_bench_ref.py DIR [--reps 7] [--warmup 1] [--threads 2] [--batch N (the dump's)]
"""
import argparse, json, math, os, statistics, struct, sys, time
import torch, torch.nn as nn, torch.nn.functional as F

from train_bench_ref import Block, RMSNorm  # the same pieces as the training reference


def load_safetensors(path):
    """A safetensors file as a dict of tensors (the format is a JSON header and raw data; the
    `safetensors` package is not in Debian's PyTorch)."""
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        out[name] = torch.frombuffer(raw, dtype=dtypes[t["dtype"]]).reshape(t["shape"]).clone()
    return out


class Attention(nn.Module):
    def __init__(s, d, h, kv):
        super().__init__(); s.h, s.kv, s.hd = h, kv, d // h
        s.q_proj = nn.Linear(d, h * s.hd, bias=False)
        s.k_proj = nn.Linear(d, kv * s.hd, bias=False)
        s.v_proj = nn.Linear(d, kv * s.hd, bias=False)
        s.o_proj = nn.Linear(h * s.hd, d, bias=False)

    # The training reference's attention, here under HF's self_attn.* parameter names.
    forward = Block.attention


class MLP(nn.Module):
    def __init__(s, d, ffn):
        super().__init__()
        s.gate_proj, s.up_proj = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        s.down_proj = nn.Linear(ffn, d, bias=False)
    def forward(s, x):
        return s.down_proj(F.silu(s.gate_proj(x)) * s.up_proj(x))


class Layer(nn.Module):
    def __init__(s, d, h, kv, ffn, eps):
        super().__init__()
        s.input_layernorm, s.post_attention_layernorm = RMSNorm(d, eps), RMSNorm(d, eps)
        s.self_attn, s.mlp = Attention(d, h, kv), MLP(d, ffn)
    def forward(s, x, cos, sin, mask):
        x = x + s.self_attn(s.input_layernorm(x), cos, sin, mask)
        return x + s.mlp(s.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.embed_tokens = nn.Embedding(c["vocab"], c["d_model"])
        s.layers = nn.ModuleList(Layer(c["d_model"], c["heads"], c["kv_heads"], c["ffn"], c["norm_eps"])
                                 for _ in range(c["layers"]))
        s.norm = RMSNorm(c["d_model"], c["norm_eps"])


class LlamaForCausalLM(nn.Module):
    def __init__(s, c):
        super().__init__()
        s.model = Decoder(c)
        s.lm_head = nn.Linear(c["d_model"], c["vocab"], bias=False)
        hd, seq = c["d_model"] // c["heads"], c["seq"]  # LlamaRotaryEmbedding's cached cos/sin
        inv_freq = 1.0 / c["rope_theta"] ** (torch.arange(0, hd, 2).float() / hd)
        angles = torch.outer(torch.arange(seq).float(), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        s.register_buffer("cos", emb.cos(), persistent=False)
        s.register_buffer("sin", emb.sin(), persistent=False)
        s.register_buffer("mask", torch.ones(seq, seq, dtype=torch.bool).triu(1), persistent=False)

    def forward(s, idx):
        T = idx.shape[1]
        x = s.model.embed_tokens(idx)
        cos, sin, mask = s.cos[:T], s.sin[:T], s.mask[:T, :T]
        for layer in s.model.layers:
            x = layer(x, cos, sin, mask)
        return s.lm_head(s.model.norm(x))


def score(model, requests, batch_size):
    """lm-eval-harness's loglikelihood: longest first, right-padded batches, log_softmax, gather."""
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i]["input"]))
    out = [0.0] * len(requests)
    with torch.no_grad():
        for first in range(0, len(order), batch_size):
            rows = [requests[i] for i in order[first:first + batch_size]]
            width = len(rows[0]["input"])
            batch = torch.zeros(len(rows), width, dtype=torch.long)
            for r, q in enumerate(rows):
                batch[r, :len(q["input"])] = torch.tensor(q["input"])
            logprobs = F.log_softmax(model(batch), dim=-1)
            for r, q in enumerate(rows):
                n, end = len(q["continuation"]), len(q["input"])
                cont = torch.tensor(q["continuation"]).unsqueeze(-1)
                out[order[first + r]] = float(logprobs[r, end - n:end].gather(-1, cont).sum())
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dump")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--batch", type=int, default=0, help="default: the dump's")
    p.add_argument("--tolerance", type=float, default=1e-4)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spec = json.load(open(os.path.join(a.dump, "requests.json")))
    requests, items = spec["requests"], spec["items"]
    batch = a.batch or spec["batch"]
    model = LlamaForCausalLM(spec["model"])
    model.load_state_dict(load_safetensors(os.path.join(a.dump, "model.safetensors")), strict=True)
    model.eval()

    for _ in range(a.warmup):
        scores = score(model, requests, batch)
    rates = []
    for _ in range(a.reps):
        t0 = time.perf_counter(); scores = score(model, requests, batch)
        rates.append(items / (time.perf_counter() - t0))

    # Where a pass goes: the same padded batches through the model alone.
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i]["input"]))
    batches = []
    for first in range(0, len(order), batch):
        rows = [requests[i]["input"] for i in order[first:first + batch]]
        batches.append(torch.tensor([q + [0] * (len(rows[0]) - len(q)) for q in rows]))
    forward = []
    with torch.no_grad():
        for _ in range(a.reps):
            t0 = time.perf_counter()
            for b in batches:
                model(b)
            forward.append(time.perf_counter() - t0)

    theirs = json.load(open(os.path.join(a.dump, "mixtape_logliks.json")))
    assert len(theirs) == len(scores), (len(theirs), len(scores))
    diff = max(abs(x - y) for x, y in zip(scores, theirs))
    print(json.dumps(dict(impl="pytorch-eager", task=spec["task"], threads=torch.get_num_threads(), batch=batch,
                          seq=spec["model"]["seq"], reps=a.reps, items=items, requests=len(requests),
                          tokens=sum(len(q["input"]) for q in requests),
                          items_per_s=round(statistics.median_high(rates), 1), items_per_s_min=round(min(rates), 1),
                          items_per_s_max=round(max(rates), 1),
                          pass_ms=round(items / statistics.median_high(rates) * 1e3, 3),
                          forward_ms=round(statistics.median_high(forward) * 1e3, 3), max_abs_diff=diff, torch=torch.__version__)))
    if not diff <= a.tolerance:
        print(f"eval_bench_ref.py: log-likelihoods differ from Mixtape's by {diff:.3g} > {a.tolerance:g}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
