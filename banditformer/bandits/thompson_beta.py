"""Beta-Bernoulli Thompson sampling, for rewards in [0, 1] through the Bernoulli trick."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from banditformer.bandits._beta import BetaPosteriorMixin
from banditformer.bandits._common import update_kernels
from banditformer.bandits._compiled import NO_GROUPS, buffer_views, draw_seed, kernels, raise_first, written
from banditformer.bandits._matching import argmax_probabilities
from banditformer.core.policy import Policy
from banditformer.core.random import counter_seed, counter_uniforms
from banditformer.core.stepper import LeanStepper
from banditformer.core.validation import value_checks_enabled

__all__ = ["MATCH_ROWS", "ThompsonBeta", "ThompsonBetaStepper"]

#: The fewest rows of a CPU ``select`` call that ``draws="row"`` draws by probability matching
#: (below it, drawing a Beta sample per row and arm is cheaper than the quadrature).
MATCH_ROWS = 128

_BETA_VIEWS = ("successes", "failures", "arm_counts", "arm_reward_sums")  # what beta_update writes
_NO_UNIFORMS = np.empty(0)


class ThompsonBeta(BetaPosteriorMixin, Policy):
    """Thompson sampling with a Beta prior per arm (Agrawal and Goyal 2012).

    A reward ``r`` in [0, 1] is turned into a Bernoulli outcome ``b ~ Bernoulli(r)`` (the Bernoulli
    trick, drawn from the policy's generator), and ``b`` updates the arm's Beta posterior. With
    ``bernoulli_trick=False`` the posterior takes ``r`` and ``1 - r`` directly (deterministic
    updates, fractional counts). ``discount < 1`` decays successes and failures by that factor per
    round (each row of a group), pulling the posterior back towards the prior.

    Args:
        num_arms: K.
        prior_alpha, prior_beta: the Beta prior (both > 0).
        discount: gamma in (0, 1].
        bernoulli_trick: see above.
        draws: ``"row"`` (each row draws its own posterior sample) or ``"group"`` (batched Thompson
            sampling: one draw per group and ``select`` call, shared by the group's rows; a
            different algorithm, which gives the rows of a group the same arm).

    With ``draws="row"``, a CPU ``select`` call of at least :data:`MATCH_ROWS` rows per group it
    touches draws by probability matching: each arm's probability of holding the highest
    posterior sample, by quadrature once for each of those groups
    (:mod:`banditformer.bandits._matching`), and one uniform per row picks its arm from them.
    That is the law of a Beta draw per row and arm (another random stream), at ``O(G K)``
    quadrature and ``O(n)`` draws instead of ``2 n K`` Gamma variates.
    Fewer rows, another device, a prior below 1, or probabilities that do not sum to 1 draw a
    Beta sample per row and arm.

    Propensities (``select(..., propensity=True)``, :meth:`action_probabilities`) are the
    quadrature's probabilities, for both ``draws``, where it applies (a prior of at least 1),
    else the Monte-Carlo estimate.

    Examples:
        >>> p = ThompsonBeta(num_arms=2, seed=0)
        >>> p.update(torch.tensor([0] * 20 + [1] * 20), torch.tensor([1.0] * 20 + [0.0] * 20))
        >>> p.select(n=5).tolist()
        [0, 0, 0, 0, 0]
    """

    def _select(self, context: Tensor | None, groups: Tensor) -> Tensor:
        n = groups.shape[0]
        if self.draws == "row" and n >= MATCH_ROWS and self.device.type == "cpu":
            present, index = self._present(groups)
            if n >= MATCH_ROWS * (1 if present is None else present.shape[0]):  # rows per quadrature
                p = self._argmax_probabilities(present)
                if p is not None:
                    return self._draw_matched(p, index, n)
        return self._draw(groups, lambda samples: samples.argmax(1))  # the arm of the highest sample

    def _present(self, groups: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """The groups a call's rows belong to, sorted, and each row's index into them; ``None``
        and ``None`` for a policy of one group."""
        if self.num_groups == 1:
            return None, None
        present, index = torch.unique(groups, sorted=True, return_inverse=True)
        return present, index

    def _argmax_probabilities(self, present: Tensor | None = None) -> np.ndarray | None:
        """``(G', K)`` float64 (NumPy): each arm's probability of the highest posterior sample in
        each group of ``present`` (default: every group), or ``None`` where the quadrature does
        not apply (:mod:`banditformer.bandits._matching`)."""
        if self.min_concentration < 1.0:
            return None
        successes, failures = self.successes.detach(), self.failures.detach()
        if present is not None:
            successes, failures = successes[present], failures[present]
        alpha = successes.cpu().numpy() + float(self.prior_alpha)
        beta = failures.cpu().numpy() + float(self.prior_beta)
        return argmax_probabilities(alpha, beta, kernels())

    def _draw_matched(self, p: np.ndarray, index: Tensor | None, n: int) -> Tensor:
        """One arm for each of ``n`` rows from the probabilities ``p[index[i]]`` (``index``
        ``None``: row 0 of ``p`` for every row): row ``i`` takes the first arm whose cumulative probability exceeds
        the ``i``-th uniform of a counter stream seeded by one draw of the policy's generator
        (:func:`~banditformer.core.random.counter_uniforms`); an arm of probability 0 is never
        drawn. The kernel and the torch path give the same arms."""
        cdf = np.cumsum(p, axis=1)
        cdf[:, -1] = 1.0  # the rounding of the sum: a uniform below 1 always finds an arm
        kern = kernels()
        if kern is not None:
            out = torch.empty(n, dtype=torch.int64)
            rows = NO_GROUPS if index is None else index.numpy()
            kern.draw_categorical(cdf, rows, np.uint64(draw_seed(self)), out.numpy())
            return out
        u = counter_uniforms(counter_seed(self.generator), n)
        table = torch.from_numpy(cdf)
        if index is None:
            arms = torch.searchsorted(table[0], u, right=True)
        else:
            arms = torch.searchsorted(table[index], u.unsqueeze(1), right=True).squeeze(1)
        return arms.clamp_(max=self.num_arms - 1)

    def _action_probabilities(self, context: Tensor | None, groups: Tensor) -> Tensor | None:
        present, index = self._present(groups)  # every draws' law: "group" too, per row
        p = self._argmax_probabilities(present)
        if p is None:
            return None
        table = torch.from_numpy(p).to(self.device)
        return table.expand(groups.shape[0], -1) if index is None else table[index.to(self.device)]

    def _update(self, arms: Tensor, rewards: Tensor, context: Tensor | None, groups: Tensor) -> None:
        self._observe_outcomes(rewards, groups, arms, None)

    def _compiled_update(self, arms: object, rewards: object, context: object, groups: object) -> bool:
        # Two kernel calls (check, then apply) around the Bernoulli trick's uniforms, drawn as the
        # torch path draws them, for a built-in class on the CPU without a discount; anything
        # else takes the torch path.
        kern = update_kernels(self, arms, rewards, context, groups, "successes")
        if kern is None:
            return False
        assert isinstance(arms, Tensor) and isinstance(rewards, Tensor)  # cpu_rows says so
        views = buffer_views(self, _BETA_VIEWS)
        rows = (arms.numpy(), rewards.numpy())
        group_rows = NO_GROUPS if groups is None else groups.numpy()  # type: ignore[union-attr]
        bad = kern.beta_update(*rows, _NO_UNIFORMS, group_rows, self.num_groups, value_checks_enabled(), False, *views)
        if bad:  # nothing was drawn or written
            raise_first(self, kern, bad, arms, rewards, None, groups)
        if arms.shape[0] == 0:
            return True
        uniforms = _NO_UNIFORMS
        if self.bernoulli_trick:  # bernoulli_outcomes' draw: one float64 uniform per row
            uniforms = torch.rand(arms.shape, generator=self.generator, dtype=torch.float64).numpy()
        kern.beta_update(*rows, uniforms, group_rows, self.num_groups, False, True, *views)
        written(self, _BETA_VIEWS)
        return True

    def _stepper(self, group: int) -> ThompsonBetaStepper | None:
        # Lean where one row's draw is the batched path's: the direct Gamma sampler (a prior of at
        # least 1, sample_beta's min_concentration), and one group's draw per row.
        if self.min_concentration < 1.0 or (self.draws == "group" and self.num_groups > 1):
            return None
        return ThompsonBetaStepper(self, group)


class ThompsonBetaStepper(LeanStepper):
    """Beta Thompson sampling's lean stepper: the group's posterior in NumPy, one call of torch's
    Gamma sampler on the stacked ``(2, K)`` concentrations (the batched path's call, so the same
    draws), and the Bernoulli trick's uniform from the policy's generator."""

    def _bind(self) -> None:
        super()._bind()
        self._successes = self._view("successes")[self._group]
        self._failures = self._view("failures")[self._group]
        self._prior_alpha = self._view("prior_alpha")
        self._prior_beta = self._view("prior_beta")
        self._discount = self._view("discount")
        self._concentration = torch.empty(2, self._policy.num_arms, dtype=torch.float64)
        self._conc = self._concentration.numpy()

    def _lean_select(self, context: Tensor | None) -> int:
        conc = self._conc
        np.add(self._prior_alpha, self._successes, out=conc[0])
        np.add(self._prior_beta, self._failures, out=conc[1])
        x, y = torch._standard_gamma(self._concentration, generator=self._policy.generator).numpy()
        return int((x / (x + y)).argmax())

    def _lean_update(self, arm: int, reward: float, context: Tensor | None) -> None:
        trick = self._policy.bernoulli_trick  # type: ignore[attr-defined]
        outcome = (1.0 if self._uniform() < reward else 0.0) if trick else reward  # as bernoulli_outcomes
        gamma = float(self._discount)
        if gamma != 1.0:
            self._successes *= gamma
            self._failures *= gamma
        self._successes[arm] += outcome
        self._failures[arm] += 1.0 - outcome
