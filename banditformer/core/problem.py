"""The bandit-problem protocols the benchmark runner follows (structural: any object with these
members is a problem; the built-in ones are in :mod:`banditformer.problems`).

Examples:
    >>> from banditformer.problems import BernoulliProblem
    >>> p = BernoulliProblem([0.2, 0.8], seed=0)
    >>> isinstance(p, BanditProblem), isinstance(p, ContextualProblem)
    (True, False)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

__all__ = ["BanditProblem", "CombinatorialProblem", "ContextualProblem"]


@runtime_checkable
class BanditProblem(Protocol):
    """A K-armed problem with known expected rewards.

    Attributes:
        num_arms: K.
        reward_range: the interval every reward lies in.
    """

    num_arms: int
    reward_range: tuple[float, float]

    def pull(self, arms: Tensor) -> Tensor:
        """``(n,)`` rewards of the played ``(n,)`` arms (``(n, K)`` per base arm for a semi-bandit)."""
        ...

    def regret(self, arms: Tensor) -> Tensor:
        """``(n,)`` expected regret of each row's action against the best action of its round."""
        ...


@runtime_checkable
class ContextualProblem(BanditProblem, Protocol):
    """A contextual problem: ``contexts(n)`` starts a round by drawing ``(n, context_dim)``
    contexts; ``pull`` and ``regret`` then refer to those rows."""

    context_dim: int

    def contexts(self, n: int) -> Tensor:
        """``(n, context_dim)`` contexts of the next round."""
        ...


@runtime_checkable
class CombinatorialProblem(BanditProblem, Protocol):
    """A combinatorial semi-bandit: an action is a ``(n, K)`` bool mask with ``k`` True entries
    per row; ``pull`` returns ``(n, K)`` rewards (those of unchosen arms are to be ignored)."""

    k: int
