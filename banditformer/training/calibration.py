"""Scoring a trained network at operating points: calibration to a FLOP budget at inference (after
training, the controller's inference knob, an exit threshold or a patience, is set on the
validation split so that the mean FLOP ratio there is as close to the budget as the knob allows
without exceeding it; the test split is never seen), and scores at every fixed shape."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from banditformer.core.controller import Controller
from banditformer.core.decision import Decision, uniform_shapes
from banditformer.core.errors import InputValidationError
from banditformer.core.exits import replay_exits
from banditformer.core.task import Split
from banditformer.core.validation import check_float, check_int
from banditformer.model import AdaptiveModel, check_model

__all__ = ["calibrate_budget", "operating_curve", "record_exits", "score_shapes"]


@torch.no_grad()
def operating_curve(
    model: AdaptiveModel, controller: Controller, split: Split, *, batch_size: int = 256
) -> list[dict[str, float]]:
    """Accuracy and mean FLOP ratio on ``split`` at each of the controller's operating points.

    For a controller that halts, the model runs once, deciding with ``explore=False`` and
    evaluating every exit; each operating point's halting is then replayed on those exits'
    logits (:func:`~banditformer.core.exits.replay_exits`), exactly as inference would halt. For
    one whose knob acts on its up-front decisions (DHT's ``cost_bias``), the split is decided
    and run again at each operating point. The controller's knob is left where it was.

    Returns:
        One ``{"value", "accuracy", "flop_ratio"}`` per operating point, in the controller's order.

    Raises:
        InputValidationError: a controller without operating points, or an empty split.
    """
    check_model(model)
    if not isinstance(controller, Controller):
        raise InputValidationError(f"expected a Controller, got {type(controller).__name__}")
    if not isinstance(split, Split) or len(split) == 0:
        raise InputValidationError(f"expected a non-empty Split, got {split!r}")
    check_int("batch_size", batch_size, low=1)
    points = controller.operating_points()
    if not points:
        raise InputValidationError(
            f"expected a controller with operating points (an inference knob), got {type(controller).__name__}"
        )
    was_training = model.training
    model.eval()
    if not controller.halts:
        try:
            return _decided_curve(model, controller, split, points, batch_size)
        finally:
            model.train(was_training)
    dev, table = model.device, model.cost_table()
    batches: list[tuple[Decision, Any, Any, Any]] = []
    try:
        for start in range(0, len(split), batch_size):
            x, y = split.x[start : start + batch_size].to(dev), split.y[start : start + batch_size].to(dev)
            h, context = model.stem(x)
            decision = controller.decide(context, explore=False)
            route = functools.partial(controller.route, decision=decision, explore=False) if controller.routes else None
            out = model.run_exits(h, decision, route=route, all_exits=True)
            if out.heads is not None:  # the head sets as run (per sample: they do not depend on who halted)
                decision = Decision(decision.depth, out.heads, decision.record)
            batches.append((decision, out.exit_logits, context, y))

        def replayed() -> tuple[int, float]:
            correct, flops = 0, 0.0
            for decision, exit_logits, context, y in batches:
                depth = replay_exits(
                    lambda p, d=decision: controller.halt(p, d, explore=False), exit_logits, decision.depth, context
                )
                logits = exit_logits[torch.arange(len(y), device=dev), depth - 1]
                correct += int((logits.argmax(-1) == y).sum())
                flops += float(
                    table.sample_flops(Decision(depth, decision.heads, decision.record, depth.clone())).sum()
                )
            return correct, flops

        return _sweep(controller, points, replayed, len(split), table.full)
    finally:
        model.train(was_training)


def _sweep(
    controller: Controller, points: list[float], score: Callable[[], tuple[int, float]], rows: int, full: float
) -> list[dict[str, float]]:
    """``{"value", "accuracy", "flop_ratio"}`` at each operating point, ``score() -> (correct,
    flops)`` measuring the controller at the point just set; the controller's state restored after."""
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in controller.state_dict().items()}
    curve = []
    try:
        for value in points:
            controller.set_operating_point(value)
            correct, flops = score()
            curve.append({"value": float(value), "accuracy": correct / rows, "flop_ratio": flops / rows / full})
    finally:
        controller.load_state_dict(saved)
    return curve


