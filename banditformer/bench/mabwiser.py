"""MABWiser's UCB1 and Thompson sampling as reference runs beside ours, on the same problem,
horizon and number of seeds (``BanditBenchConfig(mabwiser=True)``); labelled ``mabwiser:...``.

MABWiser decides one row at a time, so each seed is its own ``MAB`` (seeded ``seed + s``) on seed
``s``'s own problem instance, seeded ``config.problem_seed(s)``: the reward stream our policies
meet at seed ``s``. It must be fitted before it
predicts: the first ``K`` rounds play each arm once, as our UCB1 does, and count as rounds.
Context-free one-arm problems only. MABWiser is optional (``pip install 'banditformer[bench]'``):
it is imported only where a reference runs or is checked. Which policies have a reference
(:data:`~banditformer.bench.config.MABWISER_REFERENCES`) and the check that they can run
(:func:`~banditformer.bench.config.check_mabwiser`) are the configuration's, in
:mod:`banditformer.bench.config`; they are importable from here too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from banditformer.bench.config import MABWISER_REFERENCES, BanditBenchConfig, check_mabwiser
from banditformer.bench.pool import one_thread, run_jobs
from banditformer.bench.results import PolicyRun
from banditformer.plugins import make_problem

__all__ = ["MABWISER_REFERENCES", "check_mabwiser", "mabwiser_runs", "mabwiser_seed", "run_mabwiser"]


def mabwiser_seed(config: BanditBenchConfig, name: str, s: int) -> tuple[Tensor, float]:
    """One MABWiser run of ``name``'s reference (seed ``s``): ``(len(rounds),)`` cumulative regret
    at the checkpoints, float64, and its seconds."""
    from mabwiser.mab import MAB, LearningPolicy  # here, not at the top: MABWiser is optional

    _, factory, options = MABWISER_REFERENCES[name]
    rounds = config.rounds()
    curve = torch.zeros(len(rounds), dtype=torch.float64)
    start = time.perf_counter()
    env = make_problem(config.problem, seed=config.problem_seed(s))
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


def mabwiser_runs(config: BanditBenchConfig, policies: Sequence[str], outputs: list[Any]) -> list[PolicyRun]:
    """One reference run per policy from its per-seed ``(curve, seconds)`` outputs (``seeds`` per
    policy, in order); an output that is an error message (a lost or unfinished seed) fails the
    reference with it."""
    runs = []
    for b, name in enumerate(policies):
        label = MABWISER_REFERENCES[name][0]
        mine = outputs[b * config.seeds : (b + 1) * config.seeds]
        bad = next((out for out in mine if isinstance(out, str)), None)
        if bad is not None:
            runs.append(PolicyRun.unfinished(label, config.seeds, bad))
            continue
        curve = torch.stack([c for c, _ in mine])
        seconds = sum(sec for _, sec in mine)
        runs.append(PolicyRun(label, curve, seconds, config.horizon * config.seeds, played="per seed"))
    return runs


def run_mabwiser(
    config: BanditBenchConfig, policies: Sequence[str] = tuple(MABWISER_REFERENCES), workers: int = 1
) -> list[PolicyRun]:
    """The MABWiser references of ``policies`` on ``config``'s problem, horizon and seeds (see the
    module docstring); ``workers`` processes share the seeds."""
    check_mabwiser(config, policies)
    jobs = [(config, name, s) for name in policies for s in range(config.seeds)]
    outputs = run_jobs(
        mabwiser_seed, jobs, workers=workers, initializer=one_thread,
        on_error=lambda i, exc: f"{type(exc).__name__}: {exc}",
    )  # fmt: skip
    return mabwiser_runs(config, policies, outputs)
