"""EXP3-IX: rates, probabilities and loss estimates against the formulas by hand, one probability vector
per group and batch, draws that follow the probabilities, learning."""

from __future__ import annotations

import math

import pytest
import torch

from banditformer import InputValidationError, make_policy
from banditformer.bandits import EXP3IX
from banditformer.bandits.exp3_ix import exp3_ix_probabilities, exp3_ix_rates
from tests.bandits.test_known_answers import simulate

F64 = torch.float64


def weights_by_hand(losses: list[float], eta: float) -> list[float]:
    w = [math.exp(-eta * x) for x in losses]
    return [v / sum(w) for v in w]


def eta_by_hand(t: float, k: int) -> float:
    return math.sqrt(2 * math.log(k) / (k * t))


def test_rates_are_the_anytime_choice_unless_fixed() -> None:
    t = torch.tensor([1.0, 4.0, 100.0], dtype=F64)
    eta, gamma = exp3_ix_rates(t, 3)
    assert eta.tolist() == pytest.approx([eta_by_hand(v, 3) for v in (1, 4, 100)])
    assert gamma.tolist() == pytest.approx([eta_by_hand(v, 3) / 2 for v in (1, 4, 100)])
    eta, gamma = exp3_ix_rates(t, 3, eta=0.2)
    assert eta.tolist() == [0.2] * 3 and gamma.tolist() == [0.1] * 3  # gamma: half of a fixed eta too
    eta, gamma = exp3_ix_rates(t, 3, gamma=0.05)
    assert eta.tolist() == pytest.approx([eta_by_hand(v, 3) for v in (1, 4, 100)]) and gamma.tolist() == [0.05] * 3
    eta, gamma = exp3_ix_rates(t, 1)
    assert eta.tolist() == [0.0] * 3 and gamma.tolist() == [0.0] * 3  # one arm: nothing to learn


def test_probabilities_are_exponential_weights_of_the_losses() -> None:
    losses = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 0.5]], dtype=F64)
    eta = torch.tensor([0.5, 2.0], dtype=F64)
    p = exp3_ix_probabilities(losses, eta)
    assert p[0].tolist() == pytest.approx(weights_by_hand([0.0, 1.0, 3.0], 0.5), rel=1e-12)
    assert p[1].tolist() == pytest.approx(weights_by_hand([2.0, 2.0, 0.5], 2.0), rel=1e-12)
    huge = exp3_ix_probabilities(torch.tensor([[1e6, 1e6 + 1.0, 1e9]], dtype=F64), torch.tensor([1.0], dtype=F64))
    assert huge[0].tolist() == pytest.approx([1 / (1 + math.exp(-1)), math.exp(-1) / (1 + math.exp(-1)), 0.0])


def _crafted(**kwargs) -> EXP3IX:
    p = EXP3IX(num_arms=3, num_groups=2, seed=0, **kwargs)
    p.losses.copy_(torch.tensor([[0.0, 1.0, 3.0], [4.0, 0.5, 0.5]], dtype=F64))
    p.plays.copy_(torch.tensor([3.0, 7.0], dtype=F64))  # next rounds: t = 4 and t = 8
    return p


def test_action_probabilities_are_each_rows_groups_distribution() -> None:
    p = _crafted()
    probs = p.action_probabilities(groups=torch.tensor([1, 0, 1]))
    assert probs.shape == (3, 3) and probs.dtype == F64
    g0 = weights_by_hand([0.0, 1.0, 3.0], eta_by_hand(4, 3))
    g1 = weights_by_hand([4.0, 0.5, 0.5], eta_by_hand(8, 3))
    assert probs.tolist() == [pytest.approx(g1), pytest.approx(g0), pytest.approx(g1)]
    fixed = _crafted(eta=0.7).action_probabilities(groups=torch.tensor([0]))
    assert fixed[0].tolist() == pytest.approx(weights_by_hand([0.0, 1.0, 3.0], 0.7))


def test_action_probabilities_checks_its_groups() -> None:
    p = _crafted()
    for bad in ([0, 1], torch.tensor([0, 2]), torch.tensor([0.0, 1.0]), torch.tensor([[0, 1]])):
        with pytest.raises(InputValidationError, match="expected `groups`"):
            p.action_probabilities(groups=bad)  # type: ignore[arg-type]
    assert p.action_probabilities(groups=torch.zeros(0, dtype=torch.long)).shape == (0, 3)


def test_update_adds_the_implicit_exploration_estimate_of_the_loss() -> None:
    p = _crafted()
    p.update(torch.tensor([2]), torch.tensor([0.25]), groups=torch.tensor([0]))
    eta = eta_by_hand(4, 3)
    p2 = weights_by_hand([0.0, 1.0, 3.0], eta)[2]
    assert p.losses[0].tolist() == pytest.approx([0.0, 1.0, 3.0 + 0.75 / (p2 + eta / 2)], rel=1e-12)
    assert p.losses[1].tolist() == [4.0, 0.5, 0.5] and p.plays.tolist() == [4.0, 7.0]
    q = _crafted(eta=0.7, gamma=0.01)
    q.update(torch.tensor([0]), torch.tensor([0.0]), groups=torch.tensor([1]))
    p0 = weights_by_hand([4.0, 0.5, 0.5], 0.7)[0]
    assert q.losses[1, 0].item() == pytest.approx(4.0 + 1.0 / (p0 + 0.01), rel=1e-12)