def _decided_curve(
    model: AdaptiveModel, controller: Controller, split: Split, points: list[float], batch_size: int
) -> list[dict[str, float]]:
    """The operating curve of a controller whose knob acts on ``decide``: every point decided and run."""
    table = model.cost_table()
    return _sweep(controller, points, _decided_score(model, controller, split, batch_size), len(split), table.full)


def _decided_score(
    model: AdaptiveModel, controller: Controller, split: Split, batch_size: int
) -> Callable[[], tuple[int, float]]:
    """``score() -> (correct, flops)`` on ``split`` of the controller's knob as it is when called:
    the split's stems computed once, each call deciding and running them again."""
    dev, table = model.device, model.cost_table()
    stems = []
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size].to(dev), split.y[start : start + batch_size].to(dev)
        stems.append((*model.stem(x), y))

    def decided() -> tuple[int, float]:
        correct, flops = 0, 0.0
        for h, context, y in stems:
            decision = controller.decide(context, explore=False)
            correct += int((model.run(h, decision).argmax(-1) == y).sum())
            flops += float(table.sample_flops(decision).sum())
        return correct, flops

    return decided


@torch.no_grad()
def _calibrate_mix(
    model: AdaptiveModel,
    controller: Controller,
    split: Split,
    low: dict[str, float],
    high: dict[str, float],
    budget: float,
    batch_size: int,
) -> dict[str, float] | None:
    """Mix the operating points ``low`` (within the budget) and ``high`` (above it) per sample so
    that the mean FLOP ratio on ``split`` comes up to ``budget`` without exceeding it: the weight
    of ``high`` from the two ratios, then corrected on the measured mixture (its per-sample draws
    make it noisy) at most four times. The controller's generator is put back after each
    measurement, so the mix's draws at inference do not depend on the calibration. Returns the
    mix's ``{"value", "high", "weight", "accuracy", "flop_ratio"}`` (knob set), or ``None`` when no
    mixture stays within the budget (knob untouched)."""
    span = high["flop_ratio"] - low["flop_ratio"]
    weight = min(1.0, max(0.0, (budget - low["flop_ratio"]) / span))
    gen = getattr(controller, "generator", None)
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in controller.state_dict().items()}
    was_training = model.training
    model.eval()
    score = _decided_score(model, controller, split, batch_size)
    try:
        for _ in range(5):
            start = gen.get_state() if isinstance(gen, torch.Generator) else None
            controller.set_operating_mix(low["value"], high["value"], weight)
            correct, flops = score()
            if start is not None:
                gen.set_state(start)
            ratio = flops / len(split) / model.cost_table().full
            if ratio <= budget + 1e-9:
                return {
                    "value": low["value"], "high": high["value"], "weight": weight,
                    "accuracy": correct / len(split), "flop_ratio": ratio,
                }  # fmt: skip
            weight = max(0.0, weight - (ratio - budget) / span)
    finally:
        model.train(was_training)
    controller.load_state_dict(saved)
    return None


