"""The bandit benchmark: what to run (:class:`BanditBenchConfig`) and the runner
(:func:`run_bandits`): policies x seeds on a registered problem, with regret curves, confidence
intervals, time per decision and the Lai-Robbins lower bound on Bernoulli problems.

By default every registered policy that can play the problem runs (:mod:`banditformer.bench.compat`).
Every seed is an independent run; the runs of one policy execute together as the groups of one
batched policy, so a round is one ``select``/``update`` of ``seeds`` rows, and every policy faces
the same reward stream. Policies that cannot hold groups (``supports_groups = False``) keep one
instance per seed instead, on the same stream. ``seed_block`` splits the seeds into blocks, each
such a batched run with its own stream. A policy that raises is reported by name with its error
and the others still run. ``workers`` spreads the policies' seed blocks (and MABWiser's per-seed
runs, :mod:`banditformer.bench.mabwiser`) over processes; the numbers do not depend on it.

The configuration is defined in :mod:`banditformer.bench.config`. The report
(:class:`~banditformer.bench.results.BanditReport`) is written by
:func:`~banditformer.bench.report.write_report` and drawn by
:func:`~banditformer.bench.plots.plot_regret`; the configuration, the report's types and its
text/file writers are importable from here too.

Examples:
    >>> report = run_bandits(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=50, seeds=3))
    >>> report.results[0].policy, report.results[0].regret.shape
    ('ucb1', torch.Size([3, 9]))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from banditformer.bench.compat import problem_kind
from banditformer.bench.config import MABWISER_REFERENCES, BanditBenchConfig, check_mabwiser
from banditformer.bench.mabwiser import mabwiser_runs, mabwiser_seed
from banditformer.bench.pool import one_thread, run_bench_jobs
from banditformer.bench.report import format_report, write_report
from banditformer.bench.results import BanditReport, PolicyRun
from banditformer.bench.runlog import RunLog, check_log
from banditformer.bench.specs import make_spec_policy
from banditformer.bench.stats import lai_robbins_bound
from banditformer.core.errors import InputValidationError
from banditformer.core.policy import CombinatorialPolicy, Policy
from banditformer.core.random import derive_seed
from banditformer.core.validation import check_int
from banditformer.plugins import get_plugin_manager, make_problem
from banditformer.problems import BernoulliProblem

__all__ = [
    "BanditBenchConfig",
    "BanditReport",
    "PolicyRun",
    "format_report",
    "run_bandits",
    "write_report",
]


# ------------------------------------------------------------------------------- one seed block
class _Players:
    """One policy's ``seeds`` independent runs: one batched policy (a group per seed) or, for
    policies without groups, one instance per seed."""

    def __init__(self, name: str, env: Any, seed: int, n: int) -> None:
        context_dim, self.k = problem_kind(env)
        k = env.num_arms
        first = make_spec_policy(name, num_arms=k, context_dim=context_dim, seed=seed)
        if not isinstance(first, (Policy, CombinatorialPolicy)):
            raise InputValidationError(f"expected policy {name!r} to build a Policy, got {type(first).__name__}")
        if first.supports_groups:
            self.batched = make_spec_policy(name, num_arms=k, context_dim=context_dim, num_groups=n, seed=seed)
            self.groups = torch.arange(n)
        else:
            self.batched = None
            self.each = [first] + [
                make_spec_policy(name, num_arms=k, context_dim=context_dim, seed=derive_seed(seed, "seed", s))
                for s in range(1, n)
            ]

    def select(self, ctx: Tensor | None) -> Tensor:
        """``(seeds,)`` arms, or ``(seeds, K)`` chosen masks on a semi-bandit."""
        kw = {} if self.k is None else {"k": self.k}
        if self.batched is not None:
            return self.batched.select(ctx, groups=self.groups, **kw)
        return torch.cat([
            p.select(None if ctx is None else ctx[s : s + 1], n=1, **kw) for s, p in enumerate(self.each)
        ])  # fmt: skip

    def update(self, actions: Tensor, rewards: Tensor, ctx: Tensor | None) -> None:
        if self.batched is not None:
            self.batched.update(actions, rewards, ctx, groups=self.groups)
            return
        for s, p in enumerate(self.each):
            p.update(actions[s : s + 1], rewards[s : s + 1], None if ctx is None else ctx[s : s + 1])


def _run_block(
    config: BanditBenchConfig, name: str, seed: int, n: int, tick: Callable[[], Any] | None = None
) -> PolicyRun:
    """``n`` runs of one policy as one batch on the problem seeded ``seed`` (see the module
    docstring); ``tick()`` after each round."""
    env = make_problem(config.problem, seed=seed)
    context_dim, k = problem_kind(env)
    rounds = config.rounds()
    marks = torch.zeros(config.horizon + 1, dtype=torch.bool)
    marks[rounds] = True
    curve = torch.zeros(n, len(rounds), dtype=torch.float64)
    regret = torch.zeros(n, dtype=torch.float64)
    counts = torch.zeros(n, env.num_arms, dtype=torch.float64)
    rows = torch.arange(n)
    start, col, t = time.perf_counter(), 0, 0
    try:
        players = _Players(name, env, seed, n)
        for t in range(1, config.horizon + 1):
            ctx = env.contexts(n) if context_dim is not None else None
            actions = players.select(ctx)
            players.update(actions, env.pull(actions), ctx)
            regret += env.regret(actions)
            if k is None:
                counts[rows, actions] += 1
            else:
                counts += actions
            if marks[t]:
                curve[:, col] = regret
                col += 1
            if tick is not None:
                tick()
    except Exception as exc:  # a failing policy is reported; the others still run
        return PolicyRun(
            name, torch.zeros(n, 0, dtype=torch.float64), time.perf_counter() - start,
            max(t - 1, 0) * n, error=f"{type(exc).__name__} at round {t}: {exc}",
        )  # fmt: skip
    return PolicyRun(name, curve, time.perf_counter() - start, config.horizon * n, arm_counts=counts)


def _merge(name: str, parts: list[PolicyRun]) -> PolicyRun:
    """One policy's seed blocks as one run (the first error, if any block failed)."""
    seconds, decisions = sum(p.seconds for p in parts), sum(p.decisions for p in parts)
    failed = next((p for p in parts if p.error is not None), None)
    if failed is not None:
        empty = torch.zeros(sum(p.regret.shape[0] for p in parts), 0, dtype=torch.float64)
        return PolicyRun(name, empty, seconds, decisions, error=failed.error)
    counts = torch.cat([p.arm_counts for p in parts]) if all(p.arm_counts is not None for p in parts) else None
    return PolicyRun(name, torch.cat([p.regret for p in parts]), seconds, decisions, arm_counts=counts)


