"""Ridge-regression statistics shared by the linear contextual policies (LinUCB, linear TS)."""

from __future__ import annotations

import torch
from torch import Tensor

from banditformer.bandits._common import add_at
from banditformer.core.policy import Policy


def ridge_fit(gram: Tensor, xr: Tensor, ridge: Tensor) -> tuple[Tensor, Tensor]:
    """Per-arm ridge regression.

    Args:
        gram: ``(..., d, d)`` sums of ``x x^T``.
        xr: ``(..., d)`` sums of ``r x``.
        ridge: the regulariser lambda > 0 (``A = lambda I + gram``).

    Returns:
        ``theta`` ``(..., d)``, the ridge estimate ``A^-1 xr``, and ``A^-1`` ``(..., d, d)``.
    """
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
        return theta.squeeze(-1), a_inv
    a_inv = torch.cholesky_inverse(chol)
    theta = torch.cholesky_solve(xr.unsqueeze(-1), chol).squeeze(-1)
    return theta, a_inv


def mean_and_width(context: Tensor, groups: Tensor, theta: Tensor, a_inv: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted reward ``x^T theta_a`` and its width ``sqrt(x^T A_a^-1 x)`` for every row and arm.

    Args:
        context: ``(n, d)``; groups: ``(n,)``; theta: ``(G, K, d)``; a_inv: ``(G, K, d, d)``.

    Returns:
        Two ``(n, K)`` tensors.

    One group (the common case) multiplies the contexts by the shared matrices, ``(n, K, d)`` of
    intermediates; several gather each row's ``(K, d, d)`` matrices, ``(n, K, d, d)``.
    """
    if theta.shape[0] == 1:
        mean = context @ theta[0].T  # (n, K)
        xa = torch.einsum("nd,kde->nke", context, a_inv[0])  # (n, K, d): no per-row copy of A^-1
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
