#!/usr/bin/env python3
"""`mixtape report` end to end on a synthetic run directory (tests/report/make_run.py).

    check_report.py MIXTAPE WORK_DIR SCENARIO

full:    every node done; the report's SVGs and HTML parse as XML, with one polyline per
         variant per chart (per variant that trained the stream, for training loss), the
         table's rows, task columns and the node statuses; a second report is byte-identical;
         prose loss rises in adapt more for r0 than r5; forgetting.json: facts accuracy is
         forgotten without replay and kept with it (stage changes, BWT), its stability gap
         under replay recovers, arith is learned in adapt.
partial: adapt[replay=r5] killed mid-line: a warning, the variant marked partial, exit 0;
         a recipe name full of markup is escaped; forgetting.json has no end for r5, and its
         stability gap is partial and never recovers.
tensorboard: `--tensorboard DIR` writes one event file per model, read back by tfevents.py (a
         reader written from the TFRecord and protobuf specifications): CRCs, the file_version
         event, every tag, step (chain tokens), value and wall time against metrics.jsonl; a
         second run replaces the files, never adds to them.
compare: `mixtape report RUN_A RUN_B` (two seeds of the synthetic run): the side-by-side table
         of final metrics against both runs' records, the overlaid charts (A solid, B dashed,
         one colour per variant), usage errors.
fit-errors: `mixtape fit` on run directories it cannot fit: the synthetic run's two adapt
         variants are too few points for either law; an unknown stream, an unknown stage, a
         missing run directory and bad usage: exit 1 / 2 with messages that say what is
         missing (tests/unit/report/LawsTest.cpp checks the fits themselves).
errors:  a bad line mid-file, a line nested 100,000 deep, a blank line, a repeated step, a
         plan.json nested 100,000 deep, a missing plan, bad usage: exit 1 / 2 with file:line
         (or file and byte) messages.
"""
import glob
import json
import os
import re
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import tfevents

HERE = os.path.dirname(os.path.abspath(__file__))
SVG = "{http://www.w3.org/2000/svg}"
XHTML = "{http://www.w3.org/1999/xhtml}"
VARIANTS = ["pretrain", "adapt[replay=r0]", "adapt[replay=r5]"]
MODELS = ["pretrain", "adapt[replay=r0]", "adapt[replay=r5]"]


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def expect(condition, message):
    if not condition:
        fail(message)


def make_run(run_dir, *flags):
    subprocess.run([sys.executable, os.path.join(HERE, "make_run.py"), run_dir, *flags], check=True)


