#!/usr/bin/env python3
"""The reference for bench/train_bench.cpp: the quickstart model written the way a PyTorch user
would (Hugging Face's LlamaModel in miniature: RMSNorm, RoPE with theta 10000 and cached
cos/sin, grouped-query attention 4/2 heads, SwiGLU ffn 192, untied head), trained in eager mode
on CPU with torch.optim.AdamW, grad clipping 1.0 and the same seeded shapes, init and threads.
Prints one JSON line like train_bench: tokens/s of the median step (and of the mean), the median
step in ms, and a phase breakdown (medians).

  python3 train_bench_ref.py [--steps 40] [--warmup 5] [--threads 2] [--foreach]
"""
import argparse, json, math, statistics, time
import torch, torch.nn as nn, torch.nn.functional as F


class RMSNorm(nn.Module):  # LlamaRMSNorm
    def __init__(s, d, eps=1e-5):
        super().__init__(); s.weight = nn.Parameter(torch.ones(d)); s.eps = eps
    def forward(s, x):
        xf = x.float()
        return s.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + s.eps)).to(x.dtype)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n):  # HF's: KV head j serves query heads j*n .. j*n+n-1
    B, kv, T, D = x.shape
    return x[:, :, None, :, :].expand(B, kv, n, T, D).reshape(B, kv * n, T, D)


class Block(nn.Module):
    def __init__(s, d, h, kv, ffn):
        super().__init__(); s.h, s.kv, s.hd = h, kv, d // h
        s.input_layernorm, s.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        s.q_proj = nn.Linear(d, h * s.hd, bias=False)
        s.k_proj = nn.Linear(d, kv * s.hd, bias=False)
        s.v_proj = nn.Linear(d, kv * s.hd, bias=False)
        s.o_proj = nn.Linear(h * s.hd, d, bias=False)
        s.gate_proj, s.up_proj = nn.Linear(d, ffn, bias=False), nn.Linear(d, ffn, bias=False)
        s.down_proj = nn.Linear(ffn, d, bias=False)

    def attention(s, x, cos, sin, mask):
        B, T, _ = x.shape
        q = s.q_proj(x).view(B, T, s.h, s.hd).transpose(1, 2)
        k = s.k_proj(x).view(B, T, s.kv, s.hd).transpose(1, 2)
        v = s.v_proj(x).view(B, T, s.kv, s.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, s.h // s.kv), repeat_kv(v, s.h // s.kv)
        # torch 1.13 has no scaled_dot_product_attention: HF's eager attention.
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(s.hd)
        scores = scores.masked_fill(mask, float("-inf"))
        y = torch.matmul(F.softmax(scores, dim=-1), v)
        return s.o_proj(y.transpose(1, 2).reshape(B, T, s.h * s.hd))

    def forward(s, x, cos, sin, mask):
        x = x + s.attention(s.input_layernorm(x), cos, sin, mask)
        h = s.post_attention_layernorm(x)
        return x + s.down_proj(F.silu(s.gate_proj(h)) * s.up_proj(h))


class Llama(nn.Module):
    def __init__(s, layers, d, h, kv, ffn, vocab, seq, theta=10000.0):
        super().__init__()
        s.embed_tokens = nn.Embedding(vocab, d)
        s.layers = nn.ModuleList(Block(d, h, kv, ffn) for _ in range(layers))
        s.norm = RMSNorm(d)
        s.lm_head = nn.Linear(d, vocab, bias=False)
        hd = d // h  # LlamaRotaryEmbedding's cached cos/sin
        inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2).float() / hd)
        angles = torch.outer(torch.arange(seq).float(), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        s.register_buffer("cos", emb.cos(), persistent=False)
        s.register_buffer("sin", emb.sin(), persistent=False)
        s.register_buffer("mask", torch.ones(seq, seq, dtype=torch.bool).triu(1), persistent=False)
        # The runtime's init (GPT-2's): N(0, 0.02), projections into the residual stream
        # N(0, 0.02 / sqrt(2 * layers)), norms 1.
        for name, p in s.named_parameters():
            if "norm" in name:
                continue
            std = 0.02 / math.sqrt(2 * layers) if name.endswith(("o_proj.weight", "down_proj.weight")) else 0.02
            nn.init.normal_(p, std=std)

    def forward(s, idx, tgt):
        T = idx.shape[1]
        x = s.embed_tokens(idx)
        cos, sin, mask = s.cos[:T], s.sin[:T], s.mask[:T, :T]
        for b in s.layers:
            x = b(x, cos, sin, mask)
        logits = s.lm_head(s.norm(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), tgt.reshape(-1))


def main():
    p = argparse.ArgumentParser()
    for k, v in dict(steps=40, warmup=5, threads=2, batch=32, seq=128, layers=2, d=64, heads=4,
                     kv_heads=2, ffn=192, vocab=264).items():
        p.add_argument("--" + k.replace("_", "-"), type=int, default=v)
    p.add_argument("--foreach", action="store_true", help="AdamW's multi-tensor (foreach) path")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(7)
    m = Llama(a.layers, a.d, a.heads, a.kv_heads, a.ffn, a.vocab, a.seq)
    decay = [p for n, p in m.named_parameters() if "norm" not in n and "embed" not in n]
    no_decay = [p for n, p in m.named_parameters() if "norm" in n or "embed" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=a.foreach)
    g = torch.Generator().manual_seed(1234)
    batches = []
    for _ in range(8):
        ids = torch.randint(a.vocab, (a.batch, a.seq + 1), generator=g)
        batches.append((ids[:, :-1].contiguous(), ids[:, 1:].contiguous()))

    def one(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = m(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        return loss.item()

    for i in range(a.warmup):
        one(i)
    times = []  # per step: the median is what the code costs on a shared machine
    for i in range(a.steps):
        t0 = time.perf_counter(); loss = one(a.warmup + i); times.append(time.perf_counter() - t0)

    fwd, bwd, upd = [], [], []
    for i in range(a.steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter(); l = m(x, y)
        t1 = time.perf_counter(); l.backward(); l.item()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        fwd.append(t1 - t0); bwd.append(t2 - t1); upd.append(t3 - t2)

    ms = lambda times: round(statistics.median_high(times) * 1e3, 3)
    print(json.dumps(dict(impl="pytorch-eager" + ("-foreach" if a.foreach else ""),
                          threads=torch.get_num_threads(), batch=a.batch, seq=a.seq, steps=a.steps,
                          tokens_per_s=round(a.batch * a.seq / statistics.median_high(times)),
                          mean_tokens_per_s=round(a.steps * a.batch * a.seq / sum(times)), step_ms=ms(times),
                          forward_ms=ms(fwd), backward_ms=ms(bwd), optimizer_ms=ms(upd),
                          loss=round(loss, 4), torch=torch.__version__)))


if __name__ == "__main__":
    main()
