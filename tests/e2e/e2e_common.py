"""What the end-to-end scripts share: reading safetensors files and the closing report."""
import json, struct, sys


def read_safetensors(path):
    """(header dict without __metadata__, data bytes)"""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n:]


def finish(failures, total):
    """Prints each failure and the count of checks passed; exits 1 if any failed."""
    for f in failures:
        print("FAIL:", f)
    failed = min(len(failures), total)
    print(f"{total - failed} passed, {failed} failed")
    sys.exit(1 if failures else 0)
