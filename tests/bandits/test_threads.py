"""The thread-safety contract (docs/policies.md): every public call of a policy or controller is
atomic under threads (it holds the object's lock), and ``with obj.lock:`` makes a sequence atomic."""

from __future__ import annotations

import threading

import pytest
import torch

import banditformer as bf
from tests.bandits.helpers import build, contexts, rewards_for

THREADS, ROUNDS, ROWS = 4, 300, 512


def _hammer(policy: bf.PolicyBase, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(ROUNDS):
        x = contexts(ROWS, gen)
        if isinstance(policy, bf.CombinatorialPolicy):
            chosen = policy.select(x, k=2)
            policy.update(chosen, rewards_for(policy, (ROWS, policy.num_arms), gen), x)
        else:
            policy.update(policy.select(x), rewards_for(policy, (ROWS,), gen), x)


def _run(target, args_list) -> None:
    threads = [threading.Thread(target=target, args=args) for args in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.mark.parametrize("name", ["ucb1", "thompson_beta", "cts", "linucb"])
def test_concurrent_plays_on_one_policy_lose_nothing(name: str) -> None:
    # Unlocked, in-place updates from two threads interleave and lose plays (about 0.3% of them
    # here for ucb1 on two cores).
    policy = build(name, 4, seed=0)
    _run(_hammer, [(policy, s) for s in range(THREADS)])
    plays = THREADS * ROUNDS * ROWS * (2 if isinstance(policy, bf.CombinatorialPolicy) else 1)
    assert float(policy.arm_counts.sum()) == plays
    if hasattr(policy, "counts"):  # the policy's own statistics too
        assert float(policy.counts.sum()) == plays


def test_a_controller_counts_every_feedback_from_every_thread() -> None:
    c = bf.make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1e6, seed=0)

    def work(seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for _ in range(40):
            d = c.decide(torch.randn(64, 4, generator=gen))
            c.feedback(d, torch.rand(64, generator=gen), torch.full((64,), 5e5))

    _run(work, [(s,) for s in range(THREADS)])
    assert int(c.feedback_calls) == c._calls == THREADS * 40
    assert float(c.depth_policy.arm_counts.sum()) == THREADS * 40 * 64


def test_holding_the_lock_makes_other_threads_wait() -> None:
    policy = bf.make_policy("ucb1", num_arms=3, seed=0)
    done = threading.Event()

    def other() -> None:
        policy.update(policy.select(n=1), torch.ones(1))
        done.set()

    with policy.lock:
        arms = policy.select(n=2)  # re-entrant: the holder's own calls go through
        thread = threading.Thread(target=other)
        thread.start()
        assert not done.wait(0.2)  # the other thread waits for the sequence to finish
        policy.update(arms, torch.zeros(2))
        assert float(policy.arm_counts.sum()) == 2
    thread.join(5)
    assert done.is_set() and float(policy.arm_counts.sum()) == 3


def test_a_copied_policy_gets_a_lock_of_its_own() -> None:
    import copy
    import pickle

    policy = bf.make_policy("ucb1", num_arms=3, seed=0)
    for clone in (copy.deepcopy(policy), pickle.loads(pickle.dumps(policy))):
        assert clone.lock is not policy.lock
        with clone.lock:
            clone.update(clone.select(n=2), torch.ones(2))
