"""Our off-policy estimates against peer libraries' on the same simulated log (issue 15.3):
Vowpal Wabbit's ``--cb --eval`` (IPS must match ours to float32 precision; its doubly robust
estimate, with its own online reward model, must fall in our interval) and contextualbandits'
``evaluateDoublyRobust`` (with our reward model it must equal our DR; with its own logistic
model, fall in our interval). Each peer is optional: the test skips where it is not installed."""

from __future__ import annotations

import pytest
import torch

from banditformer.ope import BanditLog, estimate_all, fit_reward_model
from tests.ope.test_estimators import simulated_log


def deterministic_target(log: BanditLog) -> torch.Tensor:
    """``(n,)`` the target's action: arm 0 where x0 > x1, else arm 1 (a peer evaluates one action per round)."""
    assert log.context is not None
    return torch.where(log.context[:, 0] > log.context[:, 1], 0, 1)


@pytest.fixture(scope="module", params=[0, 1])
def shared(request):
    log, _, _ = simulated_log(6000, request.param)
    pred = deterministic_target(log)
    target = torch.nn.functional.one_hot(pred, log.num_arms).double()
    model = fit_reward_model(log)
    return log, pred, model, estimate_all(log, target, model)


def test_vowpal_wabbit_gives_our_ips_and_a_doubly_robust_estimate_in_our_interval(shared) -> None:
    vw_module = pytest.importorskip("vowpalwabbit")
    log, pred, _, ours = shared
    values = {}
    for kind in ("ips", "dr"):
        vw = vw_module.Workspace(f"--cb {log.num_arms} --eval --cb_type {kind} --quiet")
        for i in range(len(log)):  # `<evaluated action> <logged action>:<cost>:<propensity> | features`, 1-based
            x0, x1 = log.context[i].tolist()
            cost, prob = -float(log.reward[i]), float(log.propensity[i])
            vw.learn(f"{int(pred[i]) + 1} {int(log.action[i]) + 1}:{cost}:{prob} | x0:{x0} x1:{x1}")
        values[kind] = -vw.get_sum_loss() / vw.get_weighted_examples()
        vw.finish()
    assert values["ips"] == pytest.approx(ours["ips"].value, rel=1e-5)
    assert ours["dr"].covers(values["dr"]) and abs(values["dr"] - ours["dr"].value) < 0.03, (values, ours["dr"])


def test_contextualbandits_gives_our_doubly_robust_estimate(shared) -> None:
    evaluation = pytest.importorskip("contextualbandits.evaluation")
    linear_model = pytest.importorskip("sklearn.linear_model")
    log, pred, model, ours = shared
    x, a, r, p = log.context.numpy(), log.action.numpy(), log.reward.numpy(), log.propensity.numpy()
    rows = torch.arange(len(log))
    ours_q = torch.stack([model[rows, pred], model[rows, log.action]], 1).numpy()  # (n, 2): target's arm, logged arm
    same = evaluation.evaluateDoublyRobust(pred.numpy(), x, a, r, p, ours_q, handle_invalid=False, pmin=None)
    assert same == pytest.approx(ours["dr"].value, abs=1e-9)
    theirs = evaluation.evaluateDoublyRobust(
        pred.numpy(), x, a, r, p, linear_model.LogisticRegression(), nchoices=log.num_arms, handle_invalid=False,
        pmin=None,
    )  # fmt: skip
    assert ours["dr"].covers(theirs) and abs(theirs - ours["dr"].value) < 0.03, (theirs, ours["dr"])
