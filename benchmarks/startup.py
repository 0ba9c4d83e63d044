"""Start-up time of the ``zoo`` command: the median wall time of a few fresh processes for ``zoo --help``,
``zoo list`` and ``zoo info euler``, next to ``python -c "import torch"``, and which heavy modules each imports.

    python benchmarks/startup.py            # 5 runs each
    python benchmarks/startup.py --runs 9

The goal is ``zoo --help`` under 2 s: it must not import torch; ``zoo list`` and ``zoo info`` need the registry
(torch) but not torch-fidelity, torchvision or diffusers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HEAVY = ("torch", "torch_fidelity", "torchvision", "diffusers")
PROBE = ("import json, sys\nfrom samplerzoo.cli import run\nrun(sys.argv[1:])\n"
         f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))), file=sys.stderr)")
BASELINE = 'python -c "import torch"'
COMMANDS = {"zoo --help": ["--help"], "zoo list": ["list"], "zoo info euler": ["info", "euler"]}


def seconds(argv: list[str], runs: int) -> float:
    """The median wall time of ``runs`` fresh processes (after one warm-up run that fills the OS file cache)."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def imported(args: list[str]) -> list[str]:
    run = subprocess.run([sys.executable, "-c", PROBE, *args], check=True, capture_output=True, text=True)
    return json.loads(run.stderr.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    zoo = os.path.join(os.path.dirname(sys.executable), "zoo")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}; median of {args.runs} fresh processes")
    print(f"{'command':<28} {'seconds':>8}  heavy modules imported")
    baseline = seconds([sys.executable, "-c", "import torch"], args.runs)
    print(f"{BASELINE:<28} {baseline:>8.2f}  torch")
    for name, command in COMMANDS.items():
        print(f"{name:<28} {seconds([zoo, *command], args.runs):>8.2f}  {', '.join(imported(command)) or 'none'}")


if __name__ == "__main__":
    main()
