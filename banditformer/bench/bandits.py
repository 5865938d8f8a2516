"""The bandit benchmark runner: policies x seeds on a registered problem, with regret curves,
confidence intervals, time per decision, the Lai-Robbins lower bound on Bernoulli problems, and
JSON, CSV and PNG output.

Problems are multi-armed, contextual (``context_dim``) or combinatorial semi-bandits (``k``); see
:mod:`banditformer.problems`. By default every registered policy that can play the problem
runs: one-arm context-free policies on context-free problems, every one-arm policy on contextual
problems (the context-free ones as baselines), combinatorial policies on semi-bandits.

Every seed is an independent run; the runs of one policy execute together as the groups of one
batched policy, so a round is one ``select``/``update`` of ``seeds`` rows, and every policy faces
the same reward stream. Policies that cannot hold groups (``supports_groups = False``) keep one
instance per seed instead, on the same stream. ``seed_block`` splits the seeds into blocks, each
such a batched run with its own stream. A policy that raises is reported by name with its error
and the others still run. ``workers`` spreads the policies' seed blocks (and MABWiser's per-seed
runs) over processes; the numbers do not depend on it.

Examples:
    >>> report = run_bandits(BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=50, seeds=3))
    >>> report.results[0].policy, report.results[0].regret.shape
    ('ucb1', torch.Size([3, 9]))
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from scipy import stats
from torch import Tensor

from banditformer.bench.runlog import RunInterrupted, RunLog, WorkerLostError, atomic_file, run_jobs, write_atomic
from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.policy import CombinatorialPolicy, Policy
from banditformer.core.validation import SEED_MAX, check_int, check_memory

__all__ = [
    "MABWISER_REFERENCES",
    "BanditBenchConfig",
    "BanditReport",
    "PolicyRun",
    "agreement",
    "bernoulli_kl",
    "check_compatible",
    "compatible_policies",
    "format_report",
    "json_safe",
    "lai_robbins_bound",
    "plot_regret",
    "run_bandits",
    "run_mabwiser",
    "write_report",
]


@dataclass
class BanditBenchConfig:
    """What to run.

    Attributes:
        problem: a registered problem name (``banditformer.list_problems()``).
        policies: registered policy names; ``None``: every registered policy that can play the
            problem (:func:`compatible_policies`).
        horizon: rounds per run.
        seeds: independent runs per policy.
        seed: master seed (the problem's reward stream and the policies' generators).
        checkpoints: rounds at which cumulative regret is recorded, spaced geometrically up to
            ``horizon`` (for log-x plots) and always including it; at most ``horizon`` (or 10).
        seed_block: split each policy's seeds into blocks of this many, each block a batched run
            of its own (its own reward stream and generators, seeded from ``seed`` and the block),
            so that blocks can run in parallel processes; 0 (default): one block of all seeds.
            The numbers depend on it, not on how many processes run the blocks.
        mabwiser: also run MABWiser's UCB1 and Thompson sampling beside ours (those of
            ``policies`` that have a reference, :data:`MABWISER_REFERENCES`) on the same problem
            and seeds; needs ``pip install 'banditformer[bench]'``.
    """

    problem: str = "bernoulli_easy"
    policies: list[str] | None = None
    horizon: int = 2000
    seeds: int = 20
    seed: int = 0
    checkpoints: int = 10
    mabwiser: bool = False
    seed_block: int = 0

    def __post_init__(self) -> None:
        from banditformer.plugins import check_registered, make_problem

        check_registered("problem", self.problem)
        check_int("horizon", self.horizon, low=1)  # how many rounds memory holds: check_memory below
        check_int("seeds", self.seeds, low=1)
        check_int("seed", self.seed, low=0, high=SEED_MAX)
        check_int("checkpoints", self.checkpoints, low=1)
        if self.checkpoints > max(self.horizon, 10):  # at most one per round (the default 10 fits any horizon)
            raise InputValidationError(
                f"expected `checkpoints` at most `horizon` ({self.horizon}), got {self.checkpoints}"
            )
        check_int("seed_block", self.seed_block, low=0)
        if not isinstance(self.mabwiser, bool):
            raise InputValidationError(f"expected `mabwiser` to be a bool, got {self.mabwiser!r}")
        if self.policies is not None:
            if isinstance(self.policies, str):
                raise InputValidationError(f"expected a non-empty list of policy names, got {self.policies!r}")
            check_registered("policy", self.policies)
            check_compatible(self.policies, self.problem, seed=self.seed)
        env = make_problem(self.problem, seed=self.seed)
        if self.mabwiser:
            if _problem_kind(env) != (None, None):
                raise InputValidationError(
                    f"expected a context-free one-arm problem for the MABWiser references, got {self.problem!r}"
                )
            try:
                import mabwiser.mab  # noqa: F401
            except ImportError as exc:
                raise InputValidationError(
                    f"expected MABWiser installed for `mabwiser=True` (pip install 'banditformer[bench]'), got: {exc}"
                ) from None
            if self.seed + self.seeds - 1 > 2**32 - 1:  # MAB(seed=seed + s): numpy's RandomState in older MABWiser
                raise InputValidationError(
                    f"expected seed + seeds - 1 at most {2**32 - 1} for the MABWiser references, "
                    f"got {self.seed + self.seeds - 1}"
                )
        parts = self.memory_estimate(env)
        check_memory(
            f"a run of {len(self._names())} policy(ies) x {self.seeds} seed(s) x {min(self.checkpoints, self.horizon)} "
            f"checkpoints over {self.horizon} rounds",
            sum(parts.values()),
            parts,
        )

    def _names(self) -> list[str]:
        names = self.policies if self.policies is not None else compatible_policies(self.problem, seed=self.seed)
        refs = [n for n in names if n in MABWISER_REFERENCES] if self.mabwiser else []
        return [*names, *(MABWISER_REFERENCES[n][0] for n in refs)]

    def memory_estimate(self, env: Any = None) -> dict[str, float]:
        """A lower estimate of the bytes a run holds at its peak (one worker), by part:

        - ``results``: every policy's ``(seeds, checkpoints)`` regret curves and ``(seeds, K)``
          arm counts, float64, kept to the end;
        - ``results as text``: the same values as Python lists and JSON / CSV text, while written;
        - ``round marks``: the runner's one byte per round of a block;
        - ``block``: one seed block's curves, counters, contexts, actions and the largest policy's
          statistics (measured on the policy built for one and for two groups);
        - ``checkpoint rounds``: the list of checkpoint rounds.

        Computed from the sizes alone, before anything of the run's size is allocated.
        """
        from banditformer.plugins import list_policies, make_policy, make_problem

        env = make_problem(self.problem, seed=self.seed) if env is None else env
        context_dim, k = _problem_kind(env)
        arms, checkpoints = env.num_arms, min(self.checkpoints, self.horizon)
        names, block = self._names(), min(self.seed_block or self.seeds, self.seeds)
        values = len(names) * self.seeds * (checkpoints + arms)

        def state_bytes(policy: Any) -> int:
            return sum(t.numel() * t.element_size() for t in policy.state_dict().values() if isinstance(t, Tensor))

        policy_bytes, registered = 0, set(list_policies())
        for name in names:
            if name not in registered:
                continue  # a MABWiser reference: one small MAB per seed
            try:
                one = make_policy(name, num_arms=arms, context_dim=context_dim, seed=0)
                if one.supports_groups:
                    two = state_bytes(make_policy(name, num_arms=arms, context_dim=context_dim, num_groups=2, seed=0))
                    per, shared = two - state_bytes(one), 2 * state_bytes(one) - two
                    need = shared + block * per
                else:
                    need = block * (state_bytes(one) + 4096)  # an instance per seed, with its Python objects
            except Exception:  # a constructor that raises fails by name when the run starts
                continue
            policy_bytes = max(policy_bytes, need)
        per_row = 8 * (checkpoints + 2 + arms) + 4 * (context_dim or 0) + (8 if k is None else arms)
        return {
            "results": 8.0 * values,
            "results as text": 56.0 * values,
            "round marks": float(self.horizon + 1),
            "block": float(block * per_row + policy_bytes),
            "checkpoint rounds": 100.0 * checkpoints,
        }

    def blocks(self) -> list[tuple[int, int]]:
        """``(seed of the block's runs, number of runs)`` per seed block, in order."""
        from banditformer.core.random import derive_seed

        size = self.seed_block or self.seeds
        counts = [min(size, self.seeds - start) for start in range(0, self.seeds, size)]
        return [(self.seed if b == 0 else derive_seed(self.seed, "block", b), n) for b, n in enumerate(counts)]

    def rounds(self) -> list[int]:
        """The checkpoint rounds, increasing, ending at ``horizon``."""
        pts = torch.logspace(0, math.log10(self.horizon), self.checkpoints, dtype=torch.float64)
        return sorted({*(round(float(p)) for p in pts), self.horizon})

    def digest(self) -> str:
        """A short hash of the configuration (names the results folder)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class PolicyRun:
    """One policy's runs: ``regret`` ``(seeds, len(rounds))`` cumulative regret at each checkpoint,
    float64; ``arm_counts`` ``(seeds, K)`` how often each (base) arm was played, when recorded;
    ``error`` is the message when the policy raised (its regret is then empty)."""

    policy: str
    regret: Tensor
    seconds: float
    decisions: int
    error: str | None = None
    arm_counts: Tensor | None = None

    @property
    def final(self) -> Tensor:
        return self.regret[:, -1]

    @property
    def regret_mean(self) -> float:
        return float(self.final.mean()) if self.error is None else float("nan")

    @property
    def regret_ci95(self) -> float:
        """Half-width of the 95% Student-t confidence interval of the final regret's mean."""
        if self.error is not None or self.final.numel() < 2:
            return float("nan")
        n = self.final.numel()
        return float(stats.t.ppf(0.975, n - 1) * self.final.std(unbiased=True) / math.sqrt(n))

    @property
    def seconds_per_decision(self) -> float:
        return self.seconds / max(self.decisions, 1)


@dataclass
class BanditReport:
    """Everything a run produced; ``lower_bound`` is the Lai-Robbins bound at each checkpoint on
    Bernoulli problems (``None`` otherwise)."""

    config: BanditBenchConfig
    rounds: list[int]
    results: list[PolicyRun]
    lower_bound: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def bernoulli_kl(p: Tensor, q: Tensor) -> Tensor:
    """``KL(Bernoulli(p) || Bernoulli(q))``, elementwise, float64, with ``0 log 0 = 0``."""
    p, q = p.double(), q.double().clamp(1e-15, 1 - 1e-15)
    return torch.xlogy(p, p / q) + torch.xlogy(1 - p, (1 - p) / (1 - q))


def lai_robbins_bound(means: Sequence[float] | Tensor, rounds: Sequence[int]) -> list[float]:
    """The Lai-Robbins asymptotic lower bound on the expected regret of any consistent policy on a
    Bernoulli problem: ``ln(t) * sum_a gap_a / KL(mu_a, mu*)`` over the suboptimal arms.

    Examples:
        >>> [round(v, 2) for v in lai_robbins_bound([0.9, 0.5], [1, 100])]
        [0.0, 3.61]
    """
    mu = torch.as_tensor(means, dtype=torch.float64)
    best = mu.max()
    sub = mu < best
    constant = float(((best - mu[sub]) / bernoulli_kl(mu[sub], best.expand_as(mu[sub]))).sum())
    return [constant * math.log(t) for t in rounds]


def _problem_kind(env: Any) -> tuple[int | None, int | None]:
    """``(context_dim, k)`` of a problem: ``None`` where it is not contextual / combinatorial."""
    return getattr(env, "context_dim", None), getattr(env, "k", None)


def _fits(policy: object, env: Any) -> bool:
    """Whether ``policy`` can play ``env``: the right action kind, a context when it needs one, and
    a reward range that holds the problem's."""
    context_dim, k = _problem_kind(env)
    if not isinstance(policy, CombinatorialPolicy if k is not None else Policy):
        return False
    if policy.is_contextual and context_dim is None:
        return False
    low, high = policy.reward_range
    return low <= env.reward_range[0] and env.reward_range[1] <= high


def _probe(name: str, env: Any) -> Any:
    from banditformer.plugins import make_policy

    context_dim, _ = _problem_kind(env)
    return make_policy(name, num_arms=env.num_arms, context_dim=context_dim or 1)


def compatible_policies(problem: str, *, seed: int = 0) -> list[str]:
    """The registered policies that can play ``problem`` (see the module docstring). A policy whose
    constructor raises is kept, so that a run reports its error by name."""
    from banditformer.plugins import list_policies, make_problem

    env = make_problem(problem, seed=seed)
    names = []
    for name in list_policies():
        try:
            policy = _probe(name, env)
        except Exception:  # reported when it runs
            names.append(name)
            continue
        if _fits(policy, env):
            names.append(name)
    return names


def check_compatible(names: Sequence[str], problem: str, *, seed: int = 0) -> None:
    """Fail unless every named policy can play ``problem`` (a policy whose constructor raises
    passes here and fails, by name, when it runs)."""
    from banditformer.plugins import make_problem

    env = make_problem(problem, seed=seed)
    context_dim, k = _problem_kind(env)
    kind = (
        f"a combinatorial policy (problem {problem!r} picks {k} arms a round)"
        if k is not None
        else ("a one-arm policy" if context_dim is not None else "a context-free, one-arm policy")
    )
    for name in names:
        try:
            policy = _probe(name, env)
        except Exception:
            continue
        if not _fits(policy, env):
            raise InputValidationError(
                f"expected {kind} taking rewards in {env.reward_range} (problem {problem!r}), got {name!r}; "
                f"such policies: {', '.join(compatible_policies(problem, seed=seed))}"
            )


#: MABWiser's reference policies: our name -> (label, MABWiser learning policy, its options).
MABWISER_REFERENCES: dict[str, tuple[str, str, dict[str, float]]] = {
    "ucb1": ("mabwiser:UCB1", "UCB1", {"alpha": 1.0}),
    "thompson_beta": ("mabwiser:ThompsonSampling", "ThompsonSampling", {}),
}


def _mabwiser_seed(config: BanditBenchConfig, name: str, s: int) -> tuple[Tensor, float]:
    """One MABWiser run (seed ``s``): ``(len(rounds),)`` cumulative regret and its seconds."""
    from mabwiser.mab import MAB, LearningPolicy

    from banditformer.core.random import derive_seed
    from banditformer.plugins import make_problem

    _, factory, options = MABWISER_REFERENCES[name]
    rounds = config.rounds()
    curve = torch.zeros(len(rounds), dtype=torch.float64)
    start = time.perf_counter()
    env = make_problem(config.problem, seed=derive_seed(config.seed, "mabwiser", s))
    k = env.num_arms
    mab = MAB(arms=list(range(k)), learning_policy=getattr(LearningPolicy, factory)(**options), seed=config.seed + s)
    regret, col, first = 0.0, 0, []
    for t in range(1, config.horizon + 1):
        arm = t - 1 if t <= k else int(mab.predict())
        reward = float(env.pull(torch.tensor([arm]))[0])
        if t < k:
            first.append(reward)
        elif t == k:
            mab.fit(list(range(k)), [*first, reward])
        else:
            mab.partial_fit([arm], [reward])
        regret += float(env.regret(torch.tensor([arm]))[0])
        if col < len(rounds) and t == rounds[col]:
            curve[col] = regret
            col += 1
    return curve, time.perf_counter() - start


def _check_mabwiser(config: BanditBenchConfig, policies: Sequence[str]) -> None:
    from banditformer.plugins import make_problem

    try:
        import mabwiser.mab  # noqa: F401
    except ImportError as exc:
        raise BanditformerError(f"expected MABWiser (pip install 'banditformer[bench]'), got: {exc}") from None
    unknown = [p for p in policies if p not in MABWISER_REFERENCES]
    if unknown:
        raise InputValidationError(
            f"expected policies with a MABWiser reference {sorted(MABWISER_REFERENCES)}, got {unknown}"
        )
    if _problem_kind(make_problem(config.problem, seed=config.seed)) != (None, None):
        raise InputValidationError(f"expected a context-free one-arm problem for MABWiser, got {config.problem!r}")


def _mabwiser_runs(config: BanditBenchConfig, policies: Sequence[str], outputs: list[Any]) -> list[PolicyRun]:
    """One reference run per policy from its per-seed ``(curve, seconds)`` outputs; an output that
    is an error message (a lost or unfinished seed) fails the reference with it."""
    runs = []
    for b, name in enumerate(policies):
        label = MABWISER_REFERENCES[name][0]
        mine = outputs[b * config.seeds : (b + 1) * config.seeds]
        bad = next((out for out in mine if isinstance(out, str)), None)
        if bad is not None:
            runs.append(_unfinished_block(label, config.seeds, bad))
            continue
        curve = torch.stack([c for c, _ in mine])
        runs.append(PolicyRun(label, curve, sum(sec for _, sec in mine), config.horizon * config.seeds))
    return runs


def run_mabwiser(
    config: BanditBenchConfig, policies: Sequence[str] = tuple(MABWISER_REFERENCES), workers: int = 1
) -> list[PolicyRun]:
    """MABWiser's UCB1 and Thompson sampling on the same problem, horizon and number of seeds, as
    reference runs (labelled ``mabwiser:...``); needs ``pip install 'banditformer[bench]'``.

    MABWiser decides one row at a time, so each seed is its own ``MAB`` (seeded ``seed + s``) on
    its own reward stream (the problem seeded from ``seed`` and ``s``); ``workers`` processes share
    the seeds. It must be fitted before it predicts: the first ``K`` rounds play each arm once, as
    our UCB1 does, and count as rounds. Context-free problems only.
    """
    _check_mabwiser(config, policies)
    jobs = [(config, name, s) for name in policies for s in range(config.seeds)]
    outputs = _map(_mabwiser_seed, jobs, workers, on_error=lambda job, exc: f"{type(exc).__name__}: {exc}")
    return _mabwiser_runs(config, policies, outputs)


def _worker_init() -> None:
    torch.set_num_threads(1)


def _map(fn: Any, jobs: list[tuple[Any, ...]], workers: int, on_done: Any = None, on_error: Any = None) -> list[Any]:
    """``[fn(*job) for job in jobs]``, in ``workers`` spawned processes (one thread each) when
    ``workers > 1``; ``on_done(i)`` after each job finishes. A job whose process dies (or that
    cannot be sent to one) becomes ``on_error(job, exception)`` when given; only that job is
    lost, a new process takes the dead one's place and the other jobs go on. Without
    ``on_error`` the exception propagates. See :func:`banditformer.bench.runlog.run_jobs`."""
    return run_jobs(
        fn, jobs, workers=workers, on_done=on_done, initializer=_worker_init,
        on_error=None if on_error is None else (lambda i, exc: on_error(jobs[i], exc)),
    )  # fmt: skip


def _seeds(start: int, n: int) -> str:
    return f"seed {start}" if n == 1 else f"seeds {start}-{start + n - 1}"


def _block_keys(config: BanditBenchConfig, names: Sequence[str]) -> list[str]:
    """One job key per policy and seed block: ``"<policy>, seeds <first>-<last>"``."""
    starts = [sum(n for _, n in config.blocks()[:b]) for b in range(len(config.blocks()))]
    pairs = list(zip(starts, config.blocks(), strict=True))
    return [f"{name}, {_seeds(start, n)}" for name in names for start, (_, n) in pairs]


def _encode_run(run: PolicyRun) -> dict[str, Any]:
    """A :class:`PolicyRun` as a JSON value (floats exactly, as Python's JSON writes them)."""
    return {
        "policy": run.policy, "regret": run.regret.tolist(), "seconds": run.seconds, "decisions": run.decisions,
        "error": run.error, "arm_counts": None if run.arm_counts is None else run.arm_counts.tolist(),
    }  # fmt: skip


def _decode_run(doc: dict[str, Any]) -> PolicyRun:
    """The inverse of :func:`_encode_run`, checking every field (a record is data)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("policy"), str) or not isinstance(doc.get("regret"), list):
        raise ValueError(f"expected a policy run record, got {str(doc)[:80]}")
    if not isinstance(doc.get("seconds"), (int, float)) or not isinstance(doc.get("decisions"), int):
        raise ValueError("expected numeric seconds and decisions in a policy run record")
    if doc.get("error") is not None and not isinstance(doc["error"], str):
        raise ValueError(f"expected the error as text, got {doc['error']!r}")
    rows = len(doc["regret"])
    regret = torch.tensor(doc["regret"], dtype=torch.float64).reshape(rows, -1)
    counts = doc.get("arm_counts")
    arm_counts = None if counts is None else torch.tensor(counts, dtype=torch.float64).reshape(rows, -1)
    return PolicyRun(doc["policy"], regret, float(doc["seconds"]), doc["decisions"], doc["error"], arm_counts)


def _unfinished_block(name: str, n: int, why: str) -> PolicyRun:
    return PolicyRun(name, torch.zeros(n, 0, dtype=torch.float64), 0.0, 0, error=why)


def _lost_block(job: tuple[Any, ...], exc: Exception) -> PolicyRun:
    _, name, _, n = job
    return _unfinished_block(name, n, f"worker process lost: {type(exc).__name__}: {exc}")


class _Players:
    """One policy's ``seeds`` independent runs: one batched policy (a group per seed) or, for
    policies without groups, one instance per seed."""

    def __init__(self, name: str, env: Any, seed: int, n: int) -> None:
        from banditformer.core.random import derive_seed
        from banditformer.plugins import make_policy

        context_dim, self.k = _problem_kind(env)
        k = env.num_arms
        first = make_policy(name, num_arms=k, context_dim=context_dim, seed=seed)
        if not isinstance(first, (Policy, CombinatorialPolicy)):
            raise InputValidationError(f"expected policy {name!r} to build a Policy, got {type(first).__name__}")
        if first.supports_groups:
            self.batched = make_policy(name, num_arms=k, context_dim=context_dim, num_groups=n, seed=seed)
            self.groups = torch.arange(n)
        else:
            self.batched = None
            self.each = [first] + [
                make_policy(name, num_arms=k, context_dim=context_dim, seed=derive_seed(seed, "seed", s))
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


def _run_block(config: BanditBenchConfig, name: str, seed: int, n: int, tick: Any = None) -> PolicyRun:
    """``n`` runs of one policy as one batch on the problem seeded ``seed`` (see the module
    docstring); ``tick()`` after each round."""
    from banditformer.plugins import make_problem

    env = make_problem(config.problem, seed=seed)
    context_dim, k = _problem_kind(env)
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


def agreement(ours: PolicyRun, reference: PolicyRun) -> bool:
    """Whether two runs' mean final regrets agree within their 95% intervals (the difference is at
    most the root sum of squares of the two half-widths)."""
    return abs(ours.regret_mean - reference.regret_mean) <= math.hypot(ours.regret_ci95, reference.regret_ci95)


def _job(kind: str, *args: Any) -> Any:
    """One job of :func:`run_bandits`: a seed block of one of our policies (``"block"``) or one
    MABWiser seed (``"mabwiser"``)."""
    return _run_block(*args) if kind == "block" else _mabwiser_seed(*args)


def _encode_job(value: Any) -> dict[str, Any]:
    if isinstance(value, PolicyRun):
        return {"block": _encode_run(value)}
    curve, seconds = value
    return {"mabwiser": {"curve": curve.tolist(), "seconds": seconds}}


def _decode_job(doc: Any) -> Any:
    if isinstance(doc, dict) and "block" in doc:
        return _decode_run(doc["block"])
    ref = doc["mabwiser"]
    if not isinstance(ref, dict) or not isinstance(ref.get("curve"), list):
        raise ValueError(f"expected a MABWiser seed record, got {str(doc)[:80]}")
    return torch.tensor(ref["curve"], dtype=torch.float64).reshape(-1), float(ref["seconds"])


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
    from banditformer.plugins import get_plugin_manager, make_problem
    from banditformer.problems import BernoulliProblem

    if not isinstance(config, BanditBenchConfig):
        raise InputValidationError(f"expected a BanditBenchConfig, got {type(config).__name__}")
    check_int("workers", workers, low=1)
    if log is not None and (not isinstance(log, RunLog) or log.kind != "bandits"):
        raise InputValidationError(f"expected a RunLog of kind 'bandits' or None, got {log!r}")
    names = config.policies if config.policies is not None else compatible_policies(config.problem, seed=config.seed)
    blocks = config.blocks()
    refs = [name for name in names if name in MABWISER_REFERENCES] if config.mabwiser else []
    if refs:
        _check_mabwiser(config, refs)
    jobs: list[tuple[Any, ...]] = [("block", config, name, seed, n) for name in names for seed, n in blocks]
    n_blocks = len(jobs)
    jobs += [("mabwiser", config, name, s) for name in refs for s in range(config.seeds)]
    keys = _block_keys(config, names)
    keys += [f"{MABWISER_REFERENCES[name][0]}, seed {s}" for name in refs for s in range(config.seeds)]
    if log is not None:  # validate, then apply
        log.check_config(asdict(config))
        log.begin(keys)
    bar = None
    if progress:
        from tqdm import tqdm

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

    lost: list[str] = []

    def on_error(i: int, exc: Exception) -> Any:
        lost.append(keys[i])
        why = f"{type(exc).__name__}: {exc}"
        why = f"worker process lost: {why}" if isinstance(exc, WorkerLostError) else why
        return _unfinished_block(jobs[i][2], jobs[i][4], why) if i < n_blocks else why

    interrupted: RunInterrupted | None = None
    try:
        outputs = run_jobs(
            _job, jobs, workers=workers, keys=keys, log=log, encode=_encode_job, decode=_decode_job,
            on_done=on_done, on_error=on_error, initializer=_worker_init, in_process=in_process,
        )  # fmt: skip
    except RunInterrupted as exc:
        interrupted = exc
        outputs = exc.kept(keys, also=lost)
    finally:
        if bar is not None:
            bar.close()
    missing = [key for key, out in zip(keys, outputs, strict=True) if out is None]
    parts = [
        out if out is not None else _unfinished_block(job[2], job[4], "not run: interrupted")
        for job, out in zip(jobs[:n_blocks], outputs[:n_blocks], strict=True)
    ]
    unfinished = set(lost) | set(missing)
    failed = [
        k for k, part in zip(keys[:n_blocks], parts, strict=True) if part.error is not None and k not in unfinished
    ]
    results = [_merge(name, parts[i * len(blocks) : (i + 1) * len(blocks)]) for i, name in enumerate(names)]
    pm = get_plugin_manager()
    for run in results:
        if run.error is None:
            pm.notify_metrics(
                "bench.bandits", config.horizon, {"regret_mean": run.regret_mean, "regret_ci95": run.regret_ci95}
            )
    results += _mabwiser_runs(config, refs, [out or "not run: interrupted" for out in outputs[n_blocks:]])
    env = make_problem(config.problem, seed=config.seed)
    bound = lai_robbins_bound(env.means, config.rounds()) if isinstance(env, BernoulliProblem) else None
    status = "interrupted" if missing else ("partial" if lost or failed else "complete")
    counts = {"lost": lost, "failed": failed, "missing": missing}
    meta = {
        "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "workers": workers,
        "status": status, "jobs": {"total": len(keys), **counts},
    }  # fmt: skip
    report = BanditReport(config, config.rounds(), results, bound, meta)
    if interrupted is not None:
        interrupted.report = report
        if log is not None:
            log.set_status("interrupted", **counts)
        raise interrupted
    return report


def format_report(report: BanditReport) -> str:
    """A plain-text table, lowest final regret first; failed policies last, with their error."""
    head = f"{'policy':<26}{'final regret (mean ± 95% CI)':>32}{'µs / decision':>16}"
    lines = [head, "-" * len(head)]
    ok = sorted((r for r in report.results if r.error is None), key=lambda r: r.regret_mean)
    for r in ok:
        lines.append(
            f"{r.policy:<26}{f'{r.regret_mean:10.1f} ± {r.regret_ci95:6.1f}':>32}{r.seconds_per_decision * 1e6:>16.2f}"
        )
    if report.lower_bound is not None:
        lines.append(f"{'(Lai-Robbins lower bound)':<26}{report.lower_bound[-1]:>23.1f}")
    by_name = {r.policy: r for r in ok}
    for ours, (label, _, _) in MABWISER_REFERENCES.items():
        if ours in by_name and label in by_name:
            a, b = by_name[ours], by_name[label]
            verdict = "agree" if agreement(a, b) else "DIFFER"
            lines.append(
                f"{ours} vs {label}: {verdict} within 95% CI ({a.regret_mean:.1f} vs {b.regret_mean:.1f}); "
                f"decisions/s {1 / a.seconds_per_decision:,.0f} vs {1 / b.seconds_per_decision:,.0f}"
            )
    lines += [f"{r.policy:<26}  FAILED: {r.error}" for r in report.results if r.error is not None]
    return "\n".join(lines)


def json_safe(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by ``None`` (strict JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_report(report: BanditReport, folder: str | os.PathLike[str]) -> Path:
    """Write ``results.json`` (everything, with ``status`` from ``report.meta``; strict JSON,
    undefined values as ``null``) and ``regret.csv`` (one row per policy, seed and checkpoint)
    into ``folder``, each atomically (a reader or a kill never sees half a file); returns the
    folder."""
    if not isinstance(report, BanditReport):
        raise InputValidationError(f"expected a BanditReport, got {type(report).__name__}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "status": report.meta.get("status", "complete"),
        "config": asdict(report.config),
        "config_hash": report.config.digest(),
        "rounds": report.rounds,
        "lai_robbins_bound": report.lower_bound,
        "meta": report.meta,
        "results": [
            {
                "policy": r.policy,
                "error": r.error,
                "regret_mean": r.regret_mean,
                "regret_ci95": r.regret_ci95,
                "seconds": r.seconds,
                "seconds_per_decision": r.seconds_per_decision,
                "regret": r.regret.tolist(),
            }
            for r in report.results
        ],
    }
    write_atomic(out / "results.json", json.dumps(json_safe(doc), indent=1, allow_nan=False))
    with atomic_file(out / "regret.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["policy", "seed", "round", "cumulative_regret"])
        for r in report.results:
            for s in range(r.regret.shape[0]):
                for c, t in enumerate(report.rounds[: r.regret.shape[1]]):
                    w.writerow([r.policy, s, t, f"{float(r.regret[s, c]):.6g}"])
    return out


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (files, no display), or a clear error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BanditformerError(
            f"expected matplotlib for plots (pip install 'banditformer[bench]'), got: {exc}"
        ) from None
    return plt


def plot_regret(report: BanditReport, path: str | os.PathLike[str], log_x: bool = False) -> Path:
    """A PNG of each policy's mean cumulative regret with its 95% confidence band (Student t over
    seeds) at the checkpoints, and the Lai-Robbins bound (dashed) on Bernoulli problems. Needs
    matplotlib (``pip install 'banditformer[bench]'``)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = report.rounds
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    ax.set_prop_cycle(color=plt.cm.tab20.colors)  # 20 distinct colours: every registered policy at once
    for r in report.results:
        if r.error is not None:
            continue
        mean = r.regret.mean(0)
        n = r.regret.shape[0]
        half = (
            stats.t.ppf(0.975, n - 1) * r.regret.std(0, unbiased=True) / math.sqrt(n)
            if n > 1
            else torch.zeros_like(mean)
        )
        (line,) = ax.plot(x, mean.numpy(), label=r.policy)
        ax.fill_between(x, (mean - half).numpy(), (mean + half).numpy(), color=line.get_color(), alpha=0.2)
    if report.lower_bound is not None:
        ax.plot(x, report.lower_bound, "k--", label="Lai-Robbins bound")
    if log_x:
        ax.set_xscale("log")
    c = report.config
    ax.set(xlabel="round", ylabel="cumulative regret", title=f"{c.problem}: {c.seeds} seeds, 95% bands")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
