"""How fast the command line answers: `edge-jepa --help`, an argument error, and `import edge_jepa`.

    python benchmarks/cli_startup.py                       # 7 runs each, median and max
    python benchmarks/cli_startup.py --runs 15 --json benchmarks/results/cli_startup.json

Target: under 1 s for --help and for an argument error (the package and the CLI import torch only inside the
commands that need it). Each run is a fresh interpreter (`sys.executable -m edge_jepa.cli.main ...`), so
the time includes Python's own start-up; `python -c pass` is measured as the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 1.0
CASES = {
    "python -c pass (floor)": [sys.executable, "-c", "pass"],
    "import edge_jepa": [sys.executable, "-c", "import edge_jepa"],
    "edge-jepa --help": [sys.executable, "-m", "edge_jepa.cli.main", "--help"],
    "edge-jepa export (missing argument)": [sys.executable, "-m", "edge_jepa.cli.main", "export"],
    "edge-jepa bench --help": [sys.executable, "-m", "edge_jepa.cli.main", "bench", "--help"],
}


def time_command(command: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write the measurements here")
    args = parser.parse_args(argv)
    results = {}
    for name, command in CASES.items():
        times = time_command(command, args.runs)
        results[name] = {"median_s": statistics.median(times), "max_s": max(times), "runs": args.runs}
        verdict = "" if "edge-jepa" not in name else ("  ok" if statistics.median(times) < TARGET_S else "  SLOW")
        print(f"{name:40s} median {statistics.median(times):.3f} s  max {max(times):.3f} s{verdict}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"target_s": TARGET_S, "python": sys.version.split()[0],
                                         "results": results}, indent=2) + "\n")
    slow = [n for n, r in results.items() if "edge-jepa" in n and r["median_s"] >= TARGET_S]
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
