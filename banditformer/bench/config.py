"""What a bench runs: the bandit bench's configuration (:class:`BanditBenchConfig`) and the model
bench's (:class:`ModelBenchConfig`), each checking its values when it is made, with the digest
that names its results folder; and which policies have a MABWiser reference
(:data:`MABWISER_REFERENCES`, run by :mod:`banditformer.bench.mabwiser`). The runners, their
reports and the references import this module; it imports none of them. The configurations are
importable from their runners' modules too (:mod:`~banditformer.bench.bandits`,
:mod:`~banditformer.bench.models`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from banditformer.bench.compat import check_compatible, compatible_policies, problem_kind
from banditformer.bench.runlog import config_digest
from banditformer.bench.specs import make_spec_policy, parse_policy, spec_names
from banditformer.core.errors import InputValidationError
from banditformer.core.random import derive_seed
from banditformer.core.validation import SEED_MAX, check_float, check_int, check_memory
from banditformer.plugins import check_registered, make_problem
from banditformer.training import TrainConfig

__all__ = [
    "BANDIT_STREAMS",
    "MABWISER_REFERENCES",
    "TRAIN_FIELDS",
    "BanditBenchConfig",
    "ModelBenchConfig",
    "check_mabwiser",
]

#: How seeds get their random streams, recorded with every bandit bench configuration: ``"per-seed"``,
#: each seed its own problem instance and, for a policy that draws, its own policy instance
#: (:meth:`BanditBenchConfig.problem_seed`, :meth:`BanditBenchConfig.policy_seed`). A folder without it
#: that holds finished jobs (an older version's: one stream per seed block) does not resume.
BANDIT_STREAMS = "per-seed"

#: A lower estimate of one problem instance's bytes (its generator's state and Python objects).
PROBLEM_BYTES = 8192

#: MABWiser's reference policies: our name -> (label, MABWiser learning policy, its options).
MABWISER_REFERENCES: dict[str, tuple[str, str, dict[str, float]]] = {
    "ucb1": ("mabwiser:UCB1", "UCB1", {"alpha": 1.0}),
    "thompson_beta": ("mabwiser:ThompsonSampling", "ThompsonSampling", {}),
}


def check_mabwiser(config: BanditBenchConfig, policies: Sequence[str] = ()) -> None:
    """Fail unless the references of ``policies`` can run for ``config``: each has one, the problem
    is context-free and one-arm, MABWiser is installed, and every ``MAB`` seed fits numpy's
    32-bit ``RandomState`` (older MABWiser)."""
    unknown = [p for p in policies if p not in MABWISER_REFERENCES]
    if unknown:
        raise InputValidationError(
            f"expected policies with a MABWiser reference {sorted(MABWISER_REFERENCES)}, got {unknown}"
        )
    if problem_kind(make_problem(config.problem, seed=config.seed)) != (None, None):
        raise InputValidationError(
            f"expected a context-free one-arm problem for the MABWiser references, got {config.problem!r}"
        )
    try:
        import mabwiser.mab  # noqa: F401  (here, not at the top: MABWiser is optional)
    except ImportError as exc:
        raise InputValidationError(
            f"expected MABWiser installed for `mabwiser=True` (pip install 'banditformer[bench]'), got: {exc}"
        ) from None
    if config.seed + config.seeds - 1 > 2**32 - 1:  # MAB(seed=seed + s)
        raise InputValidationError(
            f"expected seed + seeds - 1 at most {2**32 - 1} for the MABWiser references, "
            f"got {config.seed + config.seeds - 1}"
        )


@dataclass
class BanditBenchConfig:
    """What to run.

    Attributes:
        problem: a registered problem name (``banditformer.list_problems()``).
        policies: policy specs, registered names with optional options
            (``"sw_ucb:window=100,c=0.6"``, :mod:`~banditformer.bench.specs`; each spec is its run's
            label, so one policy can run with several option sets); ``None``: every registered
            policy that can play the problem (:func:`~banditformer.bench.compat.compatible_policies`).
        horizon: rounds per run.
        seeds: independent runs per policy.
        seed: master seed. Seed ``s`` of a run (``0 <= s < seeds``) plays its own problem instance,
            seeded :meth:`problem_seed` ``(s)`` (its rewards and contexts), and a policy that draws
            at random plays its own instance seeded :meth:`policy_seed` ``(s)``: seed ``s``'s run
            is the same whatever ``seeds``, ``seed_block`` and the number of processes.
        checkpoints: rounds at which cumulative regret is recorded, spaced geometrically up to
            ``horizon`` (for log-x plots) and always including it; at most ``horizon`` (or 10).
        seed_block: split each policy's seeds into blocks of this many, one job each, so that
            blocks can run in parallel processes; 0 (default): one block of all seeds. The
            numbers depend neither on it nor on how many processes run the blocks.
        mabwiser: also run MABWiser's UCB1 and Thompson sampling beside ours (those of
            ``policies`` that have a reference,
            :data:`MABWISER_REFERENCES`) on the same problem and
            seeds; needs ``pip install 'banditformer[bench]'``.
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
            spec_names(self.policies)
            for spec in self.policies:  # options checked against the policy's signature now, not mid-run
                if parse_policy(spec)[1]:
                    make_spec_policy(spec, num_arms=2, context_dim=1)
            check_compatible(self.policies, self.problem, seed=self.seed)
        if self.mabwiser:
            check_mabwiser(self)
        parts = self.memory_estimate()
        check_memory(
            f"a run of {len(self._names())} policy(ies) x {self.seeds} seed(s) x {min(self.checkpoints, self.horizon)} "
            f"checkpoints over {self.horizon} rounds",
            sum(parts.values()),
            parts,
        )

    def policy_names(self) -> list[str]:
        """The policies that run: ``policies``, or every registered one that can play the problem."""
        return self.policies if self.policies is not None else compatible_policies(self.problem, seed=self.seed)

    def references(self) -> list[str]:
        """The policies whose MABWiser reference runs beside them (none unless ``mabwiser``)."""
        return [n for n in self.policy_names() if n in MABWISER_REFERENCES] if self.mabwiser else []

    def _names(self) -> list[str]:
        """Every run's name: the policies, then the MABWiser references."""
        return [*self.policy_names(), *(MABWISER_REFERENCES[n][0] for n in self.references())]

    def memory_estimate(self, env: Any = None) -> dict[str, float]:
        """A lower estimate of the bytes a run holds at its peak (one worker), by part:

        - ``results``: every policy's ``(seeds, checkpoints)`` regret curves and ``(seeds, K)``
          arm counts, float64, kept to the end;
        - ``results as text``: the same values as Python lists and JSON / CSV text, while written;
        - ``round marks``: the runner's one byte per round of a block;
        - ``block``: one seed block's curves, counters, contexts, actions, problem instances and
          the largest policy's statistics (measured on the policy built for one and for two
          groups: a :func:`batched <banditformer.bench.bandits.plays_batched>` policy holds a
          group per seed of the block, any other one instance at a time);
        - ``checkpoint rounds``: the list of checkpoint rounds.

        Computed from the sizes alone, before anything of the run's size is allocated.
        """
        env = make_problem(self.problem, seed=self.seed) if env is None else env
        context_dim, k = problem_kind(env)
        arms, checkpoints = env.num_arms, min(self.checkpoints, self.horizon)
        names, block = self._names(), min(self.seed_block or self.seeds, self.seeds)
        values = len(names) * self.seeds * (checkpoints + arms)

        def state_bytes(policy: Any) -> int:
            return sum(t.numel() * t.element_size() for t in policy.state_dict().values() if isinstance(t, Tensor))

        policy_bytes, ours = 0, set(self.policy_names())
        for name in names:
            if name not in ours:
                continue  # a MABWiser reference (its label is no policy spec): one small MAB per seed
            try:
                one = make_spec_policy(name, num_arms=arms, context_dim=context_dim, seed=0)
                if one.supports_groups and one.deterministic:  # batched: a group per seed
                    two = state_bytes(
                        make_spec_policy(name, num_arms=arms, context_dim=context_dim, num_groups=2, seed=0)
                    )
                    per, shared = two - state_bytes(one), 2 * state_bytes(one) - two
                    need = shared + block * (per + PROBLEM_BYTES)  # and a problem instance per seed
                else:
                    need = state_bytes(one) + 4096 + PROBLEM_BYTES  # one instance at a time
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
        """``(first seed, number of seeds)`` per seed block, in order: the seeds ``0 .. seeds - 1``
        in runs of ``seed_block`` (all of them when it is 0)."""
        size = self.seed_block or self.seeds
        return [(start, min(size, self.seeds - start)) for start in range(0, self.seeds, size)]

    def problem_seed(self, s: int) -> int:
        """The seed of seed ``s``'s problem instance (its rewards and contexts): a function of
        ``seed`` and ``s`` alone."""
        return derive_seed(self.seed, "problem", check_int("s", s, low=0))

    def policy_seed(self, s: int) -> int:
        """The seed of seed ``s``'s policy instance (its own random draws): a function of ``seed``
        and ``s`` alone."""
        return derive_seed(self.seed, "policy", check_int("s", s, low=0))

    def rounds(self) -> list[int]:
        """The checkpoint rounds, increasing, ending at ``horizon``."""
        pts = torch.logspace(0, math.log10(self.horizon), self.checkpoints, dtype=torch.float64)
        return sorted({*(round(float(p)) for p in pts), self.horizon})

    def digest(self) -> str:
        """A short hash of the configuration (names the results folder)."""
        return config_digest(self.record())

    def record(self, like: dict[str, Any] | None = None) -> dict[str, Any]:
        """The configuration as its results folder records it: ``asdict`` and ``"streams":``
        :data:`BANDIT_STREAMS`; compared with a recorded configuration ``like`` that has no
        ``"streams"`` (one made with ``asdict``), without it."""
        doc = asdict(self)
        if like is None or "streams" in like:
            doc["streams"] = BANDIT_STREAMS
        return doc

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> BanditBenchConfig:
        """The configuration a results folder recorded (:meth:`record`; one without ``"streams"``
        is read as its fields: whether its jobs may resume is
        :func:`~banditformer.bench.bandits.run_bandits`'s check).

        Raises:
            InputValidationError: a record of other streams, or of unknown fields.
        """
        if not isinstance(doc, dict):
            raise InputValidationError(f"expected a recorded configuration (a dict), got {type(doc).__name__}")
        streams = doc.get("streams", BANDIT_STREAMS)
        if streams != BANDIT_STREAMS:
            raise InputValidationError(
                f"expected a configuration recorded with streams {BANDIT_STREAMS!r}, got {streams!r}"
            )
        fields = {k: v for k, v in doc.items() if k != "streams"}
        try:
            return cls(**fields)
        except TypeError as exc:
            raise InputValidationError(f"expected the fields of a bandit bench configuration, got: {exc}") from None


