"""The bandit benchmark: what to run (:class:`BanditBenchConfig`) and the runner
(:func:`run_bandits`): policies x seeds on a registered problem, with regret curves, confidence
intervals, time per decision and the Lai-Robbins lower bound on Bernoulli problems.

By default every registered policy that can play the problem runs (:mod:`banditformer.bench.compat`).
Every seed is an independent run with streams of its own: seed ``s`` plays its own problem
instance, seeded ``config.problem_seed(s)`` (its rewards and contexts; every policy meets the same
ones at seed ``s``), and a policy that draws at random plays its own instance, seeded
``config.policy_seed(s)``. So seed ``s``'s run does not depend on how many seeds run with it, on
``seed_block`` or on ``workers``. Where that changes nothing, the seeds run together: a policy whose
``select`` draws nothing (``deterministic``, the index policies) and that holds groups plays all
the seeds of a block as the groups of one batched policy, one row per seed and round
(:func:`plays_batched`), which is exact and fast; any other policy plays its seeds one after the
other. ``seed_block`` splits the seeds into blocks, one job each, so that ``workers`` can spread
them (and MABWiser's per-seed runs, :mod:`banditformer.bench.mabwiser`) over processes. A policy
that raises is reported by name with its error and the others still run. ``log_dir`` also writes
every round, with the policy's propensities, as :class:`~banditformer.ope.BanditLog` files for
off-policy evaluation (:mod:`banditformer.ope`).

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

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from banditformer.bench.compat import problem_kind
from banditformer.bench.config import BANDIT_STREAMS, MABWISER_REFERENCES, BanditBenchConfig, check_mabwiser
from banditformer.bench.mabwiser import mabwiser_runs, mabwiser_seed
from banditformer.bench.pool import one_thread, run_bench_jobs
from banditformer.bench.report import format_report, write_report
from banditformer.bench.results import BanditReport, PolicyRun
from banditformer.bench.runlog import RunLog, check_log
from banditformer.bench.specs import make_spec_policy
from banditformer.bench.stats import lai_robbins_bound
from banditformer.core.errors import InputValidationError
from banditformer.core.files import write_atomic
from banditformer.core.policy import CombinatorialPolicy, Policy, PolicyBase
from banditformer.core.random import make_generator
from banditformer.core.validation import check_int, check_memory
from banditformer.ope import BanditLog
from banditformer.plugins import get_plugin_manager, make_problem
from banditformer.problems import BernoulliProblem, SeedStreams

__all__ = [
    "LOG_INDEX",
    "BanditBenchConfig",
    "BanditReport",
    "PolicyRun",
    "check_log_dir",
    "format_report",
    "log_name",
    "plays_batched",
    "run_bandits",
    "write_report",
]

#: The index a ``log_dir`` gets beside its logs: the configuration and each log's policy, seed and file.
LOG_INDEX = "logs.json"


# ------------------------------------------------------------------------------------ the seeds
def _make(name: str, env: Any, seed: int, groups: int = 1) -> Policy | CombinatorialPolicy:
    context_dim, _ = problem_kind(env)
    options = {"num_groups": groups} if groups > 1 else {}
    policy = make_spec_policy(name, num_arms=env.num_arms, context_dim=context_dim, seed=seed, **options)
    if not isinstance(policy, (Policy, CombinatorialPolicy)):
        raise InputValidationError(f"expected policy {name!r} to build a Policy, got {type(policy).__name__}")
    return policy


def _drew_nothing(policy: PolicyBase) -> bool:
    """Whether the generator of ``policy``, and of every policy it wraps, is where its seed put it."""
    return all(
        torch.equal(m.generator.get_state(), make_generator(m.seed, m.generator.device).get_state())
        for m in policy.modules()
        if isinstance(m, PolicyBase)
    )


def plays_batched(policy: PolicyBase) -> bool:
    """Whether the runner plays the seeds of a block as the groups of this one policy (built with
    a group per seed): it holds groups, its ``select`` draws nothing (``deterministic``) and it
    drew nothing when it was built. Each seed's rows then depend only on its own group and its own
    problem, so the batch gives every seed the run it would have alone. A policy that still draws
    during the run (an ``update`` that draws) is found out when the block ends, and the block is
    played again one instance per seed; any other policy plays one instance per seed from the
    start. (It also takes a deterministic policy's groups to be independent, as the contract has
    them: a statistic shared by all groups would couple the seeds. The registry-wide tests play
    every built-in batched and alone and compare.)"""
    return policy.supports_groups and policy.deterministic and _drew_nothing(policy)


@dataclass
class _Seeds:
    """What one block's runs recorded: ``curve`` ``(n, C)`` cumulative regret at the checkpoints,
    ``counts`` ``(n, K)`` plays per (base) arm, and, when logging, each seed's rounds: ``logs[i]``
    is ``(actions (T,), rewards (T,), propensities (T,), contexts (T, d) or None)``."""

    curve: Tensor
    counts: Tensor
    logs: list[tuple[Tensor, Tensor, Tensor, Tensor | None]] | None = None


def _play_batched(
    config: BanditBenchConfig, name: str, first: int, n: int, tick: Callable[[int], Any], logging: bool
) -> _Seeds | None:
    """Seeds ``first .. first + n - 1`` as the groups of one policy, each on its own problem
    instance, one row per seed and round; ``None`` when the policy does not
    :func:`plays_batched`, or drew during the run."""
    env = make_problem(config.problem, seed=config.problem_seed(first))
    if not plays_batched(_make(name, env, config.policy_seed(first))):
        return None
    policy = _make(name, env, config.policy_seed(first), groups=n)
    if not plays_batched(policy):
        return None
    rest = [make_problem(config.problem, seed=config.problem_seed(s)) for s in range(first + 1, first + n)]
    envs = SeedStreams([env, *rest])
    context_dim, k = envs.context_dim, envs.k
    kw = {} if k is None else {"k": k}
    groups, rows = torch.arange(n), torch.arange(n)
    cols = {t: c for c, t in enumerate(config.rounds())}
    curve = torch.zeros(n, len(cols), dtype=torch.float64)
    regret = torch.zeros(n, dtype=torch.float64)
    counts = torch.zeros(n, envs.num_arms, dtype=torch.float64)
    h = config.horizon
    if logging:
        log_a, log_r = torch.zeros(h, n, dtype=torch.long), torch.zeros(h, n, dtype=torch.float64)
        log_p = torch.zeros(h, n, dtype=torch.float64)
        log_x = None if context_dim is None else torch.zeros(h, n, context_dim, dtype=torch.float64)
    for t in range(1, h + 1):
        ctx = envs.contexts() if context_dim is not None else None
        if logging:
            actions, prop = policy.select(ctx, groups=groups, propensity=True)
        else:
            actions = policy.select(ctx, groups=groups, **kw)
        rewards = envs.pull(actions)
        regret += envs.regret(actions)
        policy.update(actions, rewards, ctx, groups=groups)
        if k is None:
            counts[rows, actions] += 1
        else:
            counts += actions
        if logging:
            log_a[t - 1], log_r[t - 1], log_p[t - 1] = actions, rewards, prop
            if log_x is not None:
                log_x[t - 1] = ctx
        if t in cols:
            curve[:, cols[t]] = regret
        tick(n)
    if not _drew_nothing(policy):
        return None
    logs = None
    if logging:
        logs = [(log_a[:, i], log_r[:, i], log_p[:, i], None if log_x is None else log_x[:, i]) for i in range(n)]
    return _Seeds(curve, counts, logs)


def _play_one(config: BanditBenchConfig, name: str, s: int, tick: Callable[[int], Any], logging: bool) -> _Seeds:
    """Seed ``s`` alone: its own policy instance on its own problem instance."""
    env = SeedStreams([make_problem(config.problem, seed=config.problem_seed(s))])
    context_dim, k = env.context_dim, env.k
    policy = _make(name, env.problems[0], config.policy_seed(s))
    kw = {} if k is None else {"k": k}
    cols = {t: c for c, t in enumerate(config.rounds())}
    curve = torch.zeros(1, len(cols), dtype=torch.float64)
    counts = [0] * env.num_arms
    mask_counts = torch.zeros(env.num_arms, dtype=torch.float64)
    regret, h = 0.0, config.horizon  # a float64 sum, added in the order the batched runner adds
    if logging:
        log_a, log_r = torch.zeros(h, dtype=torch.long), torch.zeros(h, dtype=torch.float64)
        log_p = torch.zeros(h, dtype=torch.float64)
        log_x = None if context_dim is None else torch.zeros(h, context_dim, dtype=torch.float64)
    if isinstance(policy, Policy) and not logging:  # the batch-1 path: select(n=1) / update's rounds, lean
        step = policy.stepper()
        for t in range(1, h + 1):
            ctx = env.contexts() if context_dim is not None else None
            arm = step.select(ctx)
            reward = env.pull_one(arm)
            regret += env.regret_one(arm)
            step.update(arm, reward, ctx)
            counts[arm] += 1
            if t in cols:
                curve[0, cols[t]] = regret
            tick(1)
        return _Seeds(curve, torch.tensor([counts], dtype=torch.float64))
    for t in range(1, h + 1):
        ctx = env.contexts() if context_dim is not None else None
        if logging:
            action, prop = policy.select(ctx, n=1, propensity=True)
        else:
            action = policy.select(ctx, n=1, **kw)
        reward = env.pull(action)
        regret += float(env.regret(action)[0])
        policy.update(action, reward, ctx)
        if k is None:
            counts[int(action[0])] += 1
        else:
            mask_counts += action[0]
        if logging:
            log_a[t - 1], log_r[t - 1], log_p[t - 1] = action[0], reward[0], prop[0]
            if log_x is not None:
                log_x[t - 1] = ctx[0]
        if t in cols:
            curve[0, cols[t]] = regret
        tick(1)
    arm_counts = torch.tensor(counts, dtype=torch.float64) if k is None else mask_counts
    return _Seeds(curve, arm_counts.unsqueeze(0), [(log_a, log_r, log_p, log_x)] if logging else None)


def _run_block(
    config: BanditBenchConfig,
    name: str,
    first: int,
    n: int,
    log_dir: str | None = None,
    tick: Callable[[int], Any] | None = None,
) -> PolicyRun:
    """Seeds ``first .. first + n - 1`` of one policy (see the module docstring), batched where
    the policy :func:`plays_batched`, else one instance per seed; ``tick(decisions)`` as they are
    made. With ``log_dir``, each seed's rounds are written there (:func:`log_name`) once the
    block has run."""
    start, logging = time.perf_counter(), log_dir is not None
    at: dict[str, Any] = {"seed": None, "round": 0, "done": 0, "tick": tick}

    def step(k: int) -> None:
        at["round"] += 1
        at["done"] += k
        if at["tick"] is not None:
            at["tick"](k)

    try:
        # Beside MABWiser, which plays one seed at a time, its pairs do too (the same numbers, a
        # time per decision measured like with like)
        alone = config.mabwiser and name in MABWISER_REFERENCES
        played, how = (None if alone else _play_batched(config, name, first, n, step, logging)), "batched"
        if played is None:  # one instance per seed (a replay, if the batch drew: the bar has counted it)
            at.update(done=0, tick=tick if at["round"] == 0 else None)
            parts = []
            for s in range(first, first + n):
                at.update(seed=s, round=0)
                parts.append(_play_one(config, name, s, step, logging))
            logs = [log for p in parts for log in (p.logs or [])] if logging else None
            curves, counts = torch.cat([p.curve for p in parts]), torch.cat([p.counts for p in parts])
            played, how = _Seeds(curves, counts, logs), "per seed"
    except Exception as exc:  # a failing policy is reported; the others still run
        where = f"round {at['round'] + 1}" + ("" if at["seed"] is None else f" of seed {at['seed']}")
        return PolicyRun(
            name, torch.zeros(n, 0, dtype=torch.float64), time.perf_counter() - start, at["done"],
            error=f"{type(exc).__name__} at {where}: {exc}",
        )  # fmt: skip
    seconds = time.perf_counter() - start
    if played.logs is not None and log_dir is not None:
        k = int(played.counts.shape[1])
        for i, (actions, rewards, props, contexts) in enumerate(played.logs):
            BanditLog(actions, rewards, props, k, contexts).save(Path(log_dir) / log_name(name, first + i))
    return PolicyRun(name, played.curve, seconds, config.horizon * n, arm_counts=played.counts, played=how)


def log_name(policy: str, s: int) -> str:
    """The file name of seed ``s``'s log of ``policy`` (a spec) in a ``log_dir``: the spec made a
    plain file name (with a short hash of the spec when that changed it), ``-seed<s>.pt``.

    Examples:
        >>> log_name("ucb1", 3), log_name("sw_ucb:window=100", 0)
        ('ucb1-seed3.pt', 'sw_ucb_window=100-b15d0d5b-seed0.pt')
    """
    safe = re.sub(r"[^\w.=+-]+", "_", policy).strip("._-")[:60] or "policy"
    tag = "" if safe == policy else "-" + hashlib.sha256(policy.encode()).hexdigest()[:8]
    return f"{safe}{tag}-seed{s}.pt"


def _merge(name: str, parts: list[PolicyRun]) -> PolicyRun:
    """One policy's seed blocks as one run (the first error, if any block failed)."""
    seconds, decisions = sum(p.seconds for p in parts), sum(p.decisions for p in parts)
    failed = next((p for p in parts if p.error is not None), None)
    if failed is not None:
        empty = torch.zeros(sum(p.regret.shape[0] for p in parts), 0, dtype=torch.float64)
        return PolicyRun(name, empty, seconds, decisions, error=failed.error)
    counts = torch.cat([p.arm_counts for p in parts]) if all(p.arm_counts is not None for p in parts) else None
    how = {p.played for p in parts}
    played = how.pop() if len(how) == 1 else "mixed"
    return PolicyRun(name, torch.cat([p.regret for p in parts]), seconds, decisions, arm_counts=counts, played=played)


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
    return [f"{name}, {_seeds(first, n)}" for name in names for first, n in config.blocks()]


