#!/usr/bin/env python3
"""`mixtape report` end to end on a synthetic run directory (tests/report/make_run.py).

    check_report.py MIXTAPE WORK_DIR SCENARIO

full:    every node done; the report's SVGs and HTML parse as XML, with one polyline per
         variant per chart (per variant that trained the stream, for training loss), the
         table's rows and the node statuses; a second report is byte-identical; prose loss
         rises in adapt more for r0 than r5.
partial: adapt[replay=r5] killed mid-line: a warning, the variant marked partial, exit 0;
         a recipe name full of markup is escaped.
errors:  a bad line mid-file, a line nested 100,000 deep, a blank line, a repeated step, a
         plan.json nested 100,000 deep, a missing plan, bad usage: exit 1 / 2 with file:line
         (or file and byte) messages.
"""
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
    expect(files == ["loss-ppl_code.val.svg", "loss-ppl_prose.val.svg", "lr.svg",
                     "train-loss-code.svg", "train-loss-prose.svg"], f"charts {files}")
    # Training loss per stream: only the variants whose chain trained on the stream.
    trained = {"train-loss-code.svg": [v for v in variants if v != "pretrain"]}
    charts = {}
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
    return charts


def check_html(out, models, states):
    root = ET.parse(os.path.join(out, "report.html")).getroot()
    expect(root.tag == XHTML + "html", f"report.html: root is {root.tag}")
    expect(len(list(root.iter(SVG + "svg"))) == 5, "report.html: five inline charts")
    table = next(t for t in root.iter(XHTML + "table") if t.get("id") == "final-metrics")
    rows = [tr.get("data-model") for tr in table.iter(XHTML + "tr") if tr.get("data-model")]
    expect(rows == models, f"final-metrics rows {rows}")
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


def errors(mixtape, work):
    run = os.path.join(work, "run")
    make_run(run)
    metrics = next(os.path.join(run, d, "metrics.jsonl") for d in sorted(os.listdir(run))
                   if d.startswith("pretrain-"))
    good = open(metrics).read().splitlines(keepends=True)
    deep = "[" * 100000 + "]" * 100000 + "\n"
    for what, lines, want in [
            ("bad line mid-file", good[:2] + [good[2][:40] + "\n"] + good[3:], f"{metrics}:3: byte 40: invalid JSON: "),
            ("a line nested 100,000 deep", good[:2] + [deep] + good[3:],
             f"{metrics}:3: byte 512: JSON nested deeper than 512 levels"),
            ("a blank line", good[:1] + ["\n"] + good[1:],
             f"{metrics}:2: a blank line; each line of metrics.jsonl is one record"),
            ("a repeated step", good[:4] + [good[2]] + good[4:],  # line 3 is the train record of step 1
             f"{metrics}:5: a second train record of node 'pretrain' step 1 (the first is on line 3)")]:
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
