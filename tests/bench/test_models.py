"""The model benchmark: the sweep plan, runs that repeat exactly for any worker count, output
files, a failing run reported by label, and bad input caught by the plan before any run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import banditformer as bf
from banditformer.bench.config import TRAIN_FIELDS
from banditformer.bench.models import ModelBenchConfig, ModelPlan, plan_models, run_models
from banditformer.bench.report import format_model_report, write_model_report
from banditformer.controllers import Static
from banditformer.plugins import PluginManager, hookimpl, set_plugin_manager

pytest.importorskip("sklearn")  # the digits task

TINY = {"task": "digits", "epochs": 1, "batch_size": 128, "d_model": 16, "num_layers": 2, "num_heads": 2}


def test_the_plan_sweeps_budgets_for_baselines_and_lams_for_bandit_controllers() -> None:
    config = ModelBenchConfig(
        controllers=["static", "static_small", "layerdrop", "dht"], lams=[0.1, 0.3], budgets=[0.5],
        dht_budgets=[0.25], warmup=0.5, controller_kwargs={"dht": {"head_reward": "importance"}}, **TINY,
    )  # fmt: skip
    planned = plan_models(config)
    assert isinstance(planned, ModelPlan) and planned.config is config
    plan = {label: (ctrl, kw) for label, ctrl, kw in planned.runs}
    assert list(plan) == ["static", "static_small@0.5", "layerdrop@0.5", "dht lam=0.1", "dht lam=0.3",
                          "dht budget=0.25"]  # fmt: skip
    assert set(plan["static_small@0.5"][1]) == {"depth", "heads"}
    assert plan["layerdrop@0.5"][1]["drop"] == 0.2
    steps = planned.steps
    assert steps == -(-len(bf.make_task("digits").train) // 128)  # batches of 128, one epoch
    for label in ("dht lam=0.1", "dht budget=0.25"):
        kw = plan[label][1]
        assert kw["head_reward"] == "importance" and kw["warmup_steps"] == round(0.5 * steps)
    assert plan["dht budget=0.25"][1]["flop_budget"] == 0.25


@pytest.mark.parametrize("budget", [0.3, 0.5, 0.6, 0.8])
def test_every_budgeted_baseline_runs_within_its_budget_at_inference(budget: float) -> None:
    # LayerDrop keeps every head, so it is pruned to the deepest all-heads model within the budget
    # (pruning it to static_small's depth, with every head, ran above the budget: 0.668 at 0.6)
    from banditformer.bench.models import budget_kwargs
    from banditformer.model import DynamicTransformer, TransformerConfig

    table = DynamicTransformer(TransformerConfig(input="sequence", num_classes=3, seq_len=16, d_model=32,
                                                 num_layers=6, num_heads=4)).cost_table()  # fmt: skip
    for name in ("static_small", "layerdrop"):
        ctrl = bf.make_controller(name, num_layers=6, num_heads=4, **budget_kwargs(name, table, budget))
        ratio = float(table.flop_ratio(ctrl.decide(torch.zeros(8, 32), explore=False)).mean())
        assert ratio <= budget + 1e-9, (name, ratio)


def test_the_cli_takes_empty_lam_and_budget_lists() -> None:
    from banditformer.cli import build_parser

    args = build_parser().parse_args(["bench", "model", "--lams", "--budgets", "--dht-budgets", "0.5"])
    assert (args.lams, args.budgets, args.dht_budgets) == ([], [], [0.5])
    plan = plan_models(ModelBenchConfig(controllers=["dht"], lams=[], budgets=[], dht_budgets=[0.5], **TINY))
    assert [label for label, _, _ in plan.runs] == ["dht budget=0.5"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "nope"}, "available: "),
        ({"controllers": ["nope"]}, "available: "),
        ({"controllers": "dht"}, "list of controller names"),
        ({"lams": [-1.0]}, "lams"),
        ({"budgets": [1.5]}, "budgets"),
        ({"budgets": 0.5}, "list of numbers"),
        ({"seeds": 0}, "seeds"),
        ({"warmup": 1.0}, "warmup"),
        ({"pooling": "max"}, "pooling"),
        ({"controllers": ["dht"], "lams": []}, "at least one run"),
        ({"controller_kwargs": {"dht_integrated": {}}}, "controller_kwargs keys"),
        ({"controllers": ["dht"], "lams": [0.1, 0.1000001]}, "more than once"),
        ({"controllers": ["static", "static"]}, "more than once"),
    ],
)
def test_bad_configurations_fail_before_any_work(kwargs: dict, match: str) -> None:
    with pytest.raises(bf.InputValidationError, match=match):
        plan_models(ModelBenchConfig(**{**TINY, **kwargs}))


def test_a_configuration_is_checked_cheaply_and_the_plan_builds_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from banditformer.bench import experiment

    built: list[str] = []
    real = experiment.make_task
    monkeypatch.setattr(experiment, "make_task", lambda name, **kw: built.append(name) or real(name, **kw))
    config = ModelBenchConfig(**{**POINTER, "task_kwargs": {"num_sample": 60}})  # a misspelt task option
    assert built == []  # nothing loaded or traced to make a configuration
    with pytest.raises(bf.InputValidationError, match="expected arguments matching task 'pointer_chasing'"):
        plan_models(config)
    assert built == ["pointer_chasing"]
    with pytest.raises(bf.InputValidationError, match="expected a ModelBenchConfig, got dict"):
        plan_models(POINTER)  # type: ignore[arg-type]


def test_the_schedule_is_train_configs_own() -> None:
    from dataclasses import fields

    from banditformer.training import TrainConfig

    assert set(TRAIN_FIELDS) <= {f.name for f in fields(TrainConfig)}
    config = ModelBenchConfig(**TINY)
    train = config.train_config(7)
    assert (train.epochs, train.batch_size, train.lr, train.seed, train.progress) == (1, 128, 3e-3, 7, False)
    assert train.weight_decay == TrainConfig().weight_decay  # the fields the bench does not set keep their defaults
    for bad, says in [({"epochs": 0}, "expected `epochs` in [1, inf], got 0"),
                      ({"batch_size": 0}, "expected `batch_size` in [1, inf], got 0"),
                      ({"lr": 0.0}, "expected `lr` in (0, inf], got 0.0")]:  # fmt: skip
        with pytest.raises(bf.InputValidationError) as info:
            ModelBenchConfig(**{**TINY, **bad})
        assert str(info.value) == says


class _FailsInTraining(Static):
    """Builds (so the configuration passes its checks) and then fails in every run."""

    def _feedback(self, decision, quality, flops, **extra) -> None:
        raise RuntimeError("boom in training")


class _FailingPlugin:
    @hookimpl
    def banditformer_add_controllers(self):
        return {"fails_in_training": _FailsInTraining}


@pytest.fixture
def failing_controller():
    pm = PluginManager(autoload=False)
    pm.register(_FailingPlugin(), name="failing")
    set_plugin_manager(pm)
    yield "fails_in_training"
    set_plugin_manager(None)


def test_runs_repeat_exactly_summarise_over_seeds_and_report_failures(tmp_path: Path, failing_controller) -> None:
    config = ModelBenchConfig(controllers=["static", failing_controller, "dht"], lams=[0.2], seeds=2, **TINY)
    report = run_models(config)
    assert len(report.runs) == 6
    failed = [r for r in report.runs if "error" in r]
    assert [r["label"] for r in failed] == [failing_controller] * 2 and "boom in training" in failed[0]["error"]
    ok = {(r["label"], r["seed"]): r for r in report.runs if "error" not in r}
    assert set(ok) == {("static", 0), ("static", 1), ("dht lam=0.2", 0), ("dht lam=0.2", 1)}
    assert ok[("static", 0)]["accuracy"] != ok[("static", 1)]["accuracy"]  # seeds differ
    assert all(r["eval_us_per_sample"] > 0 for r in ok.values())
    rows = {r["label"]: r for r in report.summary}
    assert rows[failing_controller]["seeds"] == 0 and rows[failing_controller]["failed"] == 2
    mean = (ok[("static", 0)]["accuracy"] + ok[("static", 1)]["accuracy"]) / 2
    assert rows["static"]["accuracy"] == pytest.approx(mean) and rows["static"]["accuracy_ci95"] > 0
    assert any(rows[label]["pareto"] for label in ("static", "dht lam=0.2"))
    text = format_model_report(report)
    assert "FAILED" in text and failing_controller in text
    set_plugin_manager(None)  # the rest runs with the built-ins only
    folder = write_model_report(report, tmp_path)
    text = (folder / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: undefined values are null
    doc = json.loads(text)
    assert doc["config"]["seeds"] == 2 and len(doc["runs"]) == 6 and doc["config_hash"] == config.digest()
    with open(folder / "runs.csv", encoding="utf-8") as f:
        assert len(list(csv.DictReader(f))) == 6
    again = run_models(ModelBenchConfig(controllers=["static", "dht"], lams=[0.2], seeds=2, **TINY), workers=2)
    for r in again.runs:
        first = ok[(r["label"], r["seed"])]
        assert (r["accuracy"], r["flop_saving"]) == (first["accuracy"], first["flop_saving"])


def test_the_cli_takes_flags_and_a_toml_file(tmp_path: Path, capsys) -> None:
    from banditformer.cli import main

    toml = tmp_path / "model.toml"
    toml.write_text(
        'task = "digits"\ncontrollers = ["static", "static_small"]\nbudgets = [0.5]\nepochs = 1\nwidth = 16\n'
        "layers = 2\nheads = 2\nbatch_size = 128\nlr = 1\n[task_kwargs]\n"
    )
    code = main(["bench", "model", "--config", str(toml), "--lr", "0.003", "--quiet", "--no-plot",
                 "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    (folder,) = (tmp_path / "out").iterdir()
    doc = json.loads((folder / "results.json").read_text())
    assert doc["config"]["lr"] == 0.003 and doc["config"]["num_layers"] == 2  # the flag beat the file
    assert "static_small@0.5" in capsys.readouterr().out
    toml.write_text("budgets = ['half']\n")
    assert main(["bench", "model", "--config", str(toml)]) == 2
    assert "expected option 'budgets'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "model", "--task-kwargs", "[1]"])
    assert "expected a JSON object" in capsys.readouterr().err


# ------------------------------------------------------ issue 12: checked before computing
POINTER = {"task": "pointer_chasing", "task_kwargs": {"num_samples": 60}, "epochs": 1, "batch_size": 64,
           "d_model": 8, "num_layers": 2, "num_heads": 2}  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"controllers": ["static_small"], "budgets": [0.5], "controller_kwargs": {"static_small": {"heads": 99}}},
         "expected `heads` in [1, 2], got 99 (configuration 'static_small@0.5')"),
        ({"controllers": ["dht"], "controller_kwargs": {"dht": {"head_reward": "x"}}},
         "expected `head_reward` in ('sample', 'importance'), got 'x' (configuration 'dht lam=0.05')"),
        ({"controllers": ["dht"], "controller_kwargs": {"dht": {"count_policy": "ucb9"}}},
         "unknown policy 'ucb9'; expected one of: "),
        ({"controllers": ["dht"], "controller_kwargs": {"dht": {"head_rewrd": "x"}}},
         "expected arguments matching controller 'dht'("),
        ({"controllers": ["dht"], "controller_kwargs": {"dht": 5}}, "expected controller_kwargs['dht'] to be a dict"),
        ({"task_kwargs": {"num_sample": 60}}, "expected arguments matching task 'pointer_chasing'(seed: 'int' = 0, "),
        ({"d_model": 10, "num_heads": 3}, "expected `d_model` to be a multiple of `num_heads` (3), got 10"),
        ({"seed": 2**63}, "expected `seed` in [0, 9223372036854775807], got 9223372036854775808"),
        ({"d_model": 2**17, "num_layers": 512, "batch_size": 2**16}, "expected a run of a 512-block, 131072-wide"),
    ],
)  # fmt: skip
def test_every_configuration_is_checked_against_its_factory_before_the_first_run(kwargs, says, monkeypatch) -> None:
    from banditformer.bench import experiment

    monkeypatch.setattr(experiment, "run_experiment", lambda *a, **k: pytest.fail("a run started"))
    with pytest.raises(bf.InputValidationError) as info:
        run_models(ModelBenchConfig(**{**POINTER, **kwargs}))
    assert str(info.value).startswith(says), str(info.value)


def test_a_plugin_factory_that_raises_its_own_error_is_named_with_the_configuration(failing_controller) -> None:
    # (the fixture restores the process-wide manager afterwards)
    class Picky(Static):
        def __init__(self, num_layers: int, num_heads: int, *, colour: str = "red") -> None:
            if colour != "red":
                raise ValueError(f"no {colour}")
            super().__init__(num_layers, num_heads)

    class Plugin:
        @hookimpl
        def banditformer_add_controllers(self):
            return {"picky": Picky}

    pm = PluginManager(autoload=False)
    pm.register(Plugin(), name="picky_plugin")
    set_plugin_manager(pm)
    with pytest.raises(bf.InputValidationError) as info:
        plan_models(ModelBenchConfig(**{**POINTER, "controllers": ["picky"],
                                        "controller_kwargs": {"picky": {"colour": "blue"}}}))  # fmt: skip
    assert str(info.value) == "expected controller 'picky' to build, got ValueError: no blue (configuration 'picky')"


def test_the_checks_build_the_task_once_and_the_plan_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    from banditformer.bench import experiment

    built: list[str] = []
    real = experiment.make_task
    monkeypatch.setattr(experiment, "make_task", lambda name, **kw: built.append(name) or real(name, **kw))
    config = ModelBenchConfig(**{**POINTER, "controllers": ["static", "static_small", "dht"], "budgets": [0.5],
                                 "warmup": 0.5})  # fmt: skip
    planned = plan_models(config)
    assert built == ["pointer_chasing"]  # once, for the four configurations' checks
    plan = planned.runs
    assert [label for label, _, _ in plan] == ["static", "static_small@0.5", "dht lam=0.05", "dht lam=0.2"]
    assert plan[2][2]["warmup_steps"] == round(0.5 * planned.steps)


def test_run_models_takes_the_plan_of_its_configuration_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from banditformer.bench import models

    config = ModelBenchConfig(**{**POINTER, "controllers": ["static"]})
    planned = plan_models(config)
    other = plan_models(ModelBenchConfig(**{**POINTER, "controllers": ["static"], "seed": 1}))
    with pytest.raises(bf.InputValidationError, match="expected the plan of this configuration"):
        run_models(config, plan=other)
    with pytest.raises(bf.InputValidationError, match="expected a ModelPlan"):
        run_models(config, plan=planned.runs)  # type: ignore[arg-type]
    monkeypatch.setattr(models, "plan_models", lambda config: pytest.fail("planned again"))
    report = run_models(config, plan=planned)
    assert [r["label"] for r in report.runs] == ["static"] and "error" not in report.runs[0]
