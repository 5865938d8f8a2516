"""Bandit problems with known expected rewards, batched and seeded, for comparing policies.

Every problem has ``num_arms``, ``reward_range``, ``pull`` (one reward per row) and ``regret``
(each row's expected regret against the best action of its round). Two optional attributes say
what kind of problem it is, and the benchmark runner follows them:

- ``context_dim`` (an int): a contextual problem. ``contexts(n)`` starts a round by drawing
  ``(n, context_dim)`` contexts; ``pull`` and ``regret`` then refer to those rows.
- ``k`` (an int): a combinatorial semi-bandit. An action is a ``(n, num_arms)`` bool mask with
  ``k`` True entries per row; ``pull`` returns ``(n, num_arms)`` rewards (one per base arm; those
  not chosen are to be ignored) and ``regret`` the best ``k``-set's expected total minus the
  chosen set's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from banditformer.core.errors import InputValidationError
from banditformer.core.random import make_generator
from banditformer.core.validation import check_arms, check_float, check_int, check_tensor

__all__ = [
    "BERNOULLI_INSTANCES",
    "BernoulliProblem",
    "ClassificationProblem",
    "GaussianProblem",
    "LinearContextualProblem",
    "SeedStreams",
    "SwitchingBernoulliProblem",
    "TopKSemiBanditProblem",
    "classification_problem",
]

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

    Examples:
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

    Examples:
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


class TopKSemiBanditProblem(_MeansProblem):
    """A combinatorial semi-bandit: each round picks ``k`` of the Bernoulli base arms and sees a
    reward for each; the payoff is their sum. Regret: the ``k`` best means' sum minus the chosen
    ones'.

    Examples:
        >>> p = TopKSemiBanditProblem([0.9, 0.5, 0.1], k=2, seed=0)
        >>> chosen = torch.tensor([[True, False, True]])
        >>> p.pull(chosen).shape, [round(v, 6) for v in p.regret(chosen).tolist()]
        (torch.Size([1, 3]), [0.4])
    """

    reward_range = (0.0, 1.0)

    def __init__(
        self, means: Sequence[float] | Tensor, *, k: int, seed: int = 0, device: torch.device | str = "cpu"
    ) -> None:
        super().__init__(means, seed=seed, device=device)
        if bool(((self.means < 0) | (self.means > 1)).any()):
            raise InputValidationError(f"expected Bernoulli means in [0, 1], got {self.means.tolist()}")
        self.k = check_int("k", k, low=1, high=self.num_arms)
        self.best_total = float(self.means.topk(self.k).values.sum())

    def _check(self, chosen: object) -> Tensor:
        chosen = check_tensor("chosen", chosen, shape=(None, self.num_arms), kind="bool", device=self.means.device)
        sizes = chosen.sum(1)
        if chosen.shape[0] and bool((sizes != self.k).any()):
            raise InputValidationError(f"expected {self.k} chosen arms per row, got {sizes.unique().tolist()}")
        return chosen

    def regret(self, chosen: Tensor) -> Tensor:  # type: ignore[override]
        """``(n,)`` expected regret of each row's ``(n, K)`` chosen set."""
        chosen = self._check(chosen)
        return self.best_total - (chosen.double() * self.means).sum(1)

    def pull(self, chosen: Tensor) -> Tensor:
        """``(n, K)`` float32 rewards in {0, 1}, one per base arm (read only the chosen ones)."""
        chosen = self._check(chosen)
        u = torch.rand(chosen.shape, generator=self.generator, device=self.means.device, dtype=torch.float64)
        return (u < self.means).float()


