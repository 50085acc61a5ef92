"""Run every benchmark (or those named on the command line) and write bench/results.json:
for each, its name, figure, unit, the baseline's figure measured in the same run, and the ratio."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

BENCHMARKS = ("bench.inventory", "bench.autoprotect", "bench.scheduled", "bench.retention", "bench.restore",
              "bench.drill", "bench.replication", "bench.replica_drill", "bench.report_page")
RESULTS = Path(__file__).resolve().parent / "results.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("only", nargs="*", help="module names under bench/ to run (default: all)")
    args = parser.parse_args(argv)
    modules = [m for m in BENCHMARKS if not args.only or m.split(".")[-1] in args.only]
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"results": []}
    results = {r["name"]: r for r in previous.get("results", [])}
    for name in modules:
        module = importlib.import_module(name)
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}", flush=True)
        for result in module.run():
            results[result["name"]] = result
            print(f"   {result['name']}: {result['figure']:.4g} {result['unit']} vs baseline "
                  f"{result['baseline_figure']:.4g} ({result['baseline']}) → ratio {result['ratio']:.3f}", flush=True)
    RESULTS.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": sorted(results.values(), key=lambda r: r["name"]),
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