def report(mixtape, *args):
    r = subprocess.run([mixtape, "report", *args], capture_output=True, text=True)
    print(f"$ mixtape report {' '.join(args)}  -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def read_dir(path):
    return {name: open(os.path.join(path, name), "rb").read() for name in sorted(os.listdir(path))}


def polylines(svg_root):
    return {p.get("data-variant"): [tuple(map(float, xy.split(","))) for xy in p.get("points").split()]
            for p in svg_root.iter(SVG + "polyline")}


def check_charts(out, variants):
    files = sorted(f for f in os.listdir(out) if f.endswith(".svg"))
    expect(files == ["grad-norm.svg", "loss-ppl_code.val.svg", "loss-ppl_prose.val.svg", "lr.svg",
                     "task-ppl_arith.svg", "task-ppl_facts.svg", "train-loss-code.svg", "train-loss-prose.svg"],
           f"charts {files}")
    # Training loss per stream: only the variants whose chain trained on the stream.
    trained = {"train-loss-code.svg": [v for v in variants if v != "pretrain"]}
    charts, colours = {}, {}
    for name in files:
        root = ET.parse(os.path.join(out, name)).getroot()
        expect(root.tag == SVG + "svg", f"{name}: root is {root.tag}")
        lines = polylines(root)
        want = trained.get(name, variants)
        expect(sorted(lines) == sorted(want), f"{name}: polylines for {sorted(lines)}")
        expect(len(list(root.iter(SVG + "polyline"))) == len(want), f"{name}: one per variant")
        for cls in ("axes", "tick-labels", "legend", "stages"):
            expect(any(g.get("class") == cls for g in root.iter(SVG + "g")), f"{name}: no {cls}")
        texts = [t.text for t in root.iter(SVG + "text")]
        expect("tokens trained since init (linear)" in texts, f"{name}: x label")
        expect("adapt" in texts and "pretrain" in texts, f"{name}: stage marks")
        charts[name] = lines
        # A variant has one colour, width and dash on every chart, also where others draw
        # nothing; within a chart no two variants look alike.
        looks = [(p.get("stroke"), p.get("stroke-width"), p.get("stroke-dasharray")) for p in root.iter(SVG + "polyline")]
        expect(len(set(looks)) == len(looks), f"{name}: two variants drawn alike: {looks}")
        for p in root.iter(SVG + "polyline"):
            colours.setdefault(p.get("data-variant"), set()).add(
                (p.get("stroke"), p.get("stroke-width"), p.get("stroke-dasharray")))
        check_hover(name, root, lines)
    expect(all(len(c) == 1 for c in colours.values()), f"colours per variant {colours}")
    return charts


def check_hover(name, root, lines):
    """Values on hover: every marker, or a transparent target per point (at most 200 a
    curve), carries a <title> "VARIANT at TOKENS tokens: VALUE"."""
    circles = list(root.iter(SVG + "circle"))
    expect(circles, f"{name}: no hover targets")
    titles = [c.find(SVG + "title") for c in circles]
    expect(all(t is not None for t in titles), f"{name}: a point without a <title>")
    pattern = re.compile(r"^(.+) at [0-9.]+[KMGT]? tokens: -?[0-9.e+-]+$")
    for t in titles:
        m = pattern.match(t.text)
        expect(m and m.group(1) in lines, f"{name}: hover text {t.text!r}")
    for variant, points in lines.items():
        targets = sum(1 for t in titles if t.text.startswith(variant + " at "))
        expect(targets == len(points) or 100 <= targets <= 200, f"{name}: {targets} hover targets for {variant}")


def forgetting(out):
    with open(os.path.join(out, "forgetting.json")) as f:
        doc = json.load(f)
    expect(doc["format"] == "mixtape-forgetting" and doc["version"] == 1, "forgetting.json: format")
    keys = {k["key"]: k["higher_is_better"] for k in doc["keys"]}
    expect(keys.get("ppl facts acc") is True and keys.get("ppl prose.val loss") is False, f"keys {keys}")
    return doc


def check_html(out, models, states):
    root = ET.parse(os.path.join(out, "report.html")).getroot()
    expect(root.tag == XHTML + "html", f"report.html: root is {root.tag}")
    expect(len(list(root.iter(SVG + "svg"))) == 8, "report.html: eight inline charts")
    table = next(t for t in root.iter(XHTML + "table") if t.get("id") == "final-metrics")
    rows = [tr.get("data-model") for tr in table.iter(XHTML + "tr") if tr.get("data-model")]
    expect(rows == models, f"final-metrics rows {rows}")
    headers = [th.text for th in table.iter(XHTML + "th")]
    for h in ("ppl facts", "ppl arith", "acc", "acc_norm", "exact_match", "contains"):
        expect(h in headers, f"final-metrics: no {h!r} header in {headers}")
    cells = [td.text for td in table.iter(XHTML + "td")]
    expect(any(c and "\u00b1" in c for c in cells), "final-metrics: task scores with their stderr")
    expect(any(h.text == "Forgetting" for h in root.iter(XHTML + "h2")), "report.html: a Forgetting section")
    nodes = next(t for t in root.iter(XHTML + "table") if t.get("id") == "nodes")
    got = {}
    for tr in nodes.find(XHTML + "tbody"):
        cells = [td.text for td in tr]
        got[cells[0]] = cells[2]
    expect(got == states, f"node statuses {got}")
    return root


def check_throughput(root, rates):
    """The throughput table: a row per train node with records, its tokens/s as make_run.py
    logged them (tokens over elapsed_s, and the steps' median)."""
    table = next(t for t in root.iter(XHTML + "table") if t.get("id") == "throughput")
    rows = {tr.get("data-node"): [td.text for td in tr] for tr in table.iter(XHTML + "tr") if tr.get("data-node")}
    expect(sorted(rows) == sorted(rates), f"throughput rows {sorted(rows)}")
    for node, rate in rates.items():
        cells = rows[node]
        expect(cells[4] == cells[5] == rate and re.match(r"^\d+(\.\d s| min \d\d s| h \d\d min)$", cells[3]),
               f"throughput of {node}: {cells}")


def full(mixtape, work):
    run = os.path.join(work, "run")
    make_run(run)
    r = report(mixtape, run)
    expect(r.returncode == 0, "exit 0")
    for model in MODELS:
        expect(any(line.startswith(model + " ") for line in r.stdout.splitlines()), f"row {model}")
    out = os.path.join(run, "report")
    charts = check_charts(out, VARIANTS)
    root = check_html(out, MODELS, {n: "done" for n in [
        "init", "pretrain", "adapt[replay=r0]", "adapt[replay=r5]",
        "ppl@pretrain", "ppl@adapt[replay=r0]", "ppl@adapt[replay=r5]"]})
    check_throughput(root, {"pretrain": "41000", "adapt[replay=r0]": "38500", "adapt[replay=r5]": "38500"})
    expect(re.search(r"^  pretrain .* 41000 tok/s  median step      41000 tok/s$", r.stdout, re.M),
           "the printed throughput")
    expect(len(charts["grad-norm.svg"]["pretrain"]) > 100, "the gradient norm of every step")

    # Forgetting: prose.val rises during adapt, more without replay. In SVG units, the
    # r0 line ends higher on the page (smaller y) than r5's, and both end above pretrain's end.
    prose = charts["loss-ppl_prose.val.svg"]
    end = {v: prose[v][-1] for v in VARIANTS}
    expect(end["adapt[replay=r0]"][1] < end["adapt[replay=r5]"][1] < end["pretrain"][1],
           f"prose.val forgetting not visible: ends {end}")
    code = charts["loss-ppl_code.val.svg"]
    expect(code["adapt[replay=r0]"][-1][1] > code["pretrain"][-1][1], "code.val falls in adapt")
    # Training loss on prose: the replayed prose of r5 rises after the adapt boundary.
    prose_train = charts["train-loss-prose.svg"]["adapt[replay=r5]"]
    boundary = len(charts["train-loss-prose.svg"]["pretrain"])
    expect(prose_train[-1][1] < prose_train[boundary - 1][1], "training loss on replayed prose rises in adapt")

    # Deterministic: the same run, the same bytes (also through --out).
    again = os.path.join(work, "again")
    expect(report(mixtape, run, "--out", again).returncode == 0, "second report")
    expect(read_dir(out) == read_dir(again), "two reports of one run differ")

    expect(f"wrote {os.path.join(out, 'forgetting.json')}" in r.stdout, "says where forgetting.json is")
    f = forgetting(out)
    stages = {s["model"]: {c["key"]: c for c in s["changes"]} for s in f["stages"]}
    expect(sorted(stages) == sorted(MODELS), f"forgetting stages {sorted(stages)}")
    facts = {v: stages[v]["ppl facts acc"] for v in ("adapt[replay=r0]", "adapt[replay=r5]")}
    expect(all(s["start_model"] == "pretrain" for s in f["stages"] if s["stage"] == "adapt"),
           "adapt starts from pretrain")
    expect(facts["adapt[replay=r0]"]["change"] < -0.2 and not facts["adapt[replay=r0]"]["better"],
           f"facts forgotten without replay: {facts}")
    expect(facts["adapt[replay=r5]"]["change"] > facts["adapt[replay=r0]"]["change"], "replay keeps facts")
    expect(facts["adapt[replay=r0]"]["start_point"] == "during", "the start is adapt's in-loop point at 0")
    prose = stages["adapt[replay=r0]"]["ppl prose.val loss"]
    expect(prose["change"] > 0 and not prose["better"], f"prose loss rises: {prose}")
    arith = stages["adapt[replay=r0]"]["ppl arith exact_match"]
    expect(arith["better"] and arith["change"] > 0.3, f"arith learned in adapt: {arith}")
    chains = {c["variant"]: c for c in f["chains"]}
    expect(sorted(chains) == sorted(VARIANTS), f"chains {sorted(chains)}")
    r0 = chains["adapt[replay=r0]"]
    expect([row["model"] for row in r0["rows"]] == ["init", "pretrain", "adapt[replay=r0]"], f"rows {r0['rows']}")
    expect(len(r0["matrix"]) == 3 and all(len(row) == len(r0["columns"]) for row in r0["matrix"]), "matrix shape")
    bwt = {v: next(t for t in chains[v]["transfer"] if t["key"] == "ppl facts acc") for v in chains}
    expect(bwt["adapt[replay=r0]"]["learned_at"] == 1, "facts learned in pretrain")
    expect(bwt["adapt[replay=r0]"]["bwt"] < bwt["adapt[replay=r5]"]["bwt"], f"BWT of facts: {bwt}")
    gaps = {g["model"]: {k["key"]: k for k in g["keys"]} for g in f["stability_gap"]}
    gap = gaps["adapt[replay=r5]"]["ppl facts acc"]
    expect(gap["drop"] < 0 and gap["at_stage_tokens"] == 65536 and gap["tokens_to_recover"] == 262144,
           f"facts' stability gap under replay: {gap}")
    expect(gaps["adapt[replay=r0]"]["ppl facts acc"]["tokens_to_recover"] is None, "no recovery without replay")


def partial(mixtape, work):
    run = os.path.join(work, "run")
    recipe = "quick <start> & \"co\" 'q'"
    make_run(run, "--partial", "--recipe", recipe)
    r = report(mixtape, run)
    expect(r.returncode == 0, "exit 0")
    expect("warning:" in r.stderr and "metrics.jsonl:" in r.stderr
           and "truncated last line" in r.stderr, "warning for the truncated line")
    out = os.path.join(run, "report")
    check_charts(out, VARIANTS)
    root = check_html(out, ["pretrain", "adapt[replay=r0]"], {
        "init": "done", "pretrain": "done", "adapt[replay=r0]": "done",
        "adapt[replay=r5]": "partial", "ppl@pretrain": "done",
        "ppl@adapt[replay=r0]": "done", "ppl@adapt[replay=r5]": "not run"})
    title = root.find(XHTML + "head").find(XHTML + "title").text
    expect(title == "mixtape report: " + recipe, f"title {title!r}")
    legend = [t.text for t in root.iter(SVG + "text")]
    expect("adapt[replay=r5] (partial)" in legend, "the partial variant is marked")
    f = forgetting(out)
    expect("adapt[replay=r5]" not in [s["model"] for s in f["stages"]], "no end for the killed stage")
    gap = next(g for g in f["stability_gap"] if g["model"] == "adapt[replay=r5]")
    expect(gap["partial"], "the killed stage's stability gap is partial")
    facts = next(k for k in gap["keys"] if k["key"] == "ppl facts acc")
    expect(facts["tokens_to_recover"] is None, f"killed before it recovered: {facts}")


def tensorboard(mixtape, work):
    run, logs = os.path.join(work, "run"), os.path.join(work, "tb")
    make_run(run)
    records = {}
    for path in glob.glob(os.path.join(run, "*", "metrics.jsonl")):
        for line in open(path):
            r = json.loads(line)
            records.setdefault(r["node"], []).append(r)
    f32 = lambda v: struct.unpack("<f", struct.pack("<f", v))[0]
    want = {}
    for node, rs in records.items():
        times = sorted((r["chain_tokens"], r["time"]) for r in rs if r["type"] == "train")
        points = []
        for r in rs:
            if r["type"] == "train":
                values = {"loss": r["loss"], "lr": r["lr"], "grad_norm": r["grad_norm"],
                          "tokens_per_s": r["tokens_per_s"]}
                values.update({"loss_by_stream/" + s: v for s, v in r["loss_by_stream"].items()})
                points += [("train/" + k, r["chain_tokens"], r["time"], f32(v)) for k, v in values.items()]
                continue
            # An eval takes the time of its model's last train record at or before its point.
            before = [t for c, t in times if c <= r["chain_tokens"]]
            wall = before[-1] if before else (times[0][1] if times else 0)
            if "task" in r:
                metrics = ["acc", "acc_norm"] if r["kind"] == "choice" else ["exact_match", "contains"]
                points += [(f"task/{r['eval']}/{r['task']}/{m}", r["chain_tokens"], wall, f32(r[m])) for m in metrics]
            else:
                prefix = f"eval/{r['eval']}/{r['stream']}.{r['split']}/"
                points += [(prefix + k, r["chain_tokens"], wall, f32(r[k])) for k in ("loss", "ppl")]
        want[node] = sorted(points)

    def check(what):
        expect(sorted(os.listdir(logs)) == sorted(want), f"{what}: folders {sorted(os.listdir(logs))}")
        files = {}
        for node in want:
            names = os.listdir(os.path.join(logs, node))
            expect(len(names) == 1 and re.match(r"^events\.out\.tfevents\.\d{10}\.\S+$", names[0]),
                   f"{what}: {node}: files {names}")
            blob = open(os.path.join(logs, node, names[0]), "rb").read()
            try:
                events = tfevents.events(blob)
            except ValueError as e:
                fail(f"{what}: {node}: {e}")
            first = min(t for _, _, t, _ in want[node])
            expect(events[0]["file_version"] == "brain.Event:2" and events[0]["wall_time"] == first
                   and not events[0]["values"], f"{what}: {node}: first event {events[0]}")
            expect(names[0].split(".")[3] == str(int(first)), f"{what}: {node}: file name {names[0]}")
            steps = [e["step"] for e in events[1:]]
            expect(steps == sorted(steps), f"{what}: {node}: steps out of order")
            got = sorted((tag, e["step"], e["wall_time"], v) for e in events[1:] for tag, v in e["values"])
            if got != want[node]:
                first_difference = next((g, w) for g, w in zip(got + [None], want[node] + [None]) if g != w)
                fail(f"{what}: {node}: {len(got)} scalars, {len(want[node])} wanted; first difference: "
                     f"{first_difference}")
            files[node] = blob
        return files

    r = report(mixtape, run, "--tensorboard", logs)
    expect(r.returncode == 0 and f"wrote TensorBoard event files under {logs}" in r.stdout, "exit 0")
    first = check("first")
    # The reader does check: a flipped bit fails a CRC.
    blob = bytearray(first["pretrain"])
    blob[40] ^= 1
    try:
        tfevents.events(bytes(blob))
        fail("a flipped bit passed the CRCs")
    except ValueError:
        pass
    stale = os.path.join(logs, "pretrain", "events.out.tfevents.1700000000.elsewhere")
    open(stale, "wb").write(b"")
    expect(report(mixtape, run, "--tensorboard", logs).returncode == 0, "second run: exit 0")
    expect(check("second") == first, "a second run writes other bytes")
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError:
        print("tensorboard is not installed: tfevents.py, written from the format specifications, is the reference")
    else:
        acc = event_accumulator.EventAccumulator(os.path.join(logs, "pretrain"))
        acc.Reload()
        loss = acc.Scalars("train/loss")
        expect([(s.step, s.value) for s in loss] ==
               [(step, v) for tag, step, _, v in want["pretrain"] if tag == "train/loss"], "TensorBoard's own reader")


def compare(mixtape, work):
    a, b, out = os.path.join(work, "a"), os.path.join(work, "b"), os.path.join(work, "compare")
    make_run(a)
    make_run(b, "--seed", "8")
    r = report(mixtape, a, b, "--out", out)
    expect(r.returncode == 0 and f"wrote {os.path.join(out, 'compare.html')}" in r.stdout, "exit 0")

    def finals(run):
        values = {}
        for path in glob.glob(os.path.join(run, "*", "metrics.jsonl")):
            for r in map(json.loads, open(path)):
                if r["type"] != "eval" or r["point"] != "final":
                    continue
                if "task" in r:
                    for m in ("acc", "acc_norm", "exact_match", "contains"):
                        if m in r:
                            values[(r["node"], f"{r['eval']} {r['task']} {m}")] = r[m]
                else:
                    values[(r["node"], f"{r['eval']} {r['stream']}.{r['split']} loss")] = r["loss"]
        return values
    va, vb = finals(a), finals(b)
    expect(va != vb, "the two seeds give the same numbers")
    root = ET.parse(os.path.join(out, "compare.html")).getroot()
    table = next(t for t in root.iter(XHTML + "table") if t.get("id") == "comparison")
    rows = {(tr.get("data-model"), tr.get("data-metric")): [td.text for td in tr]
            for tr in table.iter(XHTML + "tr") if tr.get("data-model")}
    expect(sorted(rows) == sorted(set(va) | set(vb)), f"comparison rows {sorted(rows)}")
    for key, cells in rows.items():
        want = [f"{va[key]:.4f}", f"{vb[key]:.4f}", f"{vb[key] - va[key]:+.4f}"]
        expect(cells[2:] == want, f"{key}: {cells[2:]}, wanted {want}")
        expect(re.search(rf"^{re.escape(key[0])} +{re.escape(key[1])} +{want[0]} +{want[1]} +"
                         rf"{re.escape(want[2])}$", r.stdout, re.M), f"{key}: the printed row")
    charts = list(root.iter(SVG + "svg"))
    expect(len(charts) == 4, f"{len(charts)} overlaid charts, not the 2 eval losses and 2 tasks")
    for chart in charts:
        lines = {p.get("data-variant"): p for p in chart.iter(SVG + "polyline")}
        expect(sorted(lines) == sorted(f"{run}: {v}" for run in "AB" for v in VARIANTS), f"curves {sorted(lines)}")
        for v in VARIANTS:
            pa, pb = lines["A: " + v], lines["B: " + v]
            expect(pa.get("stroke") == pb.get("stroke") and pa.get("stroke-dasharray") is None
                   and pb.get("stroke-dasharray"), f"A and B of {v}: one colour, B dashed")
    expect(report(mixtape, a, b, "--tensorboard", out).returncode == 2, "--tensorboard with two runs: exit 2")
    expect(report(mixtape, a, b, a).returncode == 2, "three run directories: exit 2")


def errors(mixtape, work):
    run = os.path.join(work, "run")
    make_run(run)
    metrics = next(os.path.join(run, d, "metrics.jsonl") for d in sorted(os.listdir(run))
                   if d.startswith("pretrain-"))
    good = open(metrics).read().splitlines(keepends=True)
    t = next(i for i, l in enumerate(good) if '"type": "train"' in l)  # step 1's record
    deep = "[" * 100000 + "]" * 100000 + "\n"
    for what, lines, want in [
            ("bad line mid-file", good[:2] + [good[2][:40] + "\n"] + good[3:], f"{metrics}:3: byte 40: invalid JSON: "),
            ("a line nested 100,000 deep", good[:2] + [deep] + good[3:],
             f"{metrics}:3: byte 512: JSON nested deeper than 512 levels"),
            ("a blank line", good[:1] + ["\n"] + good[1:],
             f"{metrics}:2: a blank line; each line of metrics.jsonl is one record"),
            ("a repeated step", good[:t + 2] + [good[t]] + good[t + 2:],
             f"{metrics}:{t + 3}: a second train record of node 'pretrain' step 1 (the first is on line {t + 1})")]:
        open(metrics, "w").writelines(lines)
        r = report(mixtape, run)
        expect(r.returncode == 1 and want in r.stderr, f"{what}: exit {r.returncode}, expected 1 and {want!r}")
    open(metrics, "w").writelines(good)

    plan = os.path.join(run, "plan.json")
    open(plan, "w").write(deep)
    r = report(mixtape, run)
    want = f"{plan}: byte 512: JSON nested deeper than 512 levels"
    expect(r.returncode == 1 and want in r.stderr, f"a deep plan.json: exit {r.returncode}, expected 1 and {want!r}")

    r = report(mixtape, os.path.join(work, "nowhere"))
    expect(r.returncode == 1 and "plan.json" in r.stderr, "missing plan.json: exit 1")
    expect(report(mixtape).returncode == 2, "no run dir: exit 2")
    expect(report(mixtape, run, "--bogus").returncode == 2, "unknown option: exit 2")
    expect(report(mixtape, run, "--out").returncode == 2, "--out without a value: exit 2")


def fit_errors(mixtape, work):
    run = os.path.join(work, "run")
    make_run(run)

    def fit(*args):
        r = subprocess.run([mixtape, "fit", *args], capture_output=True, text=True)
        print(f"$ mixtape fit {' '.join(args)}  -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    both = ["--domain", "code", "--general", "prose"]
    for args, code, want in [
            ([run, *both], 1, "mixtape fit: error: the domain loss: 2 points for 6 free parameters: the law needs "
                              "at least as many runs as parameters"),
            ([run, *both, "--law", "replay"], 1,
             "mixtape fit: error: the general loss's rise: 2 points for 3 free parameters"),
            ([run, "--domain", "med", "--general", "prose"], 1,
             "mixtape fit: error: the plan has no stream 'med' (streams: code, prose)"),
            ([run, *both, "--stage", "pretrain"], 1, "mixtape fit: error: the domain loss: 1 point for 6 free"),
            ([run, *both, "--stage", "tune"], 1,
             "mixtape fit: error: stage 'tune' has no train node with a final eval of both code.val and prose.val"),
            ([run, *both, "--eval", "nope"], 1, "mixtape fit: error: no train node that trains on 'code' has a "
                                                 "final eval of both code.val and prose.val"),
            ([os.path.join(work, "nowhere"), *both], 1, "plan.json: no such file (is this a run directory?"),
            ([run, "--domain", "code"], 2, "--general"),
            ([run, *both, "--max-general-increase", "lots"], 2,
             "--max-general-increase: 'lots' is not a share such as 3% or 0.03"),
            ([run, *both, "--law", "chinchilla"], 2, "chinchilla")]:
        r = fit(*args)
        expect(r.returncode == code and want in r.stderr,
               f"fit {args[1:]}: exit {r.returncode}, expected {code} and {want!r}")
    # The points it read before giving up: N from the init, D and the share from the ledgers.
    r = fit(run, *both)
    expect("2 runs of stage 'adapt' (eval 'ppl'): 1 model sizes, 1 token budgets, 2 domain shares" in r.stdout,
           "the sweep's summary line")


def main():
    mixtape, work, scenario = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    {"full": full, "partial": partial, "tensorboard": tensorboard, "compare": compare,
     "errors": errors, "fit-errors": fit_errors}[scenario](mixtape, work)
    print("ok")


if __name__ == "__main__":
    main()
