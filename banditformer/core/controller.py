"""The architecture-controller contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from banditformer.core.decision import Decision
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import ExitPoint, check_halt, check_route
from banditformer.core.state import CheckedModule, locked, restored_on_error, trusted
from banditformer.core.validation import check_context, check_int, check_rewards

__all__ = ["Controller"]


class Controller(CheckedModule, ABC):
    """Decides, per sample, how many layers run and which heads each layer uses.

    Subclasses implement ``_decide`` and ``_feedback``; the public methods check their inputs.
    Decisions come up front (``decide``: a planned depth and head sets from the stem's context)
    and, for a controller whose :attr:`halts` is True, also at every exit point on the way
    (``halt``: which of the samples still running stop there, from that exit's logits; see
    :class:`~banditformer.core.exits.ExitPoint`). Such a controller's ``feedback`` receives each
    sample's quality at every exit it passed (``exit_quality``). A controller whose
    :attr:`routes` is True chooses each block's head set at the exit point before it, as the
    sample goes (``route``); the head sets of the decision it made up front then stand only for the
    blocks it is not asked about.
    A controller holds no learned router: its decisions come from bandit statistics (or are fixed,
    for baselines). Its state dict holds its configuration (:meth:`add_config`, checked on load),
    its adaptive state and statistics, its policies' states, and the state of its ``generator``
    attribute when it has one (a ``torch.Generator``): a load checks all of it first.

    Args:
        num_layers: L, the model's number of layers.
        num_heads: H, the number of attention heads per layer.
    """

    def __init__(self, num_layers: int, num_heads: int) -> None:
        super().__init__()
        self.add_config("num_layers", check_int("num_layers", num_layers, low=1))
        self.add_config("num_heads", check_int("num_heads", num_heads, low=1))
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        gen = getattr(self, "generator", None)
        if isinstance(gen, torch.Generator):
            state["rng_state"] = gen.get_state()
        return state

    def check_extra_state(self, key: str, state: Any) -> None:
        super().check_extra_state(key, state)
        gen = getattr(self, "generator", None)
        if isinstance(gen, torch.Generator) and isinstance(state, Mapping):
            rng = state.get("rng_state")
            try:
                if not isinstance(rng, Tensor):
                    raise TypeError(f"got {type(rng).__name__}")
                torch.Generator(device=gen.device).set_state(rng.cpu())
            except (RuntimeError, TypeError, ValueError) as exc:
                raise InputValidationError(
                    f"expected `{key}`['rng_state'] to be the state of a {gen.device.type} generator, got one it "
                    f"refuses ({str(exc).splitlines()[0]})"
                ) from None

    def set_extra_state(self, state: Any) -> None:
        gen = getattr(self, "generator", None)
        if isinstance(gen, torch.Generator) and isinstance(state, Mapping) and "rng_state" in state:
            gen.set_state(state["rng_state"].cpu())

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def state_reductions(self) -> dict[str, str | None]:
        """Data-parallel reductions of the controller's own buffers (its policies declare theirs):
        name -> ``"sum"``, ``"mean"``, ``"max"``, ``"min"`` or ``None`` (identical on every rank);
        see :mod:`banditformer.training.distributed`. Empty by default."""
        return {}

    @property
    def wants_head_importance(self) -> bool:
        """True when :meth:`feedback` needs ``head_importance`` (a trainer then gates the heads
        to measure it); False by default."""
        return False

    @property
    def halts(self) -> bool:
        """True when the controller decides at exit points (:meth:`halt`): the model then
        evaluates every exit a sample passes and asks it there; False by default (the planned
        depth stands)."""
        return False

    @property
    def routes(self) -> bool:
        """True when the controller chooses the head set of block ``d`` at exit point ``d``, from
        what the model knows there (:meth:`route`): the model then evaluates every exit a sample
        passes and asks it, after :meth:`halt`, for the samples going on; False by default (the
        decision's head sets stand)."""
        return False

    @locked
    def halt(self, point: ExitPoint, decision: Decision, explore: bool = True) -> Tensor:
        """Which samples stop at exit point ``point.depth``.

        Args:
            point: the samples still running and what the model knows about them
                (:class:`~banditformer.core.exits.ExitPoint`; ``point.rows`` index the batch).
            decision: what :meth:`decide` returned for the whole batch (its record included).
            explore: as in :meth:`decide`.

        Returns:
            ``(n,)`` bool, True for the samples of ``point`` that stop here.
        """
        self._check_point(point, decision)
        mask = self._halt(point, decision, bool(explore))
        return check_halt(mask, point, type(self).__name__)

    def _check_point(self, point: object, decision: object) -> None:
        if not isinstance(point, ExitPoint):
            raise InputValidationError(f"expected `point` to be an ExitPoint, got {type(point).__name__}")
        if not isinstance(decision, Decision):
            raise InputValidationError(f"expected `decision` to be a Decision, got {type(decision).__name__}")
        if point.num_layers != self.num_layers:
            raise InputValidationError(
                f"expected an exit point of a {self.num_layers}-block model, got one of {point.num_layers}"
            )
        if point.size:
            low, high = torch.stack(torch.aminmax(point.rows)).tolist()  # one host copy per exit point
            if low < 0 or high >= decision.batch_size:
                raise InputValidationError(f"expected `point.rows` in [0, {decision.batch_size}), got {low}..{high}")

    def _halt(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        """Return the halting mask for a checked exit point; default: nobody halts."""
        return torch.zeros(point.size, dtype=torch.bool, device=point.logits.device)

    @locked
    def route(self, point: ExitPoint, decision: Decision, explore: bool = True) -> Tensor:
        """The head sets of block ``point.depth`` for the samples of ``point``, which go on past it.

        Args:
            point: the samples about to run block ``point.depth`` (``point.rows`` index the batch).
            decision: what :meth:`decide` returned for the whole batch (its record included).
            explore: as in :meth:`decide`.

        Returns:
            ``(n, H)`` bool, a head set per sample of ``point``, each non-empty (the model
            refuses an empty one, on the host copy it makes anyway: checking it here too would
            cost a device sync per exit point).
        """
        self._check_point(point, decision)
        heads = self._route(point, decision, bool(explore))
        return check_route(heads, point, self.num_heads, type(self).__name__)

    def _route(self, point: ExitPoint, decision: Decision, explore: bool) -> Tensor:
        """Return the head sets for a checked exit point; default: the decision's own."""
        return decision.heads[point.rows.to(decision.heads.device), point.depth].to(point.logits.device)

    def operating_points(self) -> list[float] | None:
        """The values of the controller's inference knob (an exit threshold, a patience) that a
        calibration to a FLOP budget tries (:func:`~banditformer.training.calibrate_budget`),
        or ``None`` (default): it has no knob to turn after training."""
        return None

    def set_operating_point(self, value: float) -> None:
        """Set the inference knob to ``value`` (one of :meth:`operating_points`)."""
        raise InputValidationError(
            f"expected a controller with an inference knob (operating_points), got {type(self).__name__}, which "
            "has none"
        )

    #: True when the inference knob can mix two operating points per sample
    #: (:meth:`set_operating_mix`), so that a calibration can reach budgets between them.
    mixes_operating_points: bool = False

    def set_operating_mix(self, low: float, high: float, weight: float) -> None:
        """Set the knob to ``low`` for each sample with probability ``1 - weight`` and to ``high``
        otherwise (a draw per sample from the controller's generator), for a controller whose
        :attr:`mixes_operating_points` is True."""
        raise InputValidationError(
            f"expected a controller that mixes operating points (mixes_operating_points), got "
            f"{type(self).__name__}, which does not"
        )

    @locked
    def decide(self, context: Tensor, explore: bool = True) -> Decision:
        """Choose the architecture of each sample.

        Args:
            context: a ``(B, D)`` float tensor (the pooled, detached stem output).
            explore: True in training (policies explore), False at inference (they exploit).

        Returns:
            A :class:`Decision` for the ``B`` samples, already validated.
        """
        context = check_context("context", context, None, self.device)
        decision = self._decide(context, bool(explore))
        return decision.validate(self.num_layers, self.num_heads, context.shape[0], self.device)

    @locked
    def feedback(
        self,
        decision: Decision,
        quality: Tensor,
        flops: Tensor,
        head_importance: Tensor | None = None,
        exit_quality: Tensor | None = None,
    ) -> None:
        """Report how each sample fared under its decision.

        Args:
            decision: what :meth:`decide` returned for these samples.
            quality: a ``(B,)`` float tensor in ``[0, 1]`` (e.g. probability of the true class).
            flops: a ``(B,)`` float tensor, each sample's FLOPs under the decision.
            head_importance: optional ``(B, L, H)`` non-negative float scores of each head for
                its sample (e.g. ``|dL/d gate|``, see
                :meth:`~banditformer.model.DynamicTransformer.run`); controllers that do not use
                it ignore it.
            exit_quality: for a controller that :attr:`halts`: ``(B, L)`` float, the quality of
                each sample at every exit it evaluated (``exit_quality[i, d - 1]`` for ``d <=
                decision.depth[i]``, in ``[0, 1]``; entries past the depth are ignored). Required
                for such a controller, ignored by the others.
        """
        if not isinstance(decision, Decision):
            raise InputValidationError(f"expected `decision` to be a Decision, got {type(decision).__name__}")
        decision.validate(self.num_layers, self.num_heads, None, self.device)
        b = decision.batch_size
        check_rewards("quality", quality, (b,), self.device, 0.0, 1.0)
        check_rewards("flops", flops, (b,), self.device, 0.0, float("inf"))
        extra: dict[str, Tensor] = {}
        if self.halts:
            if exit_quality is None:
                raise InputValidationError(
                    f"expected `exit_quality` of shape ({b}, {self.num_layers}) for {type(self).__name__} (it "
                    "decides at exit points), got None"
                )
            reached = decision.active_layers  # (B, L): exits 1 .. depth
            check_rewards("exit_quality", exit_quality, (b, self.num_layers), self.device, 0.0, 1.0, mask=reached)
            extra["exit_quality"] = torch.where(reached, exit_quality, torch.zeros_like(exit_quality))
        if not self.wants_head_importance:
            self._apply_feedback(decision, quality, flops, **extra)  # head_importance, if any, is not used
            return
        shape = (b, self.num_layers, self.num_heads)
        if head_importance is None:
            raise InputValidationError(
                f"expected `head_importance` of shape {shape} for {type(self).__name__} (it rewards "
                "heads by importance), got None"
            )
        check_rewards("head_importance", head_importance, shape, self.device, 0.0, float("inf"))
        self._apply_feedback(decision, quality, flops, head_importance=head_importance, **extra)

    def _apply_feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        # Built-in controllers check everything before they apply anything; with a plugin's
        # controller or policy inside, the state is also restored should the apply fail.
        if trusted(self):
            self._feedback(decision, quality, flops, **extra)
            return
        with restored_on_error(self):
            self._feedback(decision, quality, flops, **extra)

    @abstractmethod
    def _decide(self, context: Tensor, explore: bool) -> Decision:
        """Return a Decision for checked contexts."""

    @abstractmethod
    def _feedback(self, decision: Decision, quality: Tensor, flops: Tensor, **extra: Tensor) -> None:
        """Update the policies from checked feedback (``extra`` holds ``head_importance`` for a
        controller whose :attr:`wants_head_importance` is True, and ``exit_quality`` for one that
        :attr:`halts`)."""