def _check_streams(log: RunLog) -> bool:
    """Whether ``log``'s configuration says ``"streams": "per-seed"``; refuse a folder without it
    that holds finished jobs (an older version's, whose seeds shared one stream per block: its
    numbers would not fit the jobs still to run). One without it and without jobs (made with
    ``asdict(config)``) is fine, and is marked before it runs."""
    streams = log.config.get("streams")
    if streams == BANDIT_STREAMS:
        return True
    if streams is not None or log.recorded():
        what = f"streams {streams!r}" if streams is not None else "no streams recorded"
        raise InputValidationError(
            f"expected a results folder recorded with streams {BANDIT_STREAMS!r} (each seed its own problem and "
            f"policy streams), got {str(log.folder)!r} with {what} and "
            "finished jobs: an older version's folder, whose seeds shared one stream per block; its jobs cannot be "
            "resumed with this version, start a new run instead"
        )
    return False


def check_log_dir(config: BanditBenchConfig, log_dir: str | os.PathLike[str]) -> Path:
    """The folder for ``run_bandits(config, log_dir=...)``'s logs, made and written to (a probe
    file, removed) before any work; returned as a path.

    Raises:
        InputValidationError: a combinatorial problem (a log holds one action per round), logs
            that would not fit in memory, or a folder that cannot be made or written.
    """
    if not isinstance(log_dir, (str, os.PathLike)):
        raise InputValidationError(f"expected `log_dir` to be a path, got {type(log_dir).__name__}")
    env = make_problem(config.problem, seed=config.problem_seed(0))
    context_dim, k = problem_kind(env)
    if k is not None:
        raise InputValidationError(
            f"expected a one-arm problem to log (a BanditLog holds one action per round), got the combinatorial "
            f"problem {config.problem!r}"
        )
    block = max(n for _, n in config.blocks())
    per_round = 8 * (3 + 2 * (context_dim or 0))  # action, reward, propensity, context; held and then saved
    check_memory(
        f"the logs of a block of {block} seed(s) x {config.horizon} rounds",
        float(block * config.horizon * per_round + sum(config.memory_estimate(env).values())),
    )
    folder = Path(log_dir)
    if folder.exists() and not folder.is_dir():
        raise InputValidationError(f"expected a folder for the logs at {str(folder)!r}, got a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = write_atomic(folder / f".probe-{os.getpid()}", b"")
        probe.unlink()
    except OSError as exc:
        raise InputValidationError(
            f"expected a writable folder for the logs at {str(folder)!r}, got: {exc.strerror or exc}"
        ) from None
    return folder


def _check_logged(log: RunLog, keys: Sequence[str], jobs: Sequence[tuple[Any, ...]], folder: Path) -> None:
    """On a resume with logs: the jobs the run log has recorded without error must have left their
    log files in ``folder`` (they do not run again)."""
    recorded = log.recorded()
    missing = []
    for key, (_, _, name, first, n, _) in zip(keys, jobs, strict=False):
        if key not in recorded:
            continue
        try:
            if _decode_job(recorded[key]).error is not None:
                continue
        except (ValueError, TypeError, KeyError):
            continue  # an unusable record: the job runs again
        missing += [log_name(name, s) for s in range(first, first + n) if not (folder / log_name(name, s)).is_file()]
    if missing:
        raise InputValidationError(
            f"expected the logs of the jobs already recorded in {str(log.folder)!r} in {str(folder)!r} (they do not "
            f"run again), got {len(missing)} missing, e.g. {missing[0]!r}: resume with the first run's log folder, or "
            "start a new run"
        )


def _write_log_index(config: BanditBenchConfig, names: Sequence[str], runs: Sequence[PolicyRun], folder: Path) -> Path:
    """``logs.json`` in ``folder``: the configuration and, for every policy that ran without error,
    each seed's log file."""
    logs = [
        {"policy": name, "seed": s, "file": log_name(name, s), "rounds": config.horizon}
        for name, run in zip(names, runs, strict=True)
        if run.error is None
        for s in range(config.seeds)
    ]
    doc = {"kind": "bandit logs", "config": config.record(), "logs": logs}
    return write_atomic(folder / LOG_INDEX, json.dumps(doc, indent=1))


def run_bandits(
    config: BanditBenchConfig,
    progress: bool = False,
    workers: int = 1,
    log: RunLog | None = None,
    log_dir: str | os.PathLike[str] | None = None,
) -> BanditReport:
    """Run every policy of ``config`` on its problem (see the module docstring).

    Args:
        config: what to run.
        progress: show a progress bar (decisions, counted as jobs end with ``workers > 1``).
        workers: processes to spread the runs over, one job per policy and seed block (and per
            MABWiser seed) (spawned, one thread each; they see the plugins installed through
            entry points, not ones registered at run time). The numbers are the same for every
            value. A job whose process dies is reported by policy and seeds
            (``meta["jobs"]["lost"]``); the other jobs go on.
        log: a :class:`~banditformer.bench.runlog.RunLog` of kind ``"bandits"`` for this
            configuration: each job is recorded in it as it finishes, and jobs it has recorded
            are not run again (a resume ends with the same numbers as an uninterrupted run).
        log_dir: also write every round of our policies (context, action, reward, the policy's
            propensity of its action) into this folder, one
            :class:`~banditformer.ope.BanditLog` file per policy and seed (:func:`log_name`), and
            an index, :data:`LOG_INDEX`; one-arm problems only. The numbers do not change (a
            Monte-Carlo propensity puts its draws back). Checked (made and written to) before
            any work.

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
    logs = None if log_dir is None else check_log_dir(config, log_dir)
    names = config.policy_names()
    blocks = config.blocks()
    refs = config.references()
    if refs:
        check_mabwiser(config, refs)
    where = None if logs is None else str(logs)
    jobs: list[tuple[Any, ...]] = [("block", config, name, first, n, where) for name in names for first, n in blocks]
    n_blocks = len(jobs)
    jobs += [("mabwiser", config, name, s) for name in refs for s in range(config.seeds)]
    keys = _block_keys(config, names)
    keys += [f"{MABWISER_REFERENCES[name][0]}, seed {s}" for name in refs for s in range(config.seeds)]
    if log is not None:  # validate, then apply
        marked = _check_streams(log)
        log.check_config(config.record(like=log.config))
        if logs is not None:
            _check_logged(log, keys[:n_blocks], jobs[:n_blocks], logs)
        if not marked:
            log.add_to_config(streams=BANDIT_STREAMS)
        log.begin(keys)
    bar = None
    if progress:
        done = set() if log is None else set(log.recorded())
        todo = sum(job[4] for key, job in zip(keys[:n_blocks], jobs, strict=False) if key not in done)
        bar = tqdm(
            total=todo * config.horizon, desc="bench bandits", unit="decision", unit_scale=True, dynamic_ncols=True,
            disable=None,
        )  # fmt: skip
    decisions_done = 0

    def on_done(i: int) -> None:  # a failed or lost block's decisions count as done
        nonlocal decisions_done
        if bar is not None and i < n_blocks:
            decisions_done += jobs[i][4] * config.horizon
            bar.update(decisions_done - bar.n)

    def in_process(kind: str, *args: Any) -> Any:  # in this process: a tick per round
        if kind == "block" and bar is not None:
            return _run_block(*args, tick=bar.update)
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
    if logs is not None:
        _write_log_index(config, names, results, logs)
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
    if logs is not None:
        meta["logs"] = str(logs / LOG_INDEX)
    return outcome.finish(BanditReport(config, config.rounds(), results, bound, meta), log)
