"""Ridge-regression statistics shared by the linear contextual policies (LinUCB, linear TS)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from banditformer.bandits._common import add_at
from banditformer.bandits._compiled import (
    buffer_views,
    builtin,
    context_bound,
    context_rows,
    cpu_rows,
    kernels,
    raise_first,
    written,
)
from banditformer.core.policy import Policy
from banditformer.core.stepper import LeanStepper
from banditformer.core.validation import value_checks_enabled

_LINEAR_VIEWS = ("gram", "xr", "arm_counts", "arm_reward_sums")  # what linear_update writes


def ridge_fit(gram: Tensor, xr: Tensor, ridge: Tensor) -> tuple[Tensor, Tensor]:
    """Per-arm ridge regression.

    Args:
        gram: ``(..., d, d)`` sums of ``x x^T``.
        xr: ``(..., d)`` sums of ``r x``.
        ridge: the regulariser lambda > 0 (``A = lambda I + gram``).

    Returns:
        ``theta`` ``(..., d)``, the ridge estimate ``A^-1 xr``, and ``A^-1`` ``(..., d, d)``.
    """
    theta, a_inv, _ = ridge_fit_status(gram, xr, ridge)
    return theta, a_inv


def ridge_fit_status(gram: Tensor, xr: Tensor, ridge: Tensor) -> tuple[Tensor, Tensor, bool]:
    """:func:`ridge_fit`, and whether every matrix took the Cholesky path (False: rounding broke
    positive definiteness somewhere and the whole batch was inverted spectrally)."""
    d = gram.shape[-1]
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    design = gram + ridge * eye
    chol, info = torch.linalg.cholesky_ex(design)
    if bool((info > 0).any()):
        # Rounding broke positive definiteness (huge or many repeated contexts: 1e16 + 1 == 1e16).
        # The exact matrix has every eigenvalue >= lambda; restore that and invert spectrally.
        vals, vecs = torch.linalg.eigh(design)
        inv_vals = 1.0 / vals.clamp(min=ridge)
        vecs_t = vecs.transpose(-1, -2)
        a_inv = (vecs * inv_vals.unsqueeze(-2)) @ vecs_t
        # theta in the eigenbasis, not as a_inv @ xr: a_inv's entries round the small eigenvalues
        # 1 / vals of the large directions away (0.5 + 1e-17 == 0.5), and with them the fit.
        theta = vecs @ (inv_vals * (vecs_t @ xr.unsqueeze(-1)).squeeze(-1)).unsqueeze(-1)
        return theta.squeeze(-1), a_inv, False
    a_inv = torch.cholesky_inverse(chol)
    theta = torch.cholesky_solve(xr.unsqueeze(-1), chol).squeeze(-1)
    return theta, a_inv, True


def mean_and_width(context: Tensor, groups: Tensor, theta: Tensor, a_inv: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted reward ``x^T theta_a`` and its width ``sqrt(x^T A_a^-1 x)`` for every row and arm.

    Args:
        context: ``(n, d)``; groups: ``(n,)``; theta: ``(G, K, d)``; a_inv: ``(G, K, d, d)``.

    Returns:
        Two ``(n, K)`` tensors.

    One group (the common case) multiplies the contexts by the shared matrices: ``(n, d * d)``
    intermediates for ``d <= 2K``, else ``(n, K, d)``; several groups gather each row's
    ``(K, d, d)`` matrices, ``(n, K, d, d)``.
    """
    if theta.shape[0] == 1:
        mean = context @ theta[0].T  # (n, K)
        n, d = context.shape
        k = a_inv.shape[1]
        if d <= 2 * k:
            # x^T A x = <x x^T, A>: one (n, d*d) @ (d*d, K) product, no per-row copy of A^-1
            # (5x faster than the einsum below at n = 4096, K = 10, d = 8; (n, d*d) intermediates)
            outer = (context.unsqueeze(2) * context.unsqueeze(1)).reshape(n, d * d)
            quad = outer @ a_inv[0].reshape(k, d * d).T
        else:  # (n, K, d) intermediates, fewer than (n, d*d) when d > 2K
            xa = torch.einsum("nd,kde->nke", context, a_inv[0])
            quad = (xa * context.unsqueeze(1)).sum(-1)
        return mean, quad.clamp(min=0.0).sqrt()
    mean = torch.einsum("nd,nkd->nk", context, theta[groups])
    quad = torch.einsum("nd,nkde,ne->nk", context, a_inv[groups], context)
    return mean, quad.clamp(min=0.0).sqrt()