def calibrate_budget(
    model: AdaptiveModel, controller: Controller, split: Split, budget: float, *, batch_size: int = 256
) -> dict[str, float]:
    """Set the controller's knob to the operating point whose mean FLOP ratio on ``split`` (the
    validation split) is the largest within ``budget`` (the most compute the budget allows; among
    equal ratios the most accurate). A controller that can mix two operating points per sample
    (:attr:`~banditformer.core.Controller.mixes_operating_points`, DHT's cost bias) gets, when the
    next point up costs more than the budget, the mix of the two whose ratio meets the budget
    (the steps between a knob's points can be large: samples that share their estimates move
    together).

    Returns:
        The chosen ``{"value", "accuracy", "flop_ratio"}`` on ``split``; a mix adds ``"high"`` (the
        costlier point, above the budget alone) and ``"weight"`` (each sample's probability of
        taking it; the others take ``"value"``).

    Raises:
        InputValidationError: ``budget`` outside ``(0, 1]``, or unreachable: even the cheapest
            operating point costs more (the message gives its ratio); nothing was changed.
    """
    budget = check_float("budget", budget, low=0.0, high=1.0, low_open=True)
    curve = operating_curve(model, controller, split, batch_size=batch_size)
    within = [p for p in curve if p["flop_ratio"] <= budget + 1e-9]
    if not within:
        cheapest = min(p["flop_ratio"] for p in curve)
        raise InputValidationError(
            f"expected a FLOP budget {type(controller).__name__} can reach, got {budget:g}: its cheapest operating "
            f"point costs {cheapest:.3f} of the full model on the validation split"
        )
    best = max(within, key=lambda p: (p["flop_ratio"], p["accuracy"]))
    above = [p for p in curve if p["flop_ratio"] > budget + 1e-9]
    if controller.mixes_operating_points and not controller.halts and above and best["flop_ratio"] < budget:
        # the next step up costs more than the budget: mix the two per sample to meet it
        high = min(above, key=lambda p: (p["flop_ratio"], -p["accuracy"]))
        mixed = _calibrate_mix(model, controller, split, best, high, budget, batch_size)
        if mixed is not None:
            return mixed
    controller.set_operating_point(best["value"])
    return best


@torch.no_grad()
def score_shapes(model: AdaptiveModel, split: Split, *, batch_size: int = 256) -> list[dict[str, float]]:
    """The trained network scored at every uniform shape on ``split``: each depth ``1 .. L``
    with each head count ``1 .. H`` in blocks ``1 ..`` (depth 1 is the stem alone, one shape), no
    halting, each depth's own exit classifier (the decisions-versus-weights ablation: how good
    the shared weights are at each shape, whatever a controller would choose).

    Returns:
        ``{"depth", "heads", "accuracy", "flop_ratio"}`` per shape, shallowest first.
    """
    check_model(model)
    if not isinstance(split, Split) or len(split) == 0:
        raise InputValidationError(f"expected a non-empty Split, got {split!r}")
    check_int("batch_size", batch_size, low=1)
    cfg, table = model.cfg, model.cost_table()
    shapes = uniform_shapes(cfg.num_layers, cfg.num_heads)
    correct = [0] * len(shapes)
    was_training = model.training
    model.eval()
    dev = model.device
    try:
        for start in range(0, len(split), batch_size):
            x, y = split.x[start : start + batch_size].to(dev), split.y[start : start + batch_size].to(dev)
            h, _ = model.stem(x)
            for i, (depth, heads) in enumerate(shapes):
                d = Decision.uniform(len(y), cfg.num_layers, cfg.num_heads, depth, heads, dev)
                correct[i] += int((model.run(h, d).argmax(-1) == y).sum())
    finally:
        model.train(was_training)
    out = []
    for (depth, heads), hits in zip(shapes, correct, strict=True):
        shape = Decision.uniform(1, cfg.num_layers, cfg.num_heads, depth, heads)
        ratio = float(table.sample_flops(shape)[0]) / table.full
        out.append({"depth": depth, "heads": heads, "accuracy": hits / len(split), "flop_ratio": ratio})
    return out


def record_exits(model: AdaptiveModel, x: torch.Tensor, *, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Every exit's logits of ``x`` at the full shape, no halting, and the stem contexts: what an
    offline study of halting rules on a frozen network needs (every exit's answer known).

    Args:
        model: the model (with ``exit_heads`` each depth has its own classifier), in eval mode
            for the call (its mode restored after).
        x: ``(N, ...)`` the model's inputs.

    Returns:
        ``(N, L, C)`` float32 logits (exit ``d`` at index ``d - 1``; the last is the full model's
        output) and ``(N, D)`` float32 stem contexts, on the CPU.
    """
    check_model(model)
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
        raise InputValidationError(f"expected a non-empty batch of inputs, got {x!r:.80}")
    check_int("batch_size", batch_size, low=1)
    cfg, dev = model.cfg, model.device
    logits, contexts = [], []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                h, context = model.stem(x[start : start + batch_size].to(dev))
                full = Decision.full(h.shape[0], cfg.num_layers, cfg.num_heads, dev)
                logits.append(model.run_exits(h, full, all_exits=True).exit_logits.float().cpu())
                contexts.append(context.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(contexts)