# ------------------------------------------------------------------------------------- the jobs
def _job(kind: str, *args: Any) -> Any:
    """One job of :func:`run_bandits`: a seed block of one of our policies (``"block"``) or one
    MABWiser seed (``"mabwiser"``)."""
    return _run_block(*args) if kind == "block" else mabwiser_seed(*args)


def _encode_job(value: Any) -> dict[str, Any]:
    if isinstance(value, PolicyRun):
        return {"block": value.to_record()}
    curve, seconds = value
    return {"mabwiser": {"curve": curve.tolist(), "seconds": seconds}}


def _decode_job(doc: Any) -> Any:
    if isinstance(doc, dict) and "block" in doc:
        return PolicyRun.from_record(doc["block"])
    ref = doc["mabwiser"]
    if not isinstance(ref, dict) or not isinstance(ref.get("curve"), list):
        raise ValueError(f"expected a MABWiser seed record, got {str(doc)[:80]}")
    return torch.tensor(ref["curve"], dtype=torch.float64).reshape(-1), float(ref["seconds"])


def _seeds(start: int, n: int) -> str:
    return f"seed {start}" if n == 1 else f"seeds {start}-{start + n - 1}"


def _block_keys(config: BanditBenchConfig, names: Sequence[str]) -> list[str]:
    """One job key per policy and seed block: ``"<policy>, seeds <first>-<last>"``."""
    starts = [sum(n for _, n in config.blocks()[:b]) for b in range(len(config.blocks()))]
    pairs = list(zip(starts, config.blocks(), strict=True))
    return [f"{name}, {_seeds(start, n)}" for name in names for start, (_, n) in pairs]


