"""Gaussian Thompson sampling: a Normal prior on each arm's mean, Gaussian rewards of known scale."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.bandits._common import CountState, CountStepper
from banditformer.core.policy import Policy

__all__ = ["ThompsonGaussian", "ThompsonGaussianStepper", "gaussian_posterior"]


def gaussian_posterior(
    sums: Tensor, counts: Tensor, prior_mean: float, prior_std: float, noise_std: float
) -> tuple[Tensor, Tensor]:
    """Posterior mean and standard deviation of an arm's mean reward.

    With prior ``N(m0, s0^2)`` and rewards ``N(mu, sigma^2)``, after ``n`` rewards summing to ``S``:
    precision ``1/s0^2 + n/sigma^2`` and mean ``(m0/s0^2 + S/sigma^2) / precision``.
    """
    precision = 1.0 / prior_std**2 + counts / noise_std**2
    mean = (prior_mean / prior_std**2 + sums / noise_std**2) / precision
    return mean, torch.rsqrt(precision)


class ThompsonGaussian(CountState, Policy):
    """Thompson sampling for real-valued rewards with a conjugate Normal model per arm.

    Args:
        num_arms: K.
        prior_mean, prior_std: the Normal prior on each arm's mean.
        noise_std: the assumed reward noise (sigma).
        discount: gamma in (0, 1]; decays counts and sums by gamma per round (one row of a group).

    Examples:
        >>> p = ThompsonGaussian(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0] * 10 + [1] * 10), torch.tensor([3.0] * 10 + [-3.0] * 10))
        >>> p.select(n=4).tolist()
        [0, 0, 0, 0]
    """

    rows_independent = True  # one normal per row and arm

    def __init__(
        self,
        num_arms: int,
        *,
        prior_mean: float = 0.0,
        prior_std: float = 1.0,
        noise_std: float = 1.0,
        discount: float = 1.0,
        context_dim: int | None = None,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        self.add_hyperparameter("prior_mean", prior_mean)
        self.add_hyperparameter("prior_std", prior_std, low=0.0, low_open=True)
        self.add_hyperparameter("noise_std", noise_std, low=0.0, low_open=True)
        self._init_count_state(discount)

    def posterior(self) -> tuple[Tensor, Tensor]:
        """The ``(G, K)`` posterior means and standard deviations."""
        return gaussian_posterior(self.sums, self.counts, self.prior_mean, self.prior_std, self.noise_std)

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        mean, std = self.posterior()
        z = torch.randn(
            (groups.shape[0], self.num_arms), generator=self.generator, device=self.device, dtype=mean.dtype
        )
        return (mean[groups] + std[groups] * z).argmax(1)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        return self.posterior()[0][groups]  # the posterior mean, not CountState's empirical one

    def _stepper(self, group: int) -> ThompsonGaussianStepper:
        return ThompsonGaussianStepper(self, group)


class ThompsonGaussianStepper(CountStepper):
    """Gaussian Thompson sampling's lean stepper: the batched path's posterior and draw on one
    row (torch ops: ``rsqrt`` is not NumPy's), the count update in NumPy."""

    def _lean_select(self, context: Tensor | None) -> int:
        p: ThompsonGaussian = self._policy  # type: ignore[assignment]
        mean, std = p.posterior()
        g = self._groups
        z = torch.randn((1, p.num_arms), generator=p.generator, dtype=mean.dtype)
        return int((mean[g] + std[g] * z).argmax(1))
