#!/usr/bin/env python3
"""Proxy against real perplexity of a merge-based data ablation, and their rank correlation.

usage: scripts/ablation-spearman.py RUN_DIR

Reads the final eval records of RUN_DIR/*/metrics.jsonl (docs/run-format.md) and the node
kinds of RUN_DIR/*/node.json. A proxy is a merge node named `proxy-X-Y`; its real counterpart
is the train node of the stage variant `real[pair=X_Y]` (recipes/ablation-experiment.toml).
For each evaluated stream it prints both perplexities and Spearman's rho between them (ranks
averaged over ties); then the combinations of every [[ablation]] (merge nodes `NAME{i,j}`)
ranked by proxy perplexity. Standard library only.
"""
import json
import pathlib
import re
import sys


def load(run_dir):
    kinds, ppl = {}, {}
    for node_json in run_dir.glob("*/node.json"):
        node = json.loads(node_json.read_text())
        kinds[node["name"]] = node["kind"]
    for metrics in run_dir.glob("*/metrics.jsonl"):
        for line in metrics.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a killed run's last line
            if r.get("type") == "eval" and r.get("point") == "final":
                ppl[(r["node"], f'{r["stream"]}.{r["split"]}')] = r["ppl"]
    return kinds, ppl


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def spearman(xs, ys):
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx) ** 0.5
    vy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (vx * vy) if vx and vy else float("nan")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    run_dir = pathlib.Path(sys.argv[1])
    kinds, ppl = load(run_dir)
    if not ppl:
        sys.exit(f"{run_dir}: no final eval records")
    streams = sorted({s for _, s in ppl})
    pairs = []
    for node in sorted(kinds):
        m = re.fullmatch(r"proxy-(\w+)-(\w+)", node)
        if m and kinds[node] == "merge":
            real = f"real[pair={m.group(1)}_{m.group(2)}]"
            pairs.append((f"{m.group(1)}+{m.group(2)}", node, real))
    for stream in streams:
        rows = [(label, ppl[(p, stream)], ppl[(r, stream)]) for label, p, r in pairs
                if (p, stream) in ppl and (r, stream) in ppl]
        if not rows:
            continue
        print(f"{stream}: proxy (average of unit models) vs real (trained on the mixture)")
        print(f"  {'mixture':<16} {'proxy ppl':>10} {'real ppl':>10}")
        for label, p, r in sorted(rows, key=lambda row: row[2]):
            print(f"  {label:<16} {p:>10.3f} {r:>10.3f}")
        rho = spearman([row[1] for row in rows], [row[2] for row in rows])
        print(f"  Spearman rho = {rho:+.3f} over {len(rows)} mixtures\n")
    combos = {}
    for (node, stream), value in ppl.items():
        m = re.fullmatch(r"(.+)\{([\d,]+)\}", node)
        if m and kinds.get(node) == "merge":
            combos.setdefault((m.group(1), stream), []).append((value, m.group(2)))
    for (ablation, stream), rows in sorted(combos.items()):
        print(f"{ablation} on {stream}: combinations ranked by proxy perplexity")
        for value, units in sorted(rows):
            print(f"  {{{units}}}".ljust(14) + f"{value:10.3f}")
        print()


if __name__ == "__main__":
    main()
