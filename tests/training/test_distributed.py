"""Data-parallel bandit statistics: ranks that merge their increments end with identical state,
equal to one process that saw every row where the update is a sum of per-row terms."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import banditformer as bf
from banditformer.core.random import derive_seed
from banditformer.training.distributed import (
    StateSync,
    check_shards,
    data_parallel,
    fork_generators,
    global_seed,
    rank_and_world,
    reduced_states,
    sum_over_ranks,
)

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

ROUNDS, ROWS = 30, 8  # each rank's rows per round; one process sees 2 * ROWS


def _rewards(round_: int, arms: torch.Tensor, rank: int) -> torch.Tensor:
    """A reward for every row that depends only on the round, the row's place and its arm."""
    place = torch.arange(arms.shape[0]) + rank * arms.shape[0]
    return ((arms * 7 + place * 3 + round_) % 5).double() / 4


def _ranks(rank: int, world: int, init: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        assert rank_and_world() == (rank, world)
        ucb = bf.make_policy("ucb1", num_arms=4, seed=0)
        ts = bf.make_policy("thompson_beta", num_arms=4, seed=0)
        fork_generators(ts, rank)
        syncs = [StateSync(ucb), StateSync(ts, every=3)]
        for t in range(ROUNDS):
            for policy, sync in zip((ucb, ts), syncs, strict=True):
                arms = policy.select(n=ROWS)
                policy.update(arms, _rewards(t, arms, rank).float())
                sync.step()
        syncs[1].sync()
        torch.save({"ucb": ucb.state_dict(), "ts": ts.state_dict(), "syncs": [s.syncs for s in syncs]},
                   os.path.join(out, f"rank{rank}.pt"))  # fmt: skip
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_end_identical_and_ucb1_equals_one_process() -> None:
    with tempfile.TemporaryDirectory() as out:
        init = f"file://{os.path.join(out, 'store')}"
        mp.start_processes(_ranks, args=(2, init, out), nprocs=2, join=True, start_method="spawn")
        r0, r1 = (torch.load(os.path.join(out, f"rank{r}.pt"), weights_only=True) for r in (0, 1))
    assert r0["syncs"] == [ROUNDS, ROUNDS // 3 + 1]
    for name in ("ucb", "ts"):
        for key, value in r0[name].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(value, r1[name][key]), f"{name}.{key} differs between ranks"
    # One process deciding for all 2 * ROWS rows a round: UCB1 is deterministic and its update adds
    # per-row terms, so its statistics are exactly the ranks'.
    one = bf.make_policy("ucb1", num_arms=4, seed=0)
    for t in range(ROUNDS):
        arms = one.select(n=2 * ROWS)
        rewards = torch.cat([_rewards(t, arms[:ROWS], 0), _rewards(t, arms[ROWS:], 1)])
        one.update(arms, rewards.float())
    for key in ("counts", "sums", "arm_counts", "arm_reward_sums"):
        torch.testing.assert_close(r0["ucb"][key], one.state_dict()[key], rtol=0, atol=1e-12)
    ts_total = r0["ts"]["successes"] + r0["ts"]["failures"]
    assert float(ts_total.sum()) == 2 * ROUNDS * ROWS  # every rank's trials, counted once


def test_single_process_sync_is_a_no_op_and_reductions_are_checked() -> None:
    policy = bf.make_policy("ucb1", num_arms=3)
    sync = StateSync(policy, every=2)
    assert not sync.active and sync.step() is False and sync.step() is False and sync.syncs == 0
    assert {name for name, _, _ in reduced_states(policy)} == {"arm_counts", "arm_reward_sums", "counts", "sums"}
    with pytest.raises(bf.InputValidationError, match="every"):
        StateSync(policy, every=0)
    with pytest.raises(bf.InputValidationError, match=r"nn\.Module"):
        StateSync(object())  # type: ignore[arg-type]
    with pytest.raises(bf.InputValidationError, match="reduce"):
        policy.add_state("bad", torch.zeros(1), reduce="median")
    ctrl = bf.make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1.0)
    names = dict((n, r) for n, _, r in reduced_states(ctrl))
    assert names["lam"] == "mean" and names["feedback_calls"] is None and names["head_policy.successes"] == "sum"


def test_forked_generators_differ_by_rank_and_repeat() -> None:
    def draws(rank: int) -> list[int]:
        policy = bf.make_policy("thompson_beta", num_arms=6, seed=1)
        assert fork_generators(policy, rank) == 1
        return policy.select(n=20).tolist()

    assert draws(0) == draws(0) and draws(0) != draws(1)
    with pytest.raises(bf.InputValidationError, match="rank"):
        fork_generators(bf.make_policy("ucb1", num_arms=2), -1)


def test_rank_seeds_shards_and_single_process_collectives() -> None:
    # rank 0 draws as a single process would; other ranks (and a resumed rank) from their own streams
    assert global_seed(7, 0) == derive_seed(7, "global")
    assert global_seed(7, 1) == derive_seed(7, "global", 1) != global_seed(7, 2)
    assert global_seed(7, 1, step=5) == derive_seed(7, "global", 1, 5) != global_seed(7, 1)
    with pytest.raises(bf.InputValidationError, match="rank"):
        global_seed(7, -1)
    check_shards(10, 4, 2)  # global batches of 4, 4 and 2 rows: one each for 2 ranks
    with pytest.raises(bf.InputValidationError, match=r"each of 3 ranks a row \(batch_size 4, last batch 2\)"):
        check_shards(10, 4, 3)
    with pytest.raises(bf.InputValidationError, match="batch_size"):
        check_shards(10, 0, 2)
    with pytest.raises(bf.InputValidationError, match=r"expected an nn\.Module to wrap, got object"):
        data_parallel(object(), torch.device("cpu"))  # type: ignore[arg-type]
    t = torch.tensor([1.0, 2.0])
    assert sum_over_ranks(t) is t and t.tolist() == [1.0, 2.0]  # one process: the sum is its own