class _ContextualProblem:
    """Shared by the contextual problems: ``contexts(n)`` draws the round, ``pull``/``regret``
    read the expected rewards of its rows."""

    reward_range = (0.0, 1.0)
    num_arms: int
    context_dim: int

    def __init__(self, seed: int, device: torch.device | str) -> None:
        self.seed = check_int("seed", seed, low=0)
        self.generator = make_generator(seed, torch.device(device))
        self._round: Tensor | None = None  # (n, K) expected rewards of the current round's rows

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def contexts(self, n: int) -> Tensor:
        """Start a round of ``n`` rows: ``(n, context_dim)`` float32 contexts."""
        check_int("n", n, low=1)
        x, self._round = self._draw(n)
        return x

    def _expected(self, arms: object) -> tuple[Tensor, Tensor]:
        if self._round is None:
            raise InputValidationError("expected contexts(n) to start a round before pull or regret, got none")
        arms = check_arms("arms", arms, self.num_arms, self._round.device, n=self._round.shape[0])
        return arms, self._round

    def regret(self, arms: Tensor) -> Tensor:
        """``(n,)`` expected regret of each row's arm against the best arm for its context."""
        arms, means = self._expected(arms)
        return means.max(1).values - means.gather(1, arms.unsqueeze(1)).squeeze(1)

    def pull(self, arms: Tensor) -> Tensor:
        """``(n,)`` float32 rewards in {0, 1}: Bernoulli with the expected reward of each row's arm."""
        arms, means = self._expected(arms)
        p = means.gather(1, arms.unsqueeze(1)).squeeze(1)
        u = torch.rand(p.shape, generator=self.generator, device=p.device, dtype=torch.float64)
        return (u < p).float()


