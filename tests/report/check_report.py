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
errors:  a bad line mid-file, a line nested 100,000 deep, a blank line, a repeated step, a
         plan.json nested 100,000 deep, a missing plan, bad usage: exit 1 / 2 with file:line
         (or file and byte) messages.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

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
    expect(files == ["loss-ppl_code.val.svg", "loss-ppl_prose.val.svg", "lr.svg", "task-ppl_arith.svg",
                     "task-ppl_facts.svg", "train-loss-code.svg", "train-loss-prose.svg"], f"charts {files}")
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
        # A variant has one colour on every chart, also where others draw nothing.
        for p in root.iter(SVG + "polyline"):
            colours.setdefault(p.get("data-variant"), set()).add(p.get("stroke"))
    expect(all(len(c) == 1 for c in colours.values()), f"colours per variant {colours}")
    return charts


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
    expect(len(list(root.iter(SVG + "svg"))) == 7, "report.html: seven inline charts")
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


def full(mixtape, work):
    run = os.path.join(work, "run")
    make_run(run)
    r = report(mixtape, run)
    expect(r.returncode == 0, "exit 0")
    for model in MODELS:
        expect(any(line.startswith(model + " ") for line in r.stdout.splitlines()), f"row {model}")
    out = os.path.join(run, "report")
    charts = check_charts(out, VARIANTS)
    check_html(out, MODELS, {n: "done" for n in [
        "init", "pretrain", "adapt[replay=r0]", "adapt[replay=r5]",
        "ppl@pretrain", "ppl@adapt[replay=r0]", "ppl@adapt[replay=r5]"]})

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


def main():
    mixtape, work, scenario = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    {"full": full, "partial": partial, "errors": errors}[scenario](mixtape, work)
    print("ok")


if __name__ == "__main__":
    main()
