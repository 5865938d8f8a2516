"""The bad inputs of docs/troubleshooting.md, one function each (used by test_bad_inputs.py).

Each case returns ``(subjects, action)``: ``action()`` must raise (or, for plugins, warn and
record a failure), and every module in ``subjects`` must hold the same state afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import banditformer as bf
from banditformer import Decision
from banditformer.plugins import PluginManager, hookimpl

CASES: dict[str, Callable[[Path], tuple[list[Any], Callable[[], Any]]]] = {}


def case(fn: Callable[[Path], tuple[list[Any], Callable[[], Any]]]) -> Callable:
    CASES[fn.__name__] = fn
    return fn


def _ucb() -> Any:
    policy = bf.make_policy("ucb1", num_arms=3, seed=0)
    arms = policy.select(n=4)
    policy.update(arms, torch.rand(4))
    return policy


def _dht() -> Any:
    return bf.make_controller("dht", num_layers=3, num_heads=2, context_dim=4, full_flops=1e6, seed=0)


def _model() -> Any:
    from banditformer.model import DynamicTransformer, TransformerConfig

    torch.manual_seed(0)
    return DynamicTransformer(TransformerConfig(input="sequence", num_classes=3, seq_len=6, d_model=8,
                                                num_layers=2, num_heads=2))  # fmt: skip


# ----------------------------------------------------------------------------------- configs
@case
def train_config_zero_epochs(tmp: Path):
    from banditformer.training import TrainConfig

    return [], lambda: TrainConfig(epochs=0)


@case
def train_config_nan_lr(tmp: Path):
    from banditformer.training import TrainConfig

    return [], lambda: TrainConfig(lr=math.nan)


@case
def model_heads_do_not_divide_width(tmp: Path):
    from banditformer.model import TransformerConfig

    return [], lambda: TransformerConfig(input="sequence", num_classes=2, seq_len=4, d_model=10, num_heads=3)


@case
def dht_negative_lambda(tmp: Path):
    return [], lambda: bf.make_controller("dht", num_layers=2, num_heads=2, context_dim=4, full_flops=1.0, lam=-1.0)


@case
def dht_unknown_mode(tmp: Path):
    return [], lambda: bf.make_controller("dht", num_layers=2, num_heads=2, context_dim=4, full_flops=1.0, mode="x")


@case
def bench_zero_horizon(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig

    return [], lambda: BanditBenchConfig(horizon=0)


# --------------------------------------------------------------------------------- decisions
@case
def decision_depth_beyond_the_model(tmp: Path):
    model = _model()
    h, _ = model.stem(torch.randn(2, 6))
    d = Decision.full(2, num_layers=2, num_heads=2)
    d.depth[0] = 3
    return [model], lambda: model.run(h, d)


@case
def decision_for_another_batch_size(tmp: Path):
    model = _model()
    h, _ = model.stem(torch.randn(2, 6))
    return [model], lambda: model.run(h, Decision.full(3, num_layers=2, num_heads=2))


@case
def decision_with_no_head_in_a_run_block(tmp: Path):
    model = _model()
    h, _ = model.stem(torch.randn(2, 6))
    d = Decision.full(2, num_layers=2, num_heads=2)
    d.heads[0, 1] = False
    return [model], lambda: model.run(h, d)


# ----------------------------------------------------------------------------------- rewards
@case
def reward_nan(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([0, 1]), torch.tensor([0.5, math.nan]))


@case
def reward_inf(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([0]), torch.tensor([math.inf]))


@case
def reward_out_of_range(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([0]), torch.tensor([1.5]))


@case
def semi_bandit_reward_nan_on_a_chosen_arm(tmp: Path):
    p = bf.make_policy("cts", num_arms=4, seed=0)
    chosen = p.select(k=2, n=1)
    rewards = torch.where(chosen, torch.tensor(math.nan), torch.tensor(0.5))
    return [p], lambda: p.update(chosen, rewards)


@case
def controller_feedback_quality_nan(tmp: Path):
    c = _dht()
    d = c.decide(torch.randn(2, 4))
    return [c], lambda: c.feedback(d, torch.tensor([0.5, math.nan]), torch.full((2,), 1e5))


@case
def controller_feedback_negative_flops(tmp: Path):
    c = _dht()
    d = c.decide(torch.randn(2, 4))
    return [c], lambda: c.feedback(d, torch.tensor([0.5, 0.5]), torch.tensor([1e5, -1.0]))


# ------------------------------------------------------------------ shapes, dtypes, devices
@case
def arm_out_of_range(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([3]), torch.tensor([1.0]))


@case
def arms_as_floats(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([1.0]), torch.tensor([1.0]))


@case
def rewards_of_the_wrong_length(tmp: Path):
    p = _ucb()
    return [p], lambda: p.update(torch.tensor([0, 1]), torch.tensor([1.0]))


@case
def context_of_the_wrong_width(tmp: Path):
    p = bf.make_policy("linucb", num_arms=3, context_dim=5, seed=0)
    return [p], lambda: p.select(torch.randn(2, 4))


@case
def context_with_nan(tmp: Path):
    p = bf.make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    return [p], lambda: p.select(torch.tensor([[0.1, math.nan]]))


@case
def context_as_integers(tmp: Path):
    p = bf.make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    return [p], lambda: p.select(torch.ones(2, 2, dtype=torch.long))


@case
def context_on_another_device(tmp: Path):
    p = bf.make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    return [p], lambda: p.select(torch.ones(2, 2, device="meta"))


@case
def contextual_policy_without_a_context(tmp: Path):
    p = bf.make_policy("linucb", num_arms=3, context_dim=2, seed=0)
    return [p], lambda: p.select(n=2)


@case
def cuda_backend_without_a_gpu(tmp: Path):
    if torch.cuda.is_available():
        raise RuntimeError("skip: this machine has a GPU")
    return [], lambda: bf.make_backend("cuda")


# ----------------------------------------------------------------------------------- names
@case
def unknown_policy_name(tmp: Path):
    return [], lambda: bf.make_policy("ucb9", num_arms=2)


@case
def unknown_task_name(tmp: Path):
    return [], lambda: bf.make_task("imagenet")


@case
def unknown_controller_argument(tmp: Path):
    return [], lambda: bf.make_controller("static", num_layers=2, num_heads=2, depth=1)


# ----------------------------------------------------------------------------------- plugins
class _Broken:
    @hookimpl
    def banditformer_add_policies(self):
        raise RuntimeError("boom")


class _WrongType:
    @hookimpl
    def banditformer_add_policies(self):
        return ["ucb1"]


class _Duplicate:
    @hookimpl
    def banditformer_add_policies(self):
        return {"ucb1": bf.bandits.UCB1}


class _NotAPolicy:
    @hookimpl
    def banditformer_add_policies(self):
        return {"not_a_policy": lambda num_arms, **kw: object()}


class _UnknownHook:
    @hookimpl
    def banditformer_add_polices(self):  # a typo
        return {}


def _plugin(plugin: object, name: str):
    """A manager with the built-ins and ``plugin``; the action collects the policy registry."""
    pm = PluginManager(autoload=False)
    pm.register(plugin, name=name)
    return pm, lambda: pm.registry("policy")


@case
def plugin_hook_raises(tmp: Path):
    return _plugin(_Broken(), "broken")


@case
def plugin_returns_a_list(tmp: Path):
    return _plugin(_WrongType(), "wrong_type")


@case
def plugin_duplicates_a_name(tmp: Path):
    return _plugin(_Duplicate(), "dup")


@case
def plugin_implements_an_unknown_hook(tmp: Path):
    pm = PluginManager(autoload=False)
    return pm, lambda: pm.register(_UnknownHook(), name="typo")


@case
def plugin_entry_point_fails_to_import(tmp: Path):
    import importlib.metadata
    from unittest import mock

    ep = importlib.metadata.EntryPoint(name="missing", value="no_such_module_xyz:plugin", group="banditformer")
    pm = PluginManager(autoload=False)

    def action() -> Any:
        with mock.patch("importlib.metadata.entry_points", return_value=[ep]):
            pm.load_entry_points()
        return pm.registry("policy")

    return pm, action


@case
def plugin_factory_returns_the_wrong_type(tmp: Path):
    pm = PluginManager(autoload=False)
    pm.register(_NotAPolicy(), name="not_a_policy")
    from banditformer.plugins import set_plugin_manager

    set_plugin_manager(pm)
    return [], lambda: bf.make_policy("not_a_policy", num_arms=2)


# ------------------------------------------------------------------------------ checkpoints
@case
def policy_state_of_another_shape(tmp: Path):
    p = _ucb()
    other = bf.make_policy("ucb1", num_arms=5).state_dict()
    return [p], lambda: p.load_state_dict(other)


@case
def policy_state_of_another_policy(tmp: Path):
    p = _ucb()
    other = bf.make_policy("epsilon_greedy", num_arms=3).state_dict()
    return [p], lambda: p.load_state_dict(other)


@case
def checkpoint_truncated(tmp: Path):
    trainer = _tiny_trainer()
    trainer.save(tmp / "ok.ckpt")
    data = (tmp / "ok.ckpt").read_bytes()
    (tmp / "cut.ckpt").write_bytes(data[: len(data) // 3])
    return [trainer.model, trainer.controller], lambda: trainer.load(tmp / "cut.ckpt")


@case
def checkpoint_foreign(tmp: Path):
    trainer = _tiny_trainer()
    torch.save({"state_dict": {}}, tmp / "foreign.ckpt")
    return [trainer.model, trainer.controller], lambda: trainer.load(tmp / "foreign.ckpt")


@case
def checkpoint_of_another_config(tmp: Path):
    from banditformer.training import TrainConfig

    trainer = _tiny_trainer()
    trainer.save(tmp / "ok.ckpt")
    other = _tiny_trainer(TrainConfig(epochs=2, batch_size=64, progress=False))
    return [other.model, other.controller], lambda: other.load(tmp / "ok.ckpt")


def _tiny_trainer(config: Any = None) -> Any:
    from banditformer.model import DynamicTransformer, TransformerConfig
    from banditformer.tasks import pointer_chasing
    from banditformer.training import TrainConfig, Trainer

    data = pointer_chasing(num_samples=60, seed=0)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(data, d_model=8, num_layers=2, num_heads=2))
    ctrl = bf.make_controller("dht", num_layers=2, num_heads=2, context_dim=8, full_flops=1e5, seed=0)
    return Trainer(model, ctrl, data, config or TrainConfig(epochs=1, batch_size=64, progress=False))


# ------------------------------------------- untrusted checkpoints, failed calls (issue 12)
class _RunsCode:
    """Unpickled, this calls ``open(marker, "w")``: a file that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _crafted(tmp: Path, edit: Callable[[dict], None]) -> tuple[Any, Path]:
    """A trainer and a checkpoint of it with ``edit`` applied (loaded as data, edited, saved)."""
    trainer = _tiny_trainer()
    trainer.save(tmp / "ok.ckpt")
    state = torch.load(tmp / "ok.ckpt", weights_only=True)
    edit(state)
    torch.save(state, tmp / "crafted.ckpt")
    return _tiny_trainer(), tmp / "crafted.ckpt"