class LinearContextualProblem(_ContextualProblem):
    """A linear contextual bandit: a context is ``x = [1, z]`` with ``z`` uniform on the unit
    sphere of ``R^(d-1)``; arm ``a`` pays Bernoulli(``x . theta_a``) with
    ``theta_a = [1/2, u_a / 2]`` and ``u_a`` a fixed unit vector, so expected rewards lie in
    ``[0, 1]`` and are exactly linear in the context (LinUCB's model).

    Args:
        num_arms: K.
        context_dim: d (>= 2; the first entry is the constant 1).
        instance_seed: draws the arms' directions (the problem); ``seed`` draws contexts and rewards.

    Examples:
        >>> p = LinearContextualProblem(num_arms=3, context_dim=4, seed=0)
        >>> x = p.contexts(5)
        >>> x.shape, p.pull(torch.zeros(5, dtype=torch.long)).shape
        (torch.Size([5, 4]), torch.Size([5]))
    """

    def __init__(
        self,
        num_arms: int = 5,
        context_dim: int = 6,
        *,
        instance_seed: int = 0,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(seed, device)
        self.num_arms = check_int("num_arms", num_arms, low=2)
        self.context_dim = check_int("context_dim", context_dim, low=2)
        check_int("instance_seed", instance_seed, low=0)
        u = torch.randn(num_arms, context_dim - 1, generator=make_generator(instance_seed), dtype=torch.float64)
        u = u / u.norm(dim=1, keepdim=True)
        self.theta = torch.cat([torch.full((num_arms, 1), 0.5, dtype=torch.float64), u / 2], 1).to(device)

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:
        dev = self.theta.device
        z = torch.randn(n, self.context_dim - 1, generator=self.generator, device=dev, dtype=torch.float64)
        x = torch.cat([torch.ones(n, 1, device=dev, dtype=torch.float64), z / z.norm(dim=1, keepdim=True)], 1)
        return x.float(), (x @ self.theta.T).clamp(0.0, 1.0)


class ClassificationProblem(_ContextualProblem):
    """A supervised data set as a contextual bandit (Dudik et al. 2011; Bietti et al. 2021): each
    row is a sample drawn uniformly (with replacement), its features the context, every class an
    arm; the right class pays 1, the others 0. Regret is the number of mistakes.

    Args:
        features: ``(N, d)`` float features (standardised here, then a constant 1 is appended,
            so ``context_dim`` is ``d + 1``).
        labels: ``(N,)`` int classes in ``[0, num_classes)``.

    Examples:
        >>> p = ClassificationProblem(torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2]), seed=0)
        >>> p.num_arms, p.context_dim, p.contexts(4).shape
        (3, 3, torch.Size([4, 3]))
    """

    def __init__(
        self,
        features: Tensor,
        labels: Tensor,
        *,
        name: str = "classification",
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(seed, device)
        x = check_tensor("features", features, ndim=2, kind="float").to(torch.float64)
        y = check_tensor("labels", labels, shape=(x.shape[0],), kind="int").long()
        if x.shape[0] < 2 or not bool(torch.isfinite(x).all()):
            raise InputValidationError(f"expected >= 2 samples of finite features, got {x.shape[0]} samples")
        if int(y.min()) < 0 or int(y.max()) < 1:
            raise InputValidationError(
                f"expected labels >= 0 of at least 2 classes, got labels in [{int(y.min())}, {int(y.max())}]"
            )
        std = x.std(0)
        x = (x - x.mean(0)) / torch.where(std > 0, std, 1.0)
        self.name = name
        self.features = torch.cat([x, torch.ones(x.shape[0], 1, dtype=torch.float64)], 1).float().to(device)
        self.labels = y.to(device)
        self.num_arms = int(y.max()) + 1
        self.context_dim = int(self.features.shape[1])

    def _draw(self, n: int) -> tuple[Tensor, Tensor]:
        dev = self.features.device
        idx = torch.randint(self.features.shape[0], (n,), generator=self.generator, device=dev)
        onehot = torch.zeros(n, self.num_arms, dtype=torch.float64, device=dev)
        onehot[torch.arange(n, device=dev), self.labels[idx]] = 1.0
        return self.features[idx], onehot


def classification_problem(dataset: str, *, seed: int = 0, device: torch.device | str = "cpu") -> ClassificationProblem:
    """scikit-learn's bundled ``"digits"`` (64 features, 10 classes) or ``"wine"`` (13 features,
    3 classes) as a :class:`ClassificationProblem`; needs ``pip install 'banditformer[tasks]'``."""
    loaders = {"digits": "load_digits", "wine": "load_wine"}
    if dataset not in loaders:
        raise InputValidationError(f"expected a data set in {sorted(loaders)}, got {dataset!r}")
    try:
        from sklearn import datasets
    except ImportError as exc:
        raise InputValidationError(
            f"expected scikit-learn for the {dataset!r} problem (pip install 'banditformer[tasks]'), got: {exc}"
        ) from None
    data = getattr(datasets, loaders[dataset])()
    x, y = torch.tensor(data.data, dtype=torch.float64), torch.tensor(data.target, dtype=torch.long)
    return ClassificationProblem(x, y, name=f"{dataset}_bandit", seed=seed, device=device)


class SeedStreams:
    """Instances of one problem side by side, one row each per round: row ``i`` of
    :meth:`contexts`, :meth:`pull` and :meth:`regret` is instance ``i``'s, drawn from its own
    generator exactly as a one-row call on instance ``i`` alone draws it. So each instance's
    stream (one per seed, in the benchmark) is the same whoever runs beside it.

    Stationary Bernoulli and Gaussian instances of the same means (the same registered problem)
    are drawn in one vectorised step (one one-row draw per generator, then one comparison);
    any other problem, a plugin's included, through its own one-row calls.

    Args:
        problems: one or more problems of the same kind and number of arms.

    Examples:
        >>> alone = BernoulliProblem([0.9, 0.1], seed=2).pull(torch.tensor([0]))
        >>> rows = SeedStreams([BernoulliProblem([0.9, 0.1], seed=s) for s in (1, 2)]).pull(torch.tensor([1, 0]))
        >>> bool(rows[1] == alone[0])
        True
    """

    def __init__(self, problems: Sequence[Any]) -> None:
        problems = list(problems)
        if not problems:
            raise InputValidationError("expected at least one problem instance, got none")
        first = problems[0]
        self.problems = problems
        self.num_arms = int(first.num_arms)
        self.reward_range = first.reward_range
        self.context_dim: int | None = getattr(first, "context_dim", None)
        self.k: int | None = getattr(first, "k", None)
        for q in problems[1:]:
            got = (q.num_arms, getattr(q, "context_dim", None), getattr(q, "k", None))
            if got != (self.num_arms, self.context_dim, self.k):
                raise InputValidationError(
                    f"expected instances of one problem (num_arms, context_dim, k) = "
                    f"{(self.num_arms, self.context_dim, self.k)}, got {got}"
                )
        kind = type(first)  # exactly these classes: a subclass may draw otherwise
        self._vectorised = kind in (BernoulliProblem, GaussianProblem) and all(
            type(q) is kind
            and torch.equal(q.means, first.means)
            and getattr(q, "std", None) == getattr(first, "std", None)
            for q in problems
        )
        self._gaps = first.gaps() if self._vectorised else None
        self._means_list = first.means.tolist() if self._vectorised else None
        self._gaps_list = self._gaps.tolist() if self._gaps is not None else None

    def __len__(self) -> int:
        return len(self.problems)

    def contexts(self) -> Tensor:
        """Start a round of a contextual problem: ``(n, context_dim)``, row ``i`` from instance ``i``."""
        if self.context_dim is None:
            raise InputValidationError("expected a contextual problem (with `context_dim`), got a context-free one")
        return torch.cat([q.contexts(1) for q in self.problems])

    def pull(self, actions: Tensor) -> Tensor:
        """Rewards of ``(n,)`` arms (``(n, K)`` masks on a semi-bandit): ``(n,)`` (``(n, K)``)."""
        if not self._vectorised:
            return torch.cat([q.pull(actions[i : i + 1]) for i, q in enumerate(self.problems)])
        first = self.problems[0]
        arms = check_arms("arms", actions, self.num_arms, first.means.device, n=len(self.problems))
        draw = torch.rand if isinstance(first, BernoulliProblem) else torch.randn
        u = torch.cat([
            draw((1,), generator=q.generator, device=first.means.device, dtype=torch.float64) for q in self.problems
        ])  # fmt: skip
        if isinstance(first, BernoulliProblem):
            return (u < first.means[arms]).float()
        return (first.means[arms] + first.std * u).float()

    def regret(self, actions: Tensor) -> Tensor:
        """``(n,)`` expected regret of each row's action on its instance (after its :meth:`pull`)."""
        if self._gaps is None:
            return torch.cat([q.regret(actions[i : i + 1]) for i, q in enumerate(self.problems)])
        arms = check_arms("arms", actions, self.num_arms, self._gaps.device, n=len(self.problems))
        return self._gaps[arms]

    def pull_one(self, arm: int) -> float:
        """The reward of ``arm`` on the only instance, a float: what ``pull(tensor([arm]))[0]`` is,
        without building tensors where the instance's kind allows (a loop of one run)."""
        q = self._only(arm)
        if self._means_list is None:
            return float(q.pull(torch.tensor([arm]))[0])
        if isinstance(q, BernoulliProblem):
            u = float(torch.rand((1,), generator=q.generator, device=q.means.device, dtype=torch.float64))
            return 1.0 if u < self._means_list[arm] else 0.0
        z = float(torch.randn((1,), generator=q.generator, device=q.means.device, dtype=torch.float64))
        return float(np.float32(self._means_list[arm] + q.std * z))  # float32, as `pull` returns

    def regret_one(self, arm: int) -> float:
        """The expected regret of ``arm`` on the only instance (after its pull), a float."""
        q = self._only(arm)
        if self._gaps_list is None:
            return float(q.regret(torch.tensor([arm]))[0])
        return self._gaps_list[arm]

    def _only(self, arm: object) -> Any:
        if len(self.problems) != 1:
            raise InputValidationError(f"expected streams of one instance for a scalar round, got {len(self.problems)}")
        if isinstance(arm, bool) or not isinstance(arm, int) or not 0 <= arm < self.num_arms:
            raise InputValidationError(f"expected an int arm in [0, {self.num_arms}), got {arm!r}")
        return self.problems[0]
