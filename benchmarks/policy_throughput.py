"""Decisions per second of every registered bandit policy, with MABWiser and SMPyBandits side by side.

What it measures: for each policy, device and batch size, the throughput of one bandit round --
``select`` a batch of decisions, then ``update`` the policy with their rewards -- on a K=10-armed
Bernoulli problem (arm means ``BERNOULLI_INSTANCES["ten"]``). Combinatorial policies choose k=3
of N=10 base arms per row and get one Bernoulli reward per base arm (semi-bandit feedback);
contextual policies get random Gaussian contexts of dimension d=8. Contexts and the per-arm
rewards are drawn up front into a small pool that the loop cycles through, so the clock measures
the policy: the only non-policy work inside the timed loop is one ``gather`` that picks the played
arms' rewards out of the pool. Each cell is warmed up, then run in doubling chunks of iterations
(the device is synchronized at the end of every chunk) until at least ``--seconds`` have elapsed;
with ``--repeats R`` the fastest of R such windows is reported (useful on a busy machine)::

    decisions/s = batch * iterations / seconds

At batch 1 our policies run twice: through the batched API with one row (``select(n=1)`` /
``update``, path ``batch``) and through ``policy.stepper()`` (path ``stepper``: int arms, scalar
rewards, the same rounds; see :mod:`banditformer.core.stepper`), which is what a loop of one row
at a time uses and what the peers' batch-1 cells are compared with.

When MABWiser is installed, its UCB1 (alpha=1), Thompson sampling, epsilon-greedy (epsilon=0.1)
and LinUCB (alpha=1, l2_lambda=1) run on the same problem and reward pool: fitted once on one
pull of every arm, then per iteration ``predict`` one decision per row (dummy one-column
contexts, or the pool's contexts for LinUCB: one batched ``predict`` of ``batch`` rows, as ours
is one batched ``select``) and ``partial_fit`` on them. When SMPyBandits is installed (it needs
SciPy's ``btdtri``, which new SciPy calls ``betaincinv``: aliased here), its UCB (the UCB1 index),
Thompson (Beta posteriors) and EpsilonGreedy (epsilon=0.1) run on the same pool: it has no batched
API, so a round of ``batch`` rows is ``batch`` calls of ``choice()`` and ``getReward``. The peers
run on the CPU only and are timed the same way (a window always has at least one iteration, so a
slow cell stops at the first chunk boundary after ``--seconds``).
The comparison table gives ours / peer for each pair (above 1: ours is faster; at batch 1 ours is
the stepper) and the issue-15 target of each cell (batch 1: at least SMPyBandits; batch 4096: at
least 100x MABWiser for ucb1 and epsilon_greedy, 20x for thompson_beta; linucb: at least 3x
MABWiser at every batch size). ``--plot PATH`` draws decisions/s against the batch size, log-log,
one line per library and policy.

Run from the repository root (with ``pip install -e .[bench]`` for MABWiser)::

    python benchmarks/policy_throughput.py
    python benchmarks/policy_throughput.py --batches 1 256 --seconds 0.5 --policies ucb1 linucb
    python benchmarks/policy_throughput.py --devices cpu --no-mabwiser --json results.json
    python benchmarks/policy_throughput.py --threads 1 --repeats 3     # steadier on a shared machine
    python benchmarks/policy_throughput.py --threads 1 --repeats 3 --policies ucb1 thompson_beta \
        epsilon_greedy linucb --batches 1 16 256 4096 --plot docs/img/throughput.png
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from banditformer import CombinatorialPolicy, Policy, list_policies, make_backend, set_value_checks
from banditformer.bandits import compiled_rounds, compiled_rounds_enabled
from banditformer.bench.specs import make_spec_policy, parse_policy, spec_names
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import PolicyBase
from banditformer.problems import BERNOULLI_INSTANCES, BernoulliProblem

NUM_ARMS = 10  # K arms, or N base arms for a combinatorial policy
TOP_K = 3  # base arms chosen per row by a combinatorial policy
CONTEXT_DIM = 8
POOL = 8  # distinct (context, reward) batches cycled through by the timed loop
WARMUP_ITERS = 3
SEED = 0
MEANS = BERNOULLI_INSTANCES["ten"]
#: Our policy -> (MABWiser label, MABWiser learning-policy factory name and kwargs).
MABWISER_PAIRS: dict[str, tuple[str, str, dict[str, float]]] = {
    "ucb1": ("UCB1(alpha=1)", "UCB1", {"alpha": 1.0}),
    "thompson_beta": ("ThompsonSampling", "ThompsonSampling", {}),
    "epsilon_greedy": ("EpsilonGreedy(eps=0.1)", "EpsilonGreedy", {"epsilon": 0.1}),
    "linucb": ("LinUCB(alpha=1)", "LinUCB", {"alpha": 1.0, "l2_lambda": 1.0}),
}
#: Our policy -> (SMPyBandits label, class name in SMPyBandits.Policies, kwargs after nbArms).
SMPY_PAIRS: dict[str, tuple[str, str, dict[str, float]]] = {
    "ucb1": ("UCB", "UCB", {}),
    "thompson_beta": ("Thompson", "Thompson", {}),
    "epsilon_greedy": ("EpsilonGreedy(eps=0.1)", "EpsilonGreedy", {"epsilon": 0.1}),
}
#: Issue 15's targets: (policy, batch) -> (peer library, least ours / peer).
TARGETS: dict[tuple[str, int], tuple[str, float]] = {
    ("ucb1", 1): ("smpybandits", 1.0),
    ("thompson_beta", 1): ("smpybandits", 1.0),
    ("epsilon_greedy", 1): ("smpybandits", 1.0),
    ("ucb1", 4096): ("mabwiser", 100.0),
    ("epsilon_greedy", 4096): ("mabwiser", 100.0),
    ("thompson_beta", 4096): ("mabwiser", 20.0),
}
LINUCB_TARGET = 3.0  # at least 3x MABWiser's LinUCB at every batch size


@dataclass
class Result:
    """One cell of the throughput table."""

    library: str  # "banditformer", "mabwiser" or "smpybandits"
    policy: str
    device: str
    batch: int
    iterations: int
    seconds: float
    decisions_per_s: float
    error: str | None = None
    path: str = "batch"  # ours: "batch" (select/update) or "stepper" (policy.stepper(), batch 1)


@dataclass
class Report:
    machine: dict[str, Any]
    settings: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info(devices: Sequence[str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices and torch.cuda.is_available() else None,
    }
    try:
        import mabwiser

        info["mabwiser"] = getattr(mabwiser, "__version__", "installed")
    except ImportError:
        info["mabwiser"] = None
    info["smpybandits"] = smpy_version()
    return info


# -------------------------------------------------------------------------------------------- timing
def time_loop(
    step: Callable[[int], None], seconds: float, sync: Callable[[], None], repeats: int = 1
) -> tuple[int, float]:
    """Warm up, then time ``repeats`` windows of at least ``seconds`` each; return the fastest
    window's (iterations, seconds).

    A window runs ``step(i)`` in chunks (each at most doubling the iterations so far) until
    ``seconds`` have elapsed. The device is synchronized before the clock starts and at the end
    of each chunk, so queued GPU work is counted without a synchronization per iteration.
    """
    for i in range(WARMUP_ITERS):
        step(i)
    done = WARMUP_ITERS
    best: tuple[int, float] | None = None
    for _ in range(max(1, repeats)):
        total_iters, total_s, chunk = 0, 0.0, 1
        while total_s < seconds:
            sync()
            start = time.perf_counter()
            for i in range(chunk):
                step(done + i)
            sync()
            total_s += time.perf_counter() - start
            total_iters += chunk
            done += chunk
            remaining = seconds - total_s
            chunk = max(1, min(total_iters, int(remaining * total_iters / total_s) + 1)) if remaining > 0 else 1
        if best is None or total_iters / total_s > best[0] / best[1]:
            best = (total_iters, total_s)
    assert best is not None
    return best


def _no_sync() -> None:
    return None


def device_sync(device: str) -> Callable[[], None]:
    if device == "cpu":
        return _no_sync
    return make_backend("cuda").synchronize


# ------------------------------------------------------------------------------------------ problem
@dataclass
class Pool:
    """Pre-drawn data: ``rewards[j]`` is a (batch, K) 0/1 table, ``contexts[j]`` a (batch, d) tensor."""

    rewards: list[Tensor]
    contexts: list[Tensor]


def make_pool(batch: int, device: str) -> Pool:
    problem = BernoulliProblem(MEANS, seed=SEED)
    every_arm = torch.arange(NUM_ARMS).repeat(batch)
    rewards = [problem.pull(every_arm).view(batch, NUM_ARMS).to(device) for _ in range(POOL)]
    gen = torch.Generator().manual_seed(SEED + 1)
    contexts = [torch.randn(batch, CONTEXT_DIM, generator=gen).to(device) for _ in range(POOL)]
    return Pool(rewards, contexts)


def policy_step(policy: PolicyBase, pool: Pool, batch: int) -> Callable[[int], None]:
    """One select + update round of ``policy`` on pool entry ``i % POOL``."""
    contextual = policy.is_contextual
    if isinstance(policy, CombinatorialPolicy):
        comb = policy

        def step(i: int) -> None:
            j = i % POOL
            ctx = pool.contexts[j] if contextual else None
            mask = comb.select(ctx, k=TOP_K, n=batch)
            comb.update(mask, pool.rewards[j], ctx)

        return step

    if not isinstance(policy, Policy):
        raise TypeError(f"expected a Policy or CombinatorialPolicy, got {type(policy).__name__}")
    single = policy

    def step_single(i: int) -> None:
        j = i % POOL
        ctx = pool.contexts[j] if contextual else None
        arms = single.select(ctx, n=batch)
        rewards = pool.rewards[j].gather(1, arms.unsqueeze(1)).squeeze(1)
        single.update(arms, rewards, ctx)

    return step_single


def stepper_step(policy: Policy, pool: Pool) -> Callable[[int], None]:
    """One round of ``policy.stepper()``: an int arm, then its float reward (pool entry ``i % POOL``,
    row 0; contexts as 1-dim tensors)."""
    step = policy.stepper()
    contextual = policy.is_contextual
    rewards = [r[0].tolist() for r in pool.rewards]
    contexts = [c[0] for c in pool.contexts]

    def one(i: int) -> None:
        j = i % POOL
        ctx = contexts[j] if contextual else None
        arm = step.select(ctx)
        step.update(arm, rewards[j][arm], ctx)

    return one


def bench_stepper(name: str, seconds: float, repeats: int) -> Result | None:
    """The batch-1 cell of ``policy.stepper()`` on the CPU; ``None`` for combinatorial policies."""
    try:
        policy = make_spec_policy(name, num_arms=NUM_ARMS, context_dim=CONTEXT_DIM, seed=SEED)
        if not isinstance(policy, Policy):
            return None
        iters, secs = time_loop(stepper_step(policy, make_pool(1, "cpu")), seconds, _no_sync, repeats)
    except Exception as exc:
        return Result("banditformer", name, "cpu", 1, 0, 0.0, float("nan"), f"{type(exc).__name__}: {exc}", "stepper")
    return Result("banditformer", name, "cpu", 1, iters, secs, iters / secs, path="stepper")


def bench_policy(name: str, device: str, batch: int, seconds: float, repeats: int) -> Result:
    try:
        policy = make_spec_policy(name, num_arms=NUM_ARMS, context_dim=CONTEXT_DIM, seed=SEED).to(device)
        step = policy_step(policy, make_pool(batch, device), batch)
        iters, secs = time_loop(step, seconds, device_sync(device), repeats)
    except Exception as exc:  # report and go on with the other cells
        return Result("banditformer", name, device, batch, 0, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
    return Result("banditformer", name, device, batch, iters, secs, batch * iters / secs)


# ---------------------------------------------------------------------------------------- MABWiser
def mabwiser_available() -> bool:
    try:
        import mabwiser.mab  # noqa: F401
    except ImportError:
        return False
    return True


def check_mabwiser_predict() -> bool:
    """True when ``predict`` with n dummy rows returns n decisions for a context-free policy."""
    from mabwiser.mab import MAB, LearningPolicy

    mab = MAB(arms=list(range(NUM_ARMS)), learning_policy=LearningPolicy.EpsilonGreedy(epsilon=0.1), seed=SEED)
    mab.fit(list(range(NUM_ARMS)), [0.0] * NUM_ARMS)
    out = mab.predict(np.zeros((5, 1)))
    return isinstance(out, list) and len(out) == 5


def bench_mabwiser(ours: str, batch: int, seconds: float, repeats: int, per_row: bool) -> Result:
    from mabwiser.mab import MAB, LearningPolicy

    label, factory, kwargs = MABWISER_PAIRS[ours]
    contextual = ours == "linucb"
    try:
        mab = MAB(arms=list(range(NUM_ARMS)), learning_policy=getattr(LearningPolicy, factory)(**kwargs), seed=SEED)
        pool = make_pool(batch, "cpu")
        tables = [r.numpy() for r in pool.rewards]
        contexts = [c.double().numpy() for c in pool.contexts]
        first = BernoulliProblem(MEANS, seed=SEED + 2).pull(torch.arange(NUM_ARMS))
        if contextual:
            warm = torch.randn(NUM_ARMS, CONTEXT_DIM, generator=torch.Generator().manual_seed(SEED + 3)).double()
            mab.fit(list(range(NUM_ARMS)), first.tolist(), warm.numpy())
        else:
            mab.fit(list(range(NUM_ARMS)), first.tolist())
        dummy = np.zeros((batch, 1))
        rows = np.arange(batch)

        def predict(j: int) -> np.ndarray:
            if contextual:
                return np.atleast_1d(np.asarray(mab.predict(contexts[j])))
            if batch == 1:
                return np.asarray([mab.predict()])
            if per_row:
                return np.asarray([mab.predict() for _ in range(batch)])
            return np.asarray(mab.predict(dummy))

        def step(i: int) -> None:
            j = i % POOL
            decisions = predict(j)
            rewards = tables[j][rows, decisions]
            if contextual:
                mab.partial_fit(decisions, rewards, contexts[j])
            else:
                mab.partial_fit(decisions, rewards)

        iters, secs = time_loop(step, seconds, _no_sync, repeats)
    except Exception as exc:
        return Result("mabwiser", label, "cpu", batch, 0, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
    return Result("mabwiser", label, "cpu", batch, iters, secs, batch * iters / secs)


# ------------------------------------------------------------------------------------- SMPyBandits
def _import_smpy() -> Any:
    """``SMPyBandits.Policies``, with SciPy's ``btdtri`` aliased to ``betaincinv`` (renamed in
    SciPy 1.12+; SMPyBandits 0.9.7 imports the old name), its import-time chatter silenced."""
    import contextlib
    import io
    import warnings

    import scipy.special

    if not hasattr(scipy.special, "btdtri"):
        scipy.special.btdtri = scipy.special.betaincinv
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        import SMPyBandits.Policies as policies
    return policies


def smpy_version() -> str | None:
    try:
        _import_smpy()
        from importlib.metadata import version

        return version("SMPyBandits")
    except Exception:  # not installed, or it does not import here
        return None


def bench_smpy(ours: str, batch: int, seconds: float, repeats: int) -> Result:
    label, cls, kwargs = SMPY_PAIRS[ours]
    try:
        policies = _import_smpy()
        player = getattr(policies, cls)(NUM_ARMS, **kwargs)
        player.startGame()
        pool = make_pool(batch, "cpu")
        tables = [r.tolist() for r in pool.rewards]
        choice, get_reward = player.choice, player.getReward

        def step(i: int) -> None:
            table = tables[i % POOL]
            for row in range(batch):  # no batched API: one choice and one reward per row
                arm = choice()
                get_reward(arm, table[row][arm])

        iters, secs = time_loop(step, seconds, _no_sync, repeats)
    except Exception as exc:
        return Result("smpybandits", label, "cpu", batch, 0, 0.0, float("nan"), f"{type(exc).__name__}: {exc}")
    return Result("smpybandits", label, "cpu", batch, iters, secs, batch * iters / secs)


# ------------------------------------------------------------------------------------------ output
def fmt_rate(x: float) -> str:
    return "error" if x != x else f"{x:,.0f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(s.rjust(w) if r else s.ljust(w) for s, w, r in zip(cells, widths, right, strict=True)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def print_report(report: Report) -> None:
    print("Machine")
    for key, value in report.machine.items():
        print(f"  {key + ':':15} {value}")
    s = report.settings
    print(
        f"Problem: Bernoulli means {MEANS}, K={NUM_ARMS} (combinatorial: N={NUM_ARMS}, k={TOP_K}), "
        f"context_dim={CONTEXT_DIM}\nTiming: {WARMUP_ITERS} warm-up rounds, then the fastest of "
        f"{s['repeats']} window(s) of >= {s['seconds']} s per cell"
    )
    print("decisions/s = batch * (select + update rounds) / seconds; combinatorial: one decision = one k-subset\n")

    ours = [r for r in report.results if r.library == "banditformer"]
    rows = [
        [r.policy, r.path, r.device, str(r.batch), str(r.iterations), f"{r.seconds:.3f}", fmt_rate(r.decisions_per_s)]
        for r in ours
    ]
    print("banditformer select+update throughput")
    headers = ["policy", "path", "device", "batch", "iters", "seconds", "decisions/s"]
    print(table(headers, rows, [False, False, False, *[True] * 4]))

    crows = comparison_rows(report)
    if crows:
        print("\nbanditformer vs the peers (peers on cpu; ours at batch 1 is the stepper)")
        headers = ["ours", "batch", "ours dec/s", "MABWiser dec/s", "ours/MABWiser", "SMPy dec/s", "ours/SMPy",
                   "target", "met"]  # fmt: skip
        print(table(headers, crows, [False, *[True] * 6, False, False]))

    errors = [r for r in report.results if r.error]
    if errors:
        print("\nErrors")
        for r in errors:
            print(f"  {r.library} {r.policy} {r.device} batch={r.batch}: {r.error}")
    if report.notes:
        print("\nNotes")
        for note in report.notes:
            print(f"  - {note}")


def ours_for_peers(report: Report) -> dict[tuple[str, int], Result]:
    """Our CPU cell per (policy, batch) that the peers are compared with: the stepper at batch 1
    where there is one, else the batched path."""
    best: dict[tuple[str, int], Result] = {}
    for r in report.results:
        if r.library != "banditformer" or r.device != "cpu":
            continue
        key = (r.policy, r.batch)
        if key not in best or r.path == "stepper":
            best[key] = r
    return best


def comparison_rows(report: Report) -> list[list[str]]:
    mab = {(r.policy, r.batch): r for r in report.results if r.library == "mabwiser"}
    smpy = {(r.policy, r.batch): r for r in report.results if r.library == "smpybandits"}
    rows = []
    for (spec, batch), r in ours_for_peers(report).items():
        policy = parse_policy(spec)[0]  # a spec's options do not change whom it is compared with
        m = mab.get((MABWISER_PAIRS[policy][0], batch)) if policy in MABWISER_PAIRS else None
        p = smpy.get((SMPY_PAIRS[policy][0], batch)) if policy in SMPY_PAIRS else None
        if m is None and p is None:
            continue
        ratios = {
            "mabwiser": r.decisions_per_s / m.decisions_per_s if m is not None else float("nan"),
            "smpybandits": r.decisions_per_s / p.decisions_per_s if p is not None else float("nan"),
        }
        target = TARGETS.get((policy, batch))
        if policy == "linucb":
            target = ("mabwiser", LINUCB_TARGET)
        if target is None or ratios[target[0]] != ratios[target[0]]:
            goal, met = "", ""
        else:
            goal = f">= {target[1]:g}x {'MABWiser' if target[0] == 'mabwiser' else 'SMPy'}"
            met = "yes" if ratios[target[0]] >= target[1] else "no"
        rows.append([
            spec, str(batch), fmt_rate(r.decisions_per_s),
            fmt_rate(m.decisions_per_s) if m else "", f"{ratios['mabwiser']:.3g}x" if m else "",
            fmt_rate(p.decisions_per_s) if p else "", f"{ratios['smpybandits']:.3g}x" if p else "",
            goal, met,
        ])  # fmt: skip
    return rows


def plot_report(report: Report, path: str) -> None:
    """Decisions/s against batch size, log-log: one line per library and policy, a colour per
    policy and a line style per library (ours: the CPU batched path, with the stepper's batch-1
    point drawn as a star)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours_of = {label: ours for ours, (label, _, _) in MABWISER_PAIRS.items()}
    ours_of_smpy = {label: ours for ours, (label, _, _) in SMPY_PAIRS.items()}
    compared = list(dict.fromkeys([*MABWISER_PAIRS, *SMPY_PAIRS]))
    lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
    steppers: dict[str, float] = {}
    for r in report.results:
        if r.error or r.device != "cpu":
            continue
        if r.library == "banditformer":
            if parse_policy(r.policy)[0] not in compared:
                continue
            if r.path == "stepper":
                steppers[r.policy] = r.decisions_per_s
                continue
            policy = r.policy
        else:
            policy = (ours_of if r.library == "mabwiser" else ours_of_smpy).get(r.policy, r.policy)
        lines.setdefault((r.library, policy), []).append((r.batch, r.decisions_per_s))
    colours = dict(zip(compared, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    styles = {"banditformer": ("-", "o"), "mabwiser": ("--", "s"), "smpybandits": (":", "^")}
    fig, ax = plt.subplots(figsize=(8.5, 6))
    for (library, policy), points in sorted(lines.items()):
        points.sort()
        style, marker = styles.get(library, ("-", "o"))
        ax.plot(*zip(*points, strict=True), linestyle=style, marker=marker, color=colours.get(parse_policy(policy)[0]),
                label=f"{library}: {policy}")  # fmt: skip
    for policy, rate in steppers.items():
        ax.plot([1], [rate], marker="*", markersize=14, linestyle="none", color=colours.get(parse_policy(policy)[0]),
                markeredgecolor="black", label=f"banditformer: {policy}, stepper")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (rows per select + update round)")
    ax.set_ylabel("decisions / s")
    m = report.machine
    ax.set_title(
        f"Policy throughput, K={NUM_ARMS}: ours solid, MABWiser dashed, SMPyBandits dotted\n"
        f"{m['cpu']}, {m['torch_threads']} torch thread(s), torch {m['torch']}",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend below the axes included
    plt.close(fig)


# -------------------------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256, 4096], help="batch sizes (rows per round)")
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum timed seconds per cell")
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed windows per cell; the fastest is reported (damps noise)"
    )
    parser.add_argument(
        "--policies", nargs="+", default=None,
        help="policy names, each optionally with options (thompson_beta:draws=matched); default: every registered one",
    )  # fmt: skip
    parser.add_argument(
        "--devices", nargs="+", default=None, choices=["cpu", "cuda"], help="default: cpu, plus cuda if available"
    )
    parser.add_argument("--no-mabwiser", action="store_true", help="skip the MABWiser comparison")
    parser.add_argument("--no-smpy", action="store_true", help="skip the SMPyBandits comparison")
    parser.add_argument(
        "--no-stepper", action="store_true", help="skip the batch-1 cells of policy.stepper() (the lean path)"
    )
    parser.add_argument("--plot", metavar="PATH", default=None, help="draw decisions/s against batch size (PNG)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    parser.add_argument(
        "--no-value-checks",
        action="store_true",
        help="time with banditformer.set_value_checks(False) (no finite/range checks, no host sync per call)",
    )
    parser.add_argument(
        "--no-compiled",
        action="store_true",
        help="time the torch path: banditformer.bandits.compiled_rounds(False) (no numba kernels)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with compiled_rounds(False) if args.no_compiled else contextlib.nullcontext():
        return run(args)


def run(args: argparse.Namespace) -> int:
    """The benchmark of :func:`main`, on parsed arguments."""
    notes: list[str] = []
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        # the same for the BLAS pools of NumPy and SciPy (MABWiser's LinUCB, numba's np.dot)
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            notes.append("threadpoolctl is not installed: NumPy's and SciPy's BLAS use their own thread count")
        else:
            threadpool_limits(args.threads)
    if args.no_compiled:
        notes.append("compiled rounds off (banditformer.bandits.compiled_rounds(False)): the torch path")
    elif not compiled_rounds_enabled():
        notes.append("compiled rounds unavailable (numba is not installed): the torch path")
    if args.no_value_checks:
        set_value_checks(False)
        notes.append("value checks off (banditformer.set_value_checks(False)): shape/dtype/device checks only")

    registered = list_policies()
    policies = args.policies or registered
    try:
        names = spec_names(policies)  # each a registered name, optionally with options: `name:key=value,...`
    except InputValidationError as exc:
        print(f"--policies: {exc}; registered: {registered}", file=sys.stderr)
        return 2

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if torch.get_num_threads() > 1 and load >= 0.5:
        notes.append(
            f"load average {load:.2f} at start: other processes compete for the CPU, and torch's "
            f"{torch.get_num_threads()} intra-op threads can then slow down many-fold; "
            "--threads 1 --repeats 3 is steadier"
        )

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    if "cuda" in devices and not torch.cuda.is_available():
        notes.append("cuda requested but torch.cuda.is_available() is False: cuda cells skipped")
        devices = [d for d in devices if d != "cuda"]

    report = Report(
        machine=machine_info(devices),
        settings={
            "batches": args.batches,
            "seconds": args.seconds,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "devices": devices,
            "policies": policies,
            "value_checks": not args.no_value_checks,
            "compiled_rounds": compiled_rounds_enabled(),
        },
        notes=notes,
    )

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib (pip install -e .[bench])", file=sys.stderr)
            return 2
        parent = os.path.dirname(os.path.abspath(args.plot))
        if not os.access(parent, os.W_OK):
            print(f"--plot: expected a writable folder, got {parent}", file=sys.stderr)
            return 2

    for device in devices:
        for name in policies:
            for batch in args.batches:
                report.results.append(bench_policy(name, device, batch, args.seconds, args.repeats))
                if device == "cpu" and batch == 1 and not args.no_stepper:
                    cell = bench_stepper(name, args.seconds, args.repeats)
                    if cell is not None:
                        report.results.append(cell)

    compare = [p for p in dict.fromkeys(names) if p in MABWISER_PAIRS]  # each peer once, for every spec of it
    if args.no_mabwiser:
        notes.append("MABWiser comparison skipped (--no-mabwiser)")
    elif not compare:
        notes.append(f"MABWiser comparison skipped: none of {sorted(MABWISER_PAIRS)} selected")
    elif not mabwiser_available():
        notes.append("MABWiser not installed (pip install mabwiser): comparison skipped")
    else:
        per_row = not check_mabwiser_predict()
        if per_row:
            notes.append("MABWiser predict(n dummy rows) did not return n decisions: looping predict() per row")
        else:
            notes.append(
                "MABWiser: predict(n x 1 dummy contexts) returns one decision per row; batch 1 uses predict() (scalar)"
            )
        for name in compare:
            for batch in args.batches:
                report.results.append(bench_mabwiser(name, batch, args.seconds, args.repeats, per_row))

    smpy = [p for p in dict.fromkeys(names) if p in SMPY_PAIRS]
    if args.no_smpy:
        notes.append("SMPyBandits comparison skipped (--no-smpy)")
    elif smpy and smpy_version() is None:
        notes.append("SMPyBandits not installed (pip install SMPyBandits): comparison skipped")
    elif smpy:
        np.random.seed(SEED)  # SMPyBandits draws from NumPy's global generator
        notes.append("SMPyBandits: no batched API; a round of `batch` rows is `batch` choice() + getReward() calls")
        report.machine["smpybandits"] = smpy_version()
        for name in smpy:
            for batch in args.batches:
                report.results.append(bench_smpy(name, batch, args.seconds, args.repeats))

    print_report(report)
    if args.plot:
        plot_report(report, args.plot)
        print(f"\nwrote {args.plot}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "machine": report.machine,
                    "settings": report.settings,
                    "results": [asdict(r) for r in report.results],
                    "notes": report.notes,
                },
                f,
                indent=2,
            )
        print(f"\nwrote {args.json}")
    return 1 if any(r.error for r in report.results) else 0


if __name__ == "__main__":
    sys.exit(main())
