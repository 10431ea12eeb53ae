"""Run the benchmarks: ``python -m bench [NAME ...] [--quick] [--json FILE]``.

Each ``bench/bench_<name>.py`` exposes ``run(quick: bool) -> list[dict]``; every dict holds
``name``, ``value``, ``unit``, ``baseline``, ``baseline_name`` and ``goal``. Baselines are measured
in the same run, on the same machine, so the ratio means something on a noisy machine where the
absolute figure does not.
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys
import time
import traceback

import orjson

HERE = pathlib.Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def format_row(row: dict) -> str:
    baseline = row.get("baseline")
    ratio = row["value"] / baseline if baseline else float("nan")
    return (
        f"  {row['name']:<52} {row['value']:>12.4g} {row['unit']:<8} "
        f"{row.get('baseline_name', '-'):<28} {baseline if baseline is not None else float('nan'):>12.4g} "
        f"{ratio:>8.3f}  {row.get('goal', '')}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default all: {', '.join(available())})")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(
            f"bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(available())}",
            file=sys.stderr,
        )
        return 2
    results, failed = {}, []
    header = (
        f"  {'figure':<52} {'value':>12} {'unit':<8} {'baseline':<28} {'base value':>12} {'ratio':>8}  goal"
    )
    for name in names:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            rows = importlib.import_module(f"bench.bench_{name}").run(quick=args.quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        print(header)
        for row in rows:
            print(format_row(row), flush=True)
        results[name] = rows
        print(f"   ({time.perf_counter() - start:.1f} s)")
    if args.json:
        pathlib.Path(args.json).write_bytes(
            orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
        )
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
