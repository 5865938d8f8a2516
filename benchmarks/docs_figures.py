"""Regenerate the benchmark harness's figures and example reports shown in docs/benchmarks.md.

    python benchmarks/docs_figures.py            # everything (about 20 minutes on 2 cores)
    python benchmarks/docs_figures.py --only bandits_easy bench_model_digits

Runs each documented ``banditformer bench ...`` command into a fresh results folder, prints its
report, and copies its plots into docs/img under the names the page uses. The figures repeat
exactly for the same command and machine (the timings do not).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"

#: name -> (command, {plot file in the results folder: image in docs/img})
FIGURES: dict[str, tuple[str, dict[str, str]]] = {
    "bandits_easy": ("banditformer bench bandits --log-x", {"regret.png": "bench_bandits_easy.png"}),
    "bandits_linear": (
        "banditformer bench bandits --problem linear_contextual",
        {"regret.png": "bench_bandits_linear.png"},
    ),
    "bandits_wine": ("banditformer bench bandits --problem wine_bandit", {"regret.png": "bench_bandits_wine.png"}),
    "bench_model_digits": (
        "banditformer bench model --task digits --epochs 40 --lr 3e-3 --layers 4 "
        "--controllers static static_small random layerdrop dht --budgets 0.5 0.25 --lams 0.05 0.2 "
        "--dht-budgets 0.25 --warmup 0.25 --seeds 3 --workers 2",
        {"pareto.png": "bench_model_digits_pareto.png", "time.png": "bench_model_digits_time.png"},
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=None, help="regenerate only these")
    args = p.parse_args(argv)
    for name in args.only or FIGURES:
        command, plots = FIGURES[name]
        with tempfile.TemporaryDirectory() as out:
            words = shlex.split(command)
            cmd = [sys.executable, "-m", "banditformer.cli", *words[1:], "--quiet", "--out", out]
            print(f"$ {command}", flush=True)
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            print(proc.stdout, proc.stderr, sep="", flush=True)
            if proc.returncode != 0:
                print(f"{name}: exit status {proc.returncode}", file=sys.stderr)
                return 1
            (folder,) = Path(out).iterdir()
            for source, target in plots.items():
                shutil.copyfile(folder / source, IMG / target)
                print(f"  -> docs/img/{target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