@case
def checkpoint_that_runs_code(tmp: Path):
    trainer = _tiny_trainer()
    trainer.save(tmp / "ok.ckpt")
    state = torch.load(tmp / "ok.ckpt", weights_only=True)
    state["history"] = [_RunsCode(tmp / "pwned")]
    torch.save(state, tmp / "evil.ckpt")
    return [trainer], lambda: trainer.load(tmp / "evil.ckpt")


@case
def checkpoint_negative_step(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s.update(step=-5))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_nan_train_flops(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s.update(train_flops=math.nan))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_history_not_a_list(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s.update(history={"epoch": 1}))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_nan_policy_counts(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s["controller"]["count_policy.counts"].fill_(math.nan))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_other_hyperparameter(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s["controller"]["count_policy.c"].fill_(-100.0))
    return [trainer], lambda: trainer.load(path)


@case
def policy_state_with_a_broken_generator(tmp: Path):
    p = _ucb()
    state = p.state_dict()
    state["_extra_state"] = {**state["_extra_state"], "rng_state": torch.zeros(8, dtype=torch.uint8)}
    state["counts"] = state["counts"] + 1  # statistics that would be copied first, before
    return [p], lambda: p.load_state_dict(state)


@case
def dht_feedback_for_another_controllers_decision(tmp: Path):
    c = _dht()
    d = Decision.full(2, 3, 2)  # not made by c.decide(): no record of what the policies chose
    return [c], lambda: c.feedback(d, torch.rand(2), torch.ones(2))