def test_a_batch_uses_one_probability_vector_per_group() -> None:
    arms, rewards = torch.tensor([0, 0, 1, 2, 1]), torch.tensor([0.1, 0.5, 0.0, 1.0, 0.3], dtype=F64)
    groups = torch.tensor([0, 0, 1, 0, 0])
    p = _crafted()
    p.update(arms, rewards, groups=groups)
    # every row weighted with its group's probabilities and gamma from before the batch
    eta0, eta1 = eta_by_hand(4, 3), eta_by_hand(8, 3)
    w0, w1 = weights_by_hand([0.0, 1.0, 3.0], eta0), weights_by_hand([4.0, 0.5, 0.5], eta1)
    want0 = [0.9 / (w0[0] + eta0 / 2) + 0.5 / (w0[0] + eta0 / 2), 1.0 + 0.7 / (w0[1] + eta0 / 2), 3.0]
    want1 = [4.0, 0.5 + 1.0 / (w1[1] + eta1 / 2), 0.5]
    assert p.losses.tolist() == [pytest.approx(want0, rel=1e-12), pytest.approx(want1, rel=1e-12)]
    assert p.plays.tolist() == [7.0, 8.0]
    # one row at a time the later rows see probabilities the earlier ones moved: not the same
    assert not EXP3IX.exact_batch_update
    q = _crafted()
    for i in range(5):
        q.update(arms[i : i + 1], rewards[i : i + 1], groups=groups[i : i + 1])
    assert torch.equal(q.plays, p.plays) and not torch.allclose(q.losses, p.losses)


def test_select_draws_each_rows_arm_from_its_probabilities() -> None:
    p = EXP3IX(num_arms=3, num_groups=2, eta=1.0, seed=0)
    target = torch.tensor([[0.6, 0.3, 0.1], [0.0, 0.25, 0.75]], dtype=F64)
    p.losses.copy_(torch.where(target > 0, -target.log(), torch.full_like(target, 1e6)))  # exp(-1e6) is 0
    assert torch.allclose(p.action_probabilities(groups=torch.tensor([0, 1])), target, atol=1e-12)
    n = 40_000
    groups = torch.arange(n) % 2
    arms = p.select(groups=groups)
    for g in range(2):
        freq = torch.bincount(arms[groups == g], minlength=3).double() / (n // 2)
        assert torch.allclose(freq, target[g], atol=0.015), (g, freq)  # 5 standard errors at most
    assert not bool((arms[groups == 1] == 0).any())  # an arm of probability 0 is never drawn
    again = EXP3IX(num_arms=3, num_groups=2, eta=1.0, seed=0)
    again.losses.copy_(p.losses)
    assert torch.equal(again.select(groups=groups), arms)  # the seed decides the draws


def test_greedy_mode_plays_the_most_probable_arm() -> None:
    p = _crafted()
    means = p.expected_rewards(groups=torch.tensor([0, 1]))
    # 1 - L / plays: group 0 has 3 plays, group 1 has 7
    assert means.tolist() == [
        pytest.approx([1.0, 1 - 1 / 3, 0.0]),
        pytest.approx([1 - 4 / 7, 1 - 0.5 / 7, 1 - 0.5 / 7]),
    ]
    assert p.select(groups=torch.tensor([0, 1]), explore=False).tolist() == [0, 1]
    assert EXP3IX(num_arms=3).expected_rewards(n=1).tolist() == [[1.0, 1.0, 1.0]]  # nothing played yet


@pytest.mark.parametrize(
    ("means", "horizon", "most", "share"),
    [([0.7, 0.3], 1000, 50.0, 0.93), ([0.9] + [0.5] * 9, 2000, 300.0, 0.85)],
    ids=["2-armed", "10-armed"],
)
def test_learns_the_best_arm(means: list[float], horizon: int, most: float, share: float) -> None:
    # 24 runs as 24 groups, fixed seeds. EXP3-IX's mean regret is about 28 and 186 here (late share of
    # the best arm 0.97 and 0.90); playing uniformly costs 200 and 720, and a wrong sign or estimate
    # drifts towards that.
    regret, late_plays = simulate("exp3_ix", means, horizon)
    assert (late_plays.argmax(1) == 0).all()
    assert late_plays[:, 0].sum() / late_plays.sum() > share
    assert regret.mean() < most


def test_registered_and_options_checked() -> None:
    assert type(make_policy("exp3_ix", num_arms=2)) is EXP3IX
    p = EXP3IX(num_arms=2, eta=0.5, gamma=0.1)
    assert (p.eta, p.gamma) == (0.5, 0.1) and EXP3IX(num_arms=2).eta is None
    for kwargs, message in (
        ({"eta": 0.0}, r"expected `eta` in \(0, inf\], got 0.0"),
        ({"eta": -1.0}, r"expected `eta` in \(0, inf\], got -1.0"),
        ({"eta": math.inf}, "expected `eta` to be finite"),
        ({"eta": True}, "expected `eta` to be a number, got bool"),
        ({"gamma": 0.0}, r"expected `gamma` in \(0, inf\], got 0.0"),
        ({"gamma": "0.1"}, "expected `gamma` to be a number, got str"),
    ):
        with pytest.raises(InputValidationError, match=message):
            EXP3IX(num_arms=2, **kwargs)
    with pytest.raises(InputValidationError, match="expected `eta`"):  # a checkpoint of another eta
        EXP3IX(num_arms=2).load_state_dict(EXP3IX(num_arms=2, eta=0.5).state_dict())
