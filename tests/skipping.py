"""How a test script says it could not check what it is for: exit 77, which ctest reports as
Skipped (the test sets SKIP_RETURN_CODE 77), never a Passed that checked nothing.

Under CI (the environment variable CI set, and not empty, 0 or false) what the repository
itself provides (tests/fixtures, the binaries of a full build) must be there: its absence is a
failure, exit 1, not a skip."""
import os
import sys

SKIP = 77
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def under_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def skip(why):
    """Exits 77 with the reason; under CI, exits 1: the test could not run what it must."""
    if under_ci():
        print(f"FAIL: {why} (CI is set: a test that cannot run is a failure there)")
        sys.exit(1)
    print(f"skipped: {why}")
    sys.exit(SKIP)


def fixture(name):
    """The path of tests/fixtures/NAME (MIXTAPE_FIXTURES overrides the folder); skips (fails
    under CI) when it is missing."""
    path = os.path.join(os.environ.get("MIXTAPE_FIXTURES") or FIXTURES, name)
    if not os.path.exists(path):
        skip(f"no fixture at {path}")
    return path