@case
def train_step_labels_out_of_range(tmp: Path):
    trainer = _tiny_trainer()
    x = trainer.task.train.x[:4]
    return [trainer], lambda: trainer.train_step(x, torch.tensor([0, 1, 2, 99]))


@case
def train_step_diverged(tmp: Path):
    from banditformer.training import TrainConfig

    trainer = _tiny_trainer(TrainConfig(epochs=3, batch_size=64, progress=False))
    x, y = trainer.task.train.x[:8], trainer.task.train.y[:8]
    trainer.train_step(x, y)
    trainer.model.head.weight.register_hook(lambda g: g * math.inf)  # an exploding gradient
    return [trainer], lambda: trainer.train_step(x, y)


@case
def checkpoint_path_under_a_file(tmp: Path):
    trainer = _tiny_trainer()
    (tmp / "a_file").write_text("")
    return [trainer], lambda: trainer.fit(checkpoint=tmp / "a_file" / "run.ckpt")


# ----------------------------------------- checked before computing; scoped switches (issue 12)
_TINY_MODEL_BENCH = {"task": "pointer_chasing", "task_kwargs": {"num_samples": 60}, "epochs": 1, "batch_size": 64,
                     "d_model": 8, "num_layers": 2, "num_heads": 2}  # fmt: skip