#: The fields of :class:`ModelBenchConfig` that are :class:`~banditformer.training.TrainConfig`'s
#: (the training schedule), passed to it as they are.
TRAIN_FIELDS = ("epochs", "batch_size", "lr", "objective")

#: Model-bench fields added after results folders were first recorded, with their defaults: left
#: out of the record (and so of the hash) while at their default, so that an older folder still
#: resumes with its recorded configuration.
LATER_FIELDS: dict[str, Any] = {"objective": "auto", "eval_shapes": False, "batch1_samples": 0, "curve": False}


@dataclass
class ModelBenchConfig:
    """What to run.

    Attributes:
        task: a registered task (``banditformer.list_tasks()``).
        controllers: registered controller names.
        lams: ``lam`` values for controllers that take one.
        budgets: FLOP budgets (fractions of the full model's FLOPs) for the budgeted baselines.
        dht_budgets: budgets for controllers that take ``flop_budget`` (``lam`` adapted to each).
        seeds: runs per configuration, with seeds ``seed, seed + 1, ...``.
        seed: the first seed.
        epochs, batch_size, lr, objective: the training schedule and objective: these fields of
            :class:`~banditformer.training.TrainConfig` (AdamW, cosine; ``objective`` ``"auto"``
            trains halting controllers' exits jointly), which checks them; every other one keeps
            its default (:meth:`train_config`).
        d_model, num_layers, num_heads, pooling, exit_heads: the model.
        warmup: share of the training steps on the full model before bandit controllers learn.
        layerdrop: LayerDrop's training drop rate.
        task_kwargs: options of the task.
        controller_kwargs: extra options per controller name; ``"budgets"`` among them gives
            that controller its own FLOP budgets instead of ``budgets``.
        eval_shapes: also score every trained network at every uniform shape (each depth, each
            head count, no halting) on the test split: the decisions-versus-weights ablation.
        batch1_samples: also time inference at batch 1 on this many test samples (0: not).
        curve: also record each trained network's whole operating curve (every operating point
            of its knob, scored on the validation and the test split) for the controllers with
            operating points, and report the area under the curve calibrated on validation at
            every budget (:func:`~banditformer.bench.stats.calibrated_area`).
        threads: intra-op threads of every run.
    """

    task: str = "digits"
    controllers: list[str] = field(default_factory=lambda: ["static", "static_small", "random", "layerdrop", "dht"])
    lams: list[float] = field(default_factory=lambda: [0.05, 0.2])
    budgets: list[float] = field(default_factory=lambda: [0.5, 0.25])
    dht_budgets: list[float] = field(default_factory=list)
    seeds: int = 1
    seed: int = 0
    # the training schedule (TRAIN_FIELDS): TrainConfig's own fields, checked by it
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-3
    # the model
    d_model: int = 64
    num_layers: int = 4
    num_heads: int = 4
    pooling: str = "cls"
    exit_heads: bool = False
    # the sweep
    warmup: float = 0.0
    layerdrop: float = 0.2
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    controller_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int = 1
    objective: str = "auto"
    eval_shapes: bool = False
    batch1_samples: int = 0
    curve: bool = False

    def __post_init__(self) -> None:
        check_registered("task", self.task)
        if isinstance(self.controllers, str):
            raise InputValidationError(f"expected a non-empty list of controller names, got {self.controllers!r}")
        check_registered("controller", self.controllers)
        for name in ("lams", "budgets", "dht_budgets"):
            values = getattr(self, name)
            if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
                raise InputValidationError(f"expected `{name}` to be a list of numbers, got {values!r}")
            for v in values:
                if name == "lams":
                    check_float("lams[i]", v, low=0.0)
                else:
                    check_float(f"{name}[i]", v, low=0.0, high=1.0, low_open=True)
        for name in ("seeds", "d_model", "num_layers", "num_heads", "threads"):
            check_int(name, getattr(self, name), low=1)
        check_int("batch1_samples", self.batch1_samples, low=0)
        for name in ("eval_shapes", "curve"):
            if not isinstance(getattr(self, name), bool):
                raise InputValidationError(f"expected `{name}` to be a bool, got {getattr(self, name)!r}")
        check_int("seed", self.seed, low=0, high=SEED_MAX)
        if self.seed + self.seeds - 1 > SEED_MAX:
            raise InputValidationError(
                f"expected the last seed (seed + seeds - 1) to be at most {SEED_MAX}, got {self.seed + self.seeds - 1}"
            )
        self.train_config(self.seed)  # the schedule, checked by TrainConfig
        check_float("warmup", self.warmup, low=0.0, high=1.0, high_open=True)
        check_float("layerdrop", self.layerdrop, low=0.0, high=1.0, high_open=True)
        if self.pooling not in ("cls", "mean"):
            raise InputValidationError(f"expected `pooling` in ('cls', 'mean'), got {self.pooling!r}")
        for name in ("task_kwargs", "controller_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise InputValidationError(f"expected `{name}` to be a dict, got {getattr(self, name)!r}")
        unknown = sorted(set(self.controller_kwargs) - set(self.controllers))
        if unknown:
            raise InputValidationError(f"expected controller_kwargs keys among {self.controllers}, got {unknown}")
        for name, options in self.controller_kwargs.items():
            if not isinstance(options, dict):
                raise InputValidationError(
                    f"expected controller_kwargs[{name!r}] to be a dict of options, got {options!r}"
                )

    def train_config(self, seed: int) -> TrainConfig:
        """The :class:`~banditformer.training.TrainConfig` of the run with ``seed``: the schedule's
        fields (:data:`TRAIN_FIELDS`), no progress bar, every other field at its default."""
        return TrainConfig(**{name: getattr(self, name) for name in TRAIN_FIELDS}, seed=seed, progress=False)

    @property
    def model(self) -> dict[str, Any]:
        """The model's :class:`~banditformer.model.TransformerConfig` options."""
        shape = {"d_model": self.d_model, "num_layers": self.num_layers, "num_heads": self.num_heads}
        return {**shape, "pooling": self.pooling, **({"exit_heads": True} if self.exit_heads else {})}

    def digest(self) -> str:
        """A short hash of the configuration (names the results folder)."""
        return config_digest(self.record())

    def record(self, like: dict[str, Any] | None = None) -> dict[str, Any]:
        """The configuration as its results folder records it: ``asdict`` without the
        :data:`LATER_FIELDS` that are at their defaults (those a recorded configuration ``like``
        holds are kept, to compare with it)."""
        doc = asdict(self)
        for name, default in LATER_FIELDS.items():
            if doc[name] == default and name not in (like or {}):
                del doc[name]
        return doc
