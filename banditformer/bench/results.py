"""What a bench run produced: one policy's runs (:class:`PolicyRun`), the bandit bench's report
(:class:`BanditReport`), the model bench's (:class:`ModelReport`), and their job records: the
JSON values a :class:`~banditformer.bench.runlog.RunLog` keeps, checked when read back (a record
is data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from banditformer.bench.config import BanditBenchConfig, ModelBenchConfig
from banditformer.bench.stats import ci95_halfwidth

__all__ = ["RUN_NUMBERS", "BanditReport", "ModelReport", "PolicyRun", "check_run_record"]


@dataclass
class PolicyRun:
    """One policy's runs: ``regret`` ``(seeds, len(rounds))`` cumulative regret at each checkpoint,
    float64; ``arm_counts`` ``(seeds, K)`` how often each (base) arm was played, when recorded;
    ``error`` is the message when the policy raised (its regret is then empty); ``played`` how its
    seeds ran, which its time per decision depends on: ``"batched"`` (the seeds of a block as the
    groups of one policy, a round one call of ``seeds`` rows), ``"per seed"`` (one instance per
    seed, one row at a time), ``""`` unknown (a record from before the field)."""

    policy: str
    regret: Tensor
    seconds: float
    decisions: int
    error: str | None = None
    arm_counts: Tensor | None = None
    played: str = ""

    @classmethod
    def unfinished(cls, policy: str, seeds: int, why: str) -> PolicyRun:
        """``seeds`` runs of ``policy`` that did not finish (``why``: its error, a lost worker, an
        interruption): ``(seeds, 0)`` regret."""
        return cls(policy, torch.zeros(seeds, 0, dtype=torch.float64), 0.0, 0, error=why)

    @property
    def final(self) -> Tensor:
        """``(seeds,)`` cumulative regret at the last checkpoint."""
        return self.regret[:, -1]

    @property
    def regret_mean(self) -> float:
        return float(self.final.mean()) if self.error is None else float("nan")

    @property
    def regret_ci95(self) -> float:
        """Half-width of the 95% Student-t confidence interval of the final regret's mean (NaN
        with fewer than two seeds, or a failed run)."""
        return float(ci95_halfwidth(self.final)) if self.error is None else float("nan")

    @property
    def seconds_per_decision(self) -> float:
        return self.seconds / max(self.decisions, 1)

    def to_record(self) -> dict[str, Any]:
        """The run as a JSON value (floats exactly, as Python's JSON writes them)."""
        return {
            "policy": self.policy, "regret": self.regret.tolist(), "seconds": self.seconds,
            "decisions": self.decisions, "error": self.error,
            "arm_counts": None if self.arm_counts is None else self.arm_counts.tolist(), "played": self.played,
        }  # fmt: skip

    @classmethod
    def from_record(cls, doc: Any) -> PolicyRun:
        """The inverse of :meth:`to_record`, checking every field.

        Raises:
            ValueError: ``doc`` is not such a record.
        """
        if not (isinstance(doc, dict) and isinstance(doc.get("policy"), str) and isinstance(doc.get("regret"), list)):
            raise ValueError(f"expected a policy run record, got {str(doc)[:80]}")
        if not isinstance(doc.get("seconds"), (int, float)) or not isinstance(doc.get("decisions"), int):
            raise ValueError("expected numeric seconds and decisions in a policy run record")
        if doc.get("error") is not None and not isinstance(doc["error"], str):
            raise ValueError(f"expected the error as text, got {doc['error']!r}")
        rows = len(doc["regret"])
        regret = torch.tensor(doc["regret"], dtype=torch.float64).reshape(rows, -1)
        counts = doc.get("arm_counts")
        arm_counts = None if counts is None else torch.tensor(counts, dtype=torch.float64).reshape(rows, -1)
        played = doc.get("played", "")
        if not isinstance(played, str):
            raise ValueError(f"expected how the seeds played as text, got {played!r}")
        return cls(doc["policy"], regret, float(doc["seconds"]), doc["decisions"], doc["error"], arm_counts, played)


@dataclass
class BanditReport:
    """Everything a ``run_bandits`` run produced; ``lower_bound`` is the Lai-Robbins bound at each
    checkpoint on Bernoulli problems (``None`` otherwise)."""

    config: BanditBenchConfig
    rounds: list[int]
    results: list[PolicyRun]
    lower_bound: list[float] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelReport:
    """Everything a ``run_models`` run produced: ``runs`` holds one result dict per (configuration,
    seed) (see :func:`~banditformer.bench.experiment.run_experiment`, plus ``label`` or ``error``);
    ``summary`` one row per configuration with means and 95% intervals over seeds, and whether it
    is on the Pareto front."""

    config: ModelBenchConfig
    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


#: The numbers of every finished model run (and of its summary row, with their intervals).
RUN_NUMBERS = ("accuracy", "flop_saving", "train_flop_saving", "flops_per_sample", "eval_us_per_sample", "wall_time_s")


def check_run_record(doc: Any) -> dict[str, Any]:
    """A recorded model run, checked: its label, seed, and its error or :data:`RUN_NUMBERS`.

    Raises:
        ValueError: ``doc`` is not such a record.
    """
    if not isinstance(doc, dict) or not isinstance(doc.get("label"), str) or not isinstance(doc.get("seed"), int):
        raise ValueError(f"expected a run record with a label and a seed, got {str(doc)[:80]}")
    if "error" in doc:
        if not isinstance(doc["error"], str):
            raise ValueError(f"expected the error as text, got {doc['error']!r}")
    elif not all(isinstance(doc.get(k), (int, float)) and not isinstance(doc.get(k), bool) for k in RUN_NUMBERS):
        raise ValueError(f"expected the numbers {RUN_NUMBERS} in a run record, got {sorted(doc)}")
    return doc