def run_bandits(
    config: BanditBenchConfig, progress: bool = False, workers: int = 1, log: RunLog | None = None
) -> BanditReport:
    """Run every policy of ``config`` on its problem (see the module docstring).

    Args:
        config: what to run.
        progress: show a progress bar (rounds, or finished policies with ``workers > 1``).
        workers: processes to spread the runs over, one job per policy and seed block (and per
            MABWiser seed) (spawned, one thread each; they see the plugins installed through
            entry points, not ones registered at run time). The numbers are the same for every
            value. A job whose process dies is reported by policy and seeds
            (``meta["jobs"]["lost"]``); the other jobs go on.
        log: a :class:`~banditformer.bench.runlog.RunLog` of kind ``"bandits"`` for this
            configuration: each job is recorded in it as it finishes, and jobs it has recorded
            are not run again (a resume ends with the same numbers as an uninterrupted run).

    Returns:
        the report; ``meta["status"]`` is ``"complete"``, or ``"partial"`` when a policy failed
        or a job lost its process.

    Raises:
        RunInterrupted: on Ctrl-C, after the workers are stopped; its ``report`` holds what
            finished (``meta["status"] == "interrupted"``), and ``log`` says ``interrupted``.
    """
    if not isinstance(config, BanditBenchConfig):
        raise InputValidationError(f"expected a BanditBenchConfig, got {type(config).__name__}")
    check_int("workers", workers, low=1)
    check_log(log, "bandits")
    names = config.policy_names()
    blocks = config.blocks()
    refs = config.references()
    if refs:
        check_mabwiser(config, refs)
    jobs: list[tuple[Any, ...]] = [("block", config, name, seed, n) for name in names for seed, n in blocks]
    n_blocks = len(jobs)
    jobs += [("mabwiser", config, name, s) for name in refs for s in range(config.seeds)]
    keys = _block_keys(config, names)
    keys += [f"{MABWISER_REFERENCES[name][0]}, seed {s}" for name in refs for s in range(config.seeds)]
    if log is not None:  # validate, then apply
        log.check_config(config.record(like=log.config))
        log.begin(keys)
    bar = None
    if progress:
        todo = n_blocks - (0 if log is None else len(set(keys[:n_blocks]) & set(log.recorded())))
        bar = tqdm(total=todo * config.horizon, desc="bench bandits", unit="round", dynamic_ncols=True, disable=None)
    rounds_done = 0

    def on_done(i: int) -> None:  # a failed or lost block's rounds count as done
        nonlocal rounds_done
        if bar is not None and i < n_blocks:
            rounds_done += config.horizon
            bar.update(rounds_done - bar.n)

    def in_process(kind: str, *args: Any) -> Any:  # in this process: a tick per round
        if kind == "block" and bar is not None:
            return _run_block(*args, tick=lambda: bar.update(1))
        return _job(kind, *args)

    def unfinished(i: int, why: str) -> Any:  # a seed block's run, or a MABWiser seed's message
        return PolicyRun.unfinished(jobs[i][2], jobs[i][4], why) if i < n_blocks else why

    try:
        outcome = run_bench_jobs(
            _job, jobs, keys, unfinished=unfinished,
            failed=lambda out: isinstance(out, PolicyRun) and out.error is not None,
            workers=workers, log=log, encode=_encode_job, decode=_decode_job, on_done=on_done,
            initializer=one_thread, in_process=in_process,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    parts = outcome.results[:n_blocks]
    results = [_merge(name, parts[i * len(blocks) : (i + 1) * len(blocks)]) for i, name in enumerate(names)]
    pm = get_plugin_manager()
    for run in results:
        if run.error is None:
            pm.notify_metrics(
                "bench.bandits", config.horizon, {"regret_mean": run.regret_mean, "regret_ci95": run.regret_ci95}
            )
    results += mabwiser_runs(config, refs, outcome.results[n_blocks:])
    env = make_problem(config.problem, seed=config.seed)
    bound = lai_robbins_bound(env.means, config.rounds()) if isinstance(env, BernoulliProblem) else None
    meta = {
        "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "workers": workers,
        "status": outcome.status, "jobs": outcome.jobs(),
    }  # fmt: skip
    return outcome.finish(BanditReport(config, config.rounds(), results, bound, meta), log)
