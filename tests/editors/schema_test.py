#!/usr/bin/env python3
"""The JSON schema of recipes (grammar/recipe.schema.json): `mixtape schema` prints the committed
file byte for byte; the schema is valid under the JSON Schema draft-07 meta-schema; every recipe
in recipes/ and the README's excerpt of the quickstart validate against it (recipes parsed with
Python's tomllib, as an editor's TOML parser reads them); and what the compiler's schema pass
refuses (an unknown section or key, a wrong type, a choice not among the choices, a missing
required key, a bad name) fails validation; each default the schema shows is a value of its
key's type. Without tomllib or the jsonschema package (Debian's python3-jsonschema, which
scripts/setup installs) it exits 77, skipped; under CI, 1.

usage: schema_test.py MIXTAPE"""
import copy, difflib, glob, os, re, subprocess, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import skipping  # noqa: E402

try:
    import tomllib
except ImportError:
    skipping.skip("no tomllib (Python 3.11 or later)")
try:
    import jsonschema
except ImportError:
    skipping.skip("no jsonschema package (apt-get install python3-jsonschema)")
import json

MIXTAPE = os.path.abspath(sys.argv[1])
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
COMMITTED = os.path.join(ROOT, "grammar", "recipe.schema.json")
failures = []

printed = subprocess.run([MIXTAPE, "schema"], capture_output=True, timeout=60)
with open(COMMITTED, "rb") as f:
    committed = f.read()
if printed.returncode != 0 or printed.stdout != committed:
    diff = difflib.unified_diff(committed.decode().splitlines(), printed.stdout.decode().splitlines(),
                                "grammar/recipe.schema.json", "mixtape schema", lineterm="")
    failures.append(f"`mixtape schema` (exit {printed.returncode}) is not grammar/recipe.schema.json; "
                    "regenerate it: build/tools/mixtape/mixtape schema > grammar/recipe.schema.json\n"
                    + "\n".join(list(diff)[:60]) + printed.stderr.decode())

schema = json.loads(printed.stdout or committed)
try:
    jsonschema.Draft7Validator.check_schema(schema)
except jsonschema.exceptions.SchemaError as e:
    failures.append(f"not a draft-07 schema: {e.message} at {list(e.absolute_path)}")
validator = jsonschema.Draft7Validator(schema)


def errors(doc):
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc)]


# Each key's default (keys.def's DEFAULT rows, which editors show) is a value of its type.
def defaults(node, where):
    if isinstance(node, dict):
        if "default" in node:
            yield where, node
        for key, child in node.items():
            yield from defaults(child, f"{where}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from defaults(child, f"{where}/{i}")


shown = list(defaults(schema, ""))
if not shown:
    failures.append("the schema shows no defaults")
for where, node in shown:
    if list(jsonschema.Draft7Validator(node).iter_errors(node["default"])):
        failures.append(f"{where}: the default {node['default']!r} is not a value of the key's type")

recipes = sorted(glob.glob(os.path.join(ROOT, "recipes", "*.toml")))
if not recipes:
    failures.append("no recipes in recipes/")
for path in recipes:
    with open(path, "rb") as f:
        found = errors(tomllib.load(f))
    if found:
        failures.append(f"{os.path.relpath(path, ROOT)} does not validate:\n  " + "\n  ".join(found))

# The README shows an excerpt of the quickstart: its lines are the recipe's, and it validates.
with open(os.path.join(ROOT, "README.md")) as f:
    excerpt = re.search(r"```toml\n(.*?)```", f.read(), re.S)
with open(os.path.join(ROOT, "recipes", "quickstart.toml")) as f:
    quickstart = set(f.read().splitlines())
if not excerpt:
    failures.append("README.md shows no ```toml excerpt of recipes/quickstart.toml")
else:
    strays = [line for line in excerpt.group(1).splitlines() if line and line not in quickstart]
    if strays:
        failures.append("README.md's excerpt has lines that recipes/quickstart.toml lacks:\n  " + "\n  ".join(strays))
    found = errors(tomllib.loads(excerpt.group(1)))
    if found:
        failures.append("README.md's excerpt does not validate:\n  " + "\n  ".join(found))

# What the compiler refuses, the schema refuses: each case edits the quickstart.
with open(os.path.join(ROOT, "recipes", "quickstart.toml"), "rb") as f:
    base = tomllib.load(f)


def case(what, edit):
    doc = copy.deepcopy(base)
    edit(doc)
    if not errors(doc):
        failures.append(f"the schema accepts {what}")


case("an unknown section", lambda d: d.update(modle={"family": "llama"}))
case("an unknown key in [model]", lambda d: d["model"].update(layer=2))
case("an unknown key in [[stage]]", lambda d: d["stage"][0].update(lr_schedule="cosine"))
case("an unknown key in [streams.NAME]", lambda d: d["streams"]["prose"].update(shard="synth:prose"))
case("an unknown key in an inline table", lambda d: d["eval"][0]["during"].update(each="1Mi"))
case("a string for an integer", lambda d: d["model"].update(layers="2"))
case("a number for a mixture", lambda d: d["stage"][0].update(mix=1.0))
case("a family not among the choices", lambda d: d["model"].update(family="llama3"))
case("a stage without tokens", lambda d: d["stage"][0].pop("tokens"))
case("a stage name that expressions cannot refer to", lambda d: d["stage"][0].update(name="pre train"))
case("[[stage]] as a table", lambda d: d.update(stage=d["stage"][0]))
case("a sweep axis that is not a table", lambda d: d["sweep"].update(replay="adapt.mix"))
case("a zip of one axis", lambda d: d["sweep"].update(zip=["replay"]))

if failures:
    print("FAIL:\n" + "\n".join(failures))
    sys.exit(1)
print(f"ok: schema is draft-07, {len(shown)} defaults, {len(recipes)} recipes and the README's excerpt validate, "
      "13 refusals")