def _without_module(name: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` run as if ``name`` were not installed."""
    import sys

    def run() -> Any:
        saved = sys.modules.get(name, _MISSING)
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
        try:
            return fn()
        finally:
            if saved is _MISSING:
                del sys.modules[name]
            else:
                sys.modules[name] = saved

    return run


_MISSING = object()


@case
def bench_seed_beyond_64_bits(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig

    return [], lambda: BanditBenchConfig(policies=["ucb1"], seed=2**70)


@case
def bench_more_checkpoints_than_rounds(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig

    return [], lambda: BanditBenchConfig(policies=["ucb1"], horizon=100, checkpoints=30_000_000)


@case
def bench_run_beyond_memory(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig

    return [], lambda: BanditBenchConfig(policies=["ucb1"], horizon=10**15)


@case
def bench_mabwiser_not_installed(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig

    return [], _without_module("mabwiser.mab", lambda: BanditBenchConfig(policies=["ucb1"], mabwiser=True))


@case
def model_bench_bad_controller_option(tmp: Path):
    from banditformer.bench.models import ModelBenchConfig, plan_models

    bad = {"controllers": ["static", "dht"], "controller_kwargs": {"dht": {"head_reward": "x"}}}
    return [], lambda: plan_models(ModelBenchConfig(**{**_TINY_MODEL_BENCH, **bad}))


@case
def model_bench_unknown_task_option(tmp: Path):
    from banditformer.bench.models import ModelBenchConfig, plan_models

    return [], lambda: plan_models(ModelBenchConfig(**{**_TINY_MODEL_BENCH, "task_kwargs": {"num_sample": 60}}))


@case
def model_bench_last_seed_beyond_64_bits(tmp: Path):
    from banditformer.bench.models import ModelBenchConfig

    return [], lambda: ModelBenchConfig(**{**_TINY_MODEL_BENCH, "seed": 2**63 - 1, "seeds": 2})


@case
def model_bench_run_beyond_memory(tmp: Path):
    from banditformer.bench.models import ModelBenchConfig, plan_models

    huge = {"d_model": 2**17, "num_layers": 512, "num_heads": 16, "batch_size": 2**16}
    return [], lambda: plan_models(ModelBenchConfig(**{**_TINY_MODEL_BENCH, **huge}))


@case
def value_checks_switch_not_a_bool(tmp: Path):
    return [], lambda: bf.set_value_checks(0)


@case
def toml_config_not_utf8(tmp: Path):
    from banditformer.cli import build_parser, load_toml_defaults

    path = tmp / "latin1.toml"
    path.write_bytes('problem = "bernoulli_two"\n# caf\xe9\n'.encode("latin-1"))
    sub = build_parser()._bench_parsers["bandits"]
    return [], lambda: load_toml_defaults(sub, str(path))


# ----------------------------------------------------------------------------- results folders
def _bandit_log(tmp: Path) -> Any:
    from dataclasses import asdict

    from banditformer.bench.bandits import BanditBenchConfig
    from banditformer.bench.runlog import RunLog

    config = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=50, seeds=2)
    log = RunLog.create(tmp / "results", "bandits", asdict(config), config.digest())
    log.close()
    return log.folder


@case
def bench_resume_of_another_configuration(tmp: Path):
    from banditformer.bench.bandits import BanditBenchConfig, run_bandits
    from banditformer.bench.runlog import RunLog

    folder = _bandit_log(tmp)
    other = BanditBenchConfig(problem="bernoulli_two", policies=["ucb1"], horizon=60, seeds=2)
    return [], lambda: run_bandits(other, log=RunLog.resume(folder, "bandits"))


@case
def bench_resume_of_a_folder_in_use(tmp: Path):
    from banditformer.bench.runlog import RunLog

    folder = _bandit_log(tmp)
    first = RunLog.resume(folder, "bandits")  # holds the folder's lock, as a run in progress does
    return [], lambda: (first, RunLog.resume(folder, "bandits"))


@case
def bench_results_folder_is_a_file(tmp: Path):
    from banditformer.bench.runlog import RunLog

    (tmp / "a_file").write_text("")
    return [], lambda: RunLog.create(tmp / "a_file", "bandits", {}, "abc")


class _OutOfRange(bf.Policy):
    """A plugin policy whose `_select` breaks the contract: arm `num_arms` does not exist."""

    def _select(self, context, groups):
        return torch.full((groups.shape[0],), self.num_arms, dtype=torch.long)

    def _update(self, arms, rewards, context, groups):
        pass


class _OutOfRangePlugin:
    @hookimpl
    def banditformer_add_policies(self):
        return {"off_by_one": _OutOfRange}


@case
def plugin_policy_returns_arms_out_of_range(tmp: Path):
    from banditformer.plugins import set_plugin_manager

    pm = PluginManager(autoload=False)
    pm.register(_OutOfRangePlugin(), name="sloppy")
    set_plugin_manager(pm)
    policy = bf.make_policy("off_by_one", num_arms=3)
    return [policy], lambda: policy.select(n=2)


@case
def checkpoint_other_optimizer_setting(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s["optimizer"]["param_groups"][0].update(weight_decay=-5.0))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_other_schedule(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s["scheduler"].update(T_max=0))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_nan_weights(tmp: Path):
    trainer, path = _crafted(tmp, lambda s: s["model"]["head.weight"].fill_(math.nan))
    return [trainer], lambda: trainer.load(path)


@case
def checkpoint_path_a_loop_of_symlinks(tmp: Path):
    (tmp / "loop1").symlink_to(tmp / "loop2")
    (tmp / "loop2").symlink_to(tmp / "loop1")
    trainer = _tiny_trainer()
    return [trainer], lambda: trainer.fit(checkpoint=tmp / "loop1")
