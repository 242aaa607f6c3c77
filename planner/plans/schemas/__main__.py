"""``python -m planner.plans.schemas [--check]``: regenerate the committed JSON Schemas from the models
(``--check``: only report the stale ones, exit 1 if any)."""

from __future__ import annotations

import sys

from . import HERE, stale, write


def main(argv: list[str]) -> int:
    if "--check" in argv:
        bad = stale()
        for name in bad:
            print(f"stale: {HERE / name} (run python -m planner.plans.schemas)")
        return 1 if bad else 0
    for name in write():
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
