"""Stochastic bandit problems with known means, batched and seeded, for comparing policies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.random import make_generator
from banditformer.core.validation import check_arms, check_float, check_int

__all__ = ["BERNOULLI_INSTANCES", "BernoulliProblem", "GaussianProblem", "SwitchingBernoulliProblem"]

#: Standard Bernoulli instances: easy (wide gaps), close means, many arms.
BERNOULLI_INSTANCES: dict[str, list[float]] = {
    "easy": [0.9, 0.6, 0.5, 0.4, 0.2],
    "close": [0.5, 0.48, 0.46, 0.45, 0.44],
    "many": [0.7] + [0.6 - 0.01 * i for i in range(49)],
    "two": [0.6, 0.4],
    "ten": [0.8] + [0.7] * 9,
}


class _MeansProblem:
    """A K-armed problem with fixed arm means; ``pull`` draws one reward per played arm."""

    #: The interval every reward lies in.
    reward_range: tuple[float, float] = (float("-inf"), float("inf"))

    def __init__(self, means: Sequence[float] | Tensor, *, seed: int = 0, device: torch.device | str = "cpu") -> None:
        m = torch.as_tensor(means, dtype=torch.float64, device=device).flatten()
        if m.numel() < 1 or not bool(torch.isfinite(m).all()):
            raise InputValidationError(f"expected at least one finite arm mean, got {m.tolist()}")
        self.means = m
        self.num_arms = int(m.numel())
        self.seed = check_int("seed", seed, low=0)
        self.generator = make_generator(seed, m.device)

    @property
    def best_mean(self) -> float:
        return float(self.means.max())

    @property
    def best_arm(self) -> int:
        return int(self.means.argmax())

    def gaps(self) -> Tensor:
        """``(K,)`` suboptimality gaps ``best - mean``."""
        return self.means.max() - self.means

    def regret(self, arms: Tensor) -> Tensor:
        """``(n,)`` expected (pseudo-)regret of each played arm."""
        arms = check_arms("arms", arms, self.num_arms, self.means.device)
        return self.gaps()[arms]

    def pull(self, arms: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class BernoulliProblem(_MeansProblem):
    """Arm ``a`` pays 1 with probability ``means[a]``, else 0.

    >>> p = BernoulliProblem([0.9, 0.1], seed=0)
    >>> p.pull(torch.tensor([0, 1, 0])).shape
    torch.Size([3])
    """

    reward_range = (0.0, 1.0)

    def __init__(self, means: Sequence[float] | Tensor, *, seed: int = 0, device: torch.device | str = "cpu") -> None:
        super().__init__(means, seed=seed, device=device)
        if bool(((self.means < 0) | (self.means > 1)).any()):
            raise InputValidationError(f"expected Bernoulli means in [0, 1], got {self.means.tolist()}")

    @classmethod
    def instance(cls, name: str, *, seed: int = 0, device: torch.device | str = "cpu") -> BernoulliProblem:
        """A standard instance from :data:`BERNOULLI_INSTANCES`."""
        if name not in BERNOULLI_INSTANCES:
            raise InputValidationError(f"expected an instance in {sorted(BERNOULLI_INSTANCES)}, got {name!r}")
        return cls(BERNOULLI_INSTANCES[name], seed=seed, device=device)

    def pull(self, arms: Tensor) -> Tensor:
        """``(n,)`` float32 rewards in {0, 1} for ``(n,)`` arms."""
        arms = check_arms("arms", arms, self.num_arms, self.means.device)
        u = torch.rand(arms.shape, generator=self.generator, device=self.means.device, dtype=torch.float64)
        return (u < self.means[arms]).float()


class GaussianProblem(_MeansProblem):
    """Arm ``a`` pays ``N(means[a], std^2)``."""

    def __init__(
        self, means: Sequence[float] | Tensor, *, std: float = 1.0, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(means, seed=seed, device=device)
        self.std = check_float("std", std, low=0.0, low_open=True)

    def pull(self, arms: Tensor) -> Tensor:
        arms = check_arms("arms", arms, self.num_arms, self.means.device)
        z = torch.randn(arms.shape, generator=self.generator, device=self.means.device, dtype=torch.float64)
        return (self.means[arms] + self.std * z).float()


class SwitchingBernoulliProblem(_MeansProblem):
    """A non-stationary Bernoulli problem with abrupt changes: the arm means jump to the next of
    ``phases`` every ``period`` rounds (cycling). One :meth:`pull` call is one round for all its
    rows; :meth:`regret` is measured against the means of the latest pull's round.

    >>> p = SwitchingBernoulliProblem([[0.9, 0.1], [0.1, 0.9]], period=2, seed=0)
    >>> [int(p.pull(torch.tensor([0])).numel()) and p.best_arm_of_last_round for _ in range(4)]
    [0, 0, 1, 1]
    """

    reward_range = (0.0, 1.0)

    def __init__(
        self, phases: Sequence[Sequence[float]], *, period: int = 500, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        table = torch.as_tensor(phases, dtype=torch.float64, device=device)
        if table.ndim != 2 or table.shape[0] < 1:
            raise InputValidationError(f"expected phases as a (P, K) table of means, got shape {tuple(table.shape)}")
        if bool(((table < 0) | (table > 1)).any()):
            raise InputValidationError(f"expected Bernoulli means in [0, 1], got {table.tolist()}")
        super().__init__(table[0], seed=seed, device=device)
        self.phases = table
        self.period = check_int("period", period, low=1)
        self.round = 0  # rounds pulled so far
        self._last = table[0]

    def _means_at(self, t: int) -> Tensor:
        return self.phases[(t // self.period) % self.phases.shape[0]]

    @property
    def best_arm_of_last_round(self) -> int:
        return int(self._last.argmax())

    def regret(self, arms: Tensor) -> Tensor:
        arms = check_arms("arms", arms, self.num_arms, self.means.device)
        return (self._last.max() - self._last)[arms]

    def pull(self, arms: Tensor) -> Tensor:
        """``(n,)`` rewards in {0, 1} for ``(n,)`` arms, all at this round's means; then the clock
        moves on one round."""
        arms = check_arms("arms", arms, self.num_arms, self.means.device)
        self._last = self._means_at(self.round)
        self.means = self._means_at(self.round + 1)  # what the next round pays
        self.round += 1
        u = torch.rand(arms.shape, generator=self.generator, device=self._last.device, dtype=torch.float64)
        return (u < self._last[arms]).float()
