#!/usr/bin/env python
"""How two runs of ``ganzoo bench models`` agree: every ratio of run B against run A, for each estimator.

    .venv/bin/python scripts/compare_bench.py A/bench-models.json B/bench-models.json

Prints one line per row present in both (same group, same name): the paired median ratio (what the tables show) and
the ratio of minima (recorded beside it), each as A -> B and the change, then the largest change per estimator.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ganzoo_core.bench import compare_runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args(argv)
    runs = []
    for path in (args.a, args.b):
        try:
            runs.append(json.loads(path.read_text())["rows"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"compare_bench: {path}: not a ganzoo bench JSON ({type(err).__name__}: {err})", file=sys.stderr)
            return 2
    rows = compare_runs(*runs)
    if not rows:
        print("compare_bench: no row is in both runs", file=sys.stderr)
        return 2
    keys = ("ratio", "ratio_of_minima")
    width = max(len(f"{r['group']}: {r['name']}") for r in rows)
    for r in rows:
        cells = [f"{r[k]['a']:5.2f} -> {r[k]['b']:5.2f} ({r[k]['change']:+6.1%})" if k in r else f"{'-':>24}" for k in keys]
        print(f"{r['group'] + ': ' + r['name']:<{width}}  " + "  ".join(cells))
    for k in keys:
        changes = [abs(r[k]["change"]) for r in rows if k in r]
        if changes:
            print(f"{k}: largest change {max(changes):.1%}, median {sorted(changes)[len(changes) // 2]:.1%} "
                  f"over {len(changes)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
