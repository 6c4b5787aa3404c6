"""Run every benchmark: ``python -m bench --scale small|full [--only NAME ...]``.

Each ``bench/bench_*.py`` module exposes ``main(scale: str) -> dict`` that prints
its own figures (and the ratio against its peer, measured in the same run) and
returns them. This runner prints a final JSON summary, which is what
BENCHMARKS.md records.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def build_parser() -> argparse.ArgumentParser:
    """The runner's flags (a function, so the docs test can check the flags the docs name)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=["small", "full"], default="small")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names, e.g. render spoke")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        names = [n for n in names if n in set(args.only)]
    summary: dict[str, object] = {}
    failed = False
    for name in names:
        print(f"\n=== bench {name} (scale {args.scale}) ===", flush=True)
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.bench_{name}")
            summary[name] = module.main(args.scale)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            summary[name] = {"error": traceback.format_exc(limit=1).strip().splitlines()[-1]}
            failed = True
        print(f"--- {name}: {time.perf_counter() - started:.1f} s", flush=True)
    text = json.dumps(summary, indent=2, default=str)
    print("\n=== summary ===\n" + text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