class LinearPolicy(Policy):
    """Disjoint linear models (one ridge regression per arm and group) on the context.

    Args:
        num_arms: K.
        context_dim: d.
        ridge: the ridge regulariser lambda > 0.
    """

    is_contextual = True
    # Keeps x x^T and its sums finite in float64.
    context_bound = 1e100

    def __init__(
        self,
        num_arms: int,
        *,
        context_dim: int | None = None,
        ridge: float = 1.0,
        num_groups: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__(num_arms, context_dim=context_dim, num_groups=num_groups, seed=seed)
        d = int(self.context_dim)  # checked by the base class
        self.add_hyperparameter("ridge", ridge, low=0.0, low_open=True)
        self.add_state("gram", torch.zeros(num_groups, num_arms, d, d, dtype=torch.float64))
        self.add_state("xr", torch.zeros(num_groups, num_arms, d, dtype=torch.float64))

    def fit(self) -> tuple[Tensor, Tensor]:
        """The ``(G, K, d)`` ridge estimates and ``(G, K, d, d)`` inverse design matrices."""
        return ridge_fit(self.gram, self.xr, self.ridge)

    def predict(self, context: Tensor, groups: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(n, K)`` predicted rewards ``x^T theta_a`` and widths ``sqrt(x^T A_a^-1 x)`` of
        ``(n, d)`` checked contexts under the current fit (:func:`mean_and_width`)."""
        theta, a_inv = self.fit()
        return mean_and_width(context.to(torch.float64), groups, theta, a_inv)

    def _means(self, context: Tensor | None, groups: Tensor) -> Tensor:
        assert context is not None
        return self.predict(context, groups)[0]

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        assert context is not None  # the base class requires it for contextual policies
        x = context.to(torch.float64)
        add_at(self.gram, groups, arms, x.unsqueeze(2) * x.unsqueeze(1))  # (n, d, d)
        add_at(self.xr, groups, arms, rewards.unsqueeze(1) * x)  # (n, d)

    def _compiled_update(self, arms: object, rewards: object, context: object, groups: object) -> bool:
        # _update and the lifetime statistics in one kernel call (banditformer.bandits._compiled),
        # for a built-in class on the CPU; anything else takes the torch path
        kern = kernels() if builtin(self) and self._buffers["gram"].is_cpu else None
        if kern is None or not cpu_rows(arms, rewards, groups):
            return False
        rows = context_rows(self, context, None, groups)
        if rows is None or rows[0].shape[0] != arms.shape[0]:  # type: ignore[union-attr]
            return False
        assert isinstance(arms, Tensor) and isinstance(rewards, Tensor) and isinstance(context, Tensor)
        bound = context_bound(self, context.dtype)
        gram, xr, arm_counts, arm_sums = buffer_views(self, _LINEAR_VIEWS)
        low, high = self.reward_range
        bad = kern.linear_update(
            arms.numpy(), rewards.numpy(), rows[0], rows[1], self.num_groups, value_checks_enabled(), low, high, bound,
            gram, xr, arm_counts, arm_sums,
        )  # fmt: skip
        if bad:  # nothing was written
            raise_first(self, kern, bad, arms, rewards, context, groups)
        written(self, _LINEAR_VIEWS)
        return True


class LinearStepper(LeanStepper):
    """The lean stepper of a :class:`LinearPolicy`: it keeps the fit of every group and arm between
    rounds and, after its own update of one arm, refits only that arm (the same Cholesky
    factorisation, inverse and solve that :func:`ridge_fit` runs on each matrix of its batch, so
    the same numbers). Any other change of the statistics (a batched update, a load, another
    stepper: told by the tensors' version counters), or a fit that needed the spectral fallback,
    refits everything as the batched path does. Subclasses add ``_lean_select`` on
    :meth:`_predict`."""

    def _bind(self) -> None:
        super()._bind()
        self._fit: tuple[Tensor, Tensor] | None = None  # (G, K, d) estimates, (G, K, d, d) inverses
        self._exact = False  # every matrix of the fit took the Cholesky path
        self._versions: tuple[int, ...] = ()  # the statistics' version counters the fit is of
        self._stale: int | None = None  # the one arm this stepper updated since

    def _state_versions(self) -> tuple[int, ...]:
        p: Any = self._policy
        return (p.gram._version, p.xr._version, p.ridge._version)

    def _fitted(self) -> tuple[Tensor, Tensor]:
        """The ridge fit of the current state, as :meth:`LinearPolicy.fit` gives it."""
        p: Any = self._policy
        if self._fit is None or self._state_versions() != self._versions or not self._exact:
            theta, a_inv, self._exact = ridge_fit_status(p.gram, p.xr, p.ridge)
            self._fit, self._versions, self._stale = (theta, a_inv), self._state_versions(), None
        elif self._stale is not None:
            g, a = self._group, self._stale
            theta, a_inv, exact = ridge_fit_status(p.gram[g, a], p.xr[g, a], p.ridge)
            if not exact:  # the batched path then inverts every matrix spectrally
                self._fit = None
                return self._fitted()
            self._fit[0][g, a] = theta
            self._fit[1][g, a] = a_inv
            self._stale = None
        return self._fit

    def _predict(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """The ``(1, K)`` predicted rewards and widths of one checked ``(1, d)`` context."""
        theta, a_inv = self._fitted()
        return mean_and_width(context.to(torch.float64), self._groups, theta, a_inv)

    def _lean_update(self, arm: int, reward: float, context: Tensor | None) -> None:
        assert context is not None
        p: Any = self._policy
        current = self._fit is not None and self._state_versions() == self._versions
        x = context.to(torch.float64)[0]
        p.gram[self._group, arm].add_(x.unsqueeze(1) * x.unsqueeze(0))  # add_at's (d, d) increment
        p.xr[self._group, arm].add_(reward * x)
        if current and self._stale in (None, arm):  # the fit stays that of the state but for this arm
            self._versions = self._state_versions()
            self._stale = arm
