"""The ``banditformer`` command.

banditformer plugins            list every implementation and the plugin it came from
banditformer demo               DHT against the full model on a task (the README's main job)
banditformer bench bandits      policies x seeds on a bandit problem, results to a folder
banditformer bench model        controllers x lambdas x seeds on a task, results to a folder
banditformer ope                target policies' values estimated from a log (off-policy evaluation)
banditformer --version

Each subcommand imports the bench modules it runs when it runs (scipy and the runners add about
0.7 s to a start that ``--help`` or ``plugins`` do not need); no import here dodges a circle: the
command line is the top layer.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from banditformer import __version__
from banditformer.core.errors import BanditformerError, InputValidationError
from banditformer.core.validation import SEED_MAX, check_float, check_int
from banditformer.plugins import KINDS, get_plugin_manager, list_problems, list_tasks


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors suggest the closest option or choice for a misspelt one
    (``--horizn`` -> ``--horizon``), as ``suggest_on_error`` does from Python 3.14."""

    def error(self, message: str) -> NoReturn:
        if "did you mean" not in message:
            message += suggestion(self, message)
        super().error(message)


def suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """``"; did you mean ...?"`` for the misspelt flags or choices that argparse's ``message``
    names, from ``parser``'s option strings and choices; empty when nothing is close."""
    hints = []
    found = re.match(r"unrecognized arguments: (?P<words>.*)", message)
    if found:
        flags = [o for o in parser._option_string_actions if o.startswith("--")]
        for word in found["words"].split():
            if word.startswith("-"):
                hints += difflib.get_close_matches(word.split("=")[0], flags, n=1, cutoff=0.6)
    found = re.search(r"invalid choice: '(?P<value>[^']*)'", message)
    if found:
        for action in parser._actions:
            choices = [str(c) for c in getattr(action, "choices", None) or ()]
            hints += difflib.get_close_matches(found["value"], choices, n=1, cutoff=0.6)
    return f"; did you mean {' or '.join(dict.fromkeys(hints))}?" if hints else ""


def close_names(name: str, names: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the registered name closest to ``name``, or empty."""
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where there is one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cmd_plugins(args: argparse.Namespace) -> int:
    pm = get_plugin_manager()
    print(f"plugins loaded: {', '.join(pm.plugins)}")
    for kind in KINDS:
        entries = pm.registry(kind)
        print(f"\n{kind} ({len(entries)})")
        for name in sorted(entries):
            print(f"  {name:<28} {entries[name].plugin}")
    if pm.failures:
        print(f"\nfailed plugins ({len(pm.failures)})")
        for err in pm.failures:
            print(f"  {err}")
    return 1 if (pm.failures and args.strict) else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from banditformer.bench.experiment import check_experiment, prepare_experiment, run_experiment
    from banditformer.training import TrainConfig

    # Every option is checked, and both runs' controllers built once, before the first run trains.
    check_float("--lam", args.lam, low=0.0)
    if args.budget is not None:
        check_float("--budget", args.budget, low=0.0, high=1.0, low_open=True)
    check_float("--warmup", args.warmup, low=0.0, high=1.0, high_open=True)
    check_float("--lr", args.lr, low=0.0, low_open=True)
    for flag, value in (("--epochs", args.epochs), ("--width", args.width), ("--layers", args.layers),
                        ("--heads", args.heads)):  # fmt: skip
        check_int(flag, value, low=1)
    check_int("--seed", args.seed, low=0, high=SEED_MAX)
    if args.width % args.heads:
        raise InputValidationError(f"expected `--width` to be a multiple of `--heads` ({args.heads}), got {args.width}")
    train = TrainConfig(epochs=args.epochs, batch_size=32, lr=args.lr, seed=args.seed, progress=not args.quiet)
    model = {"d_model": args.width, "num_layers": args.layers, "num_heads": args.heads, "pooling": "cls"}
    cache: dict[str, Any] = {}
    data, _, _ = prepare_experiment(args.task, args.seed, None, model, train, cache)
    steps = train.total_steps(len(data.train))
    dht: dict = {"lam": args.lam, "warmup_steps": round(args.warmup * steps)}
    label = f"DHT (lambda={args.lam:g})"
    if args.budget is not None:
        dht["flop_budget"] = args.budget
        label = f"DHT (budget {args.budget:g})"
    runs = [("full model", "static", {}), (label, "dht", dht)]
    for _, controller, kwargs in runs:
        check_experiment(args.task, controller, seed=args.seed, model=model, controller_kwargs=kwargs, train=train,
                         cache=cache)  # fmt: skip
    del cache, data
    print(
        f"banditformer {__version__}: the Dynamic Hierarchical Transformer against the full model on "
        f"{args.task!r}, {args.epochs} epochs, seed {args.seed}, on the CPU\n",
        flush=True,
    )
    rows = []
    for label, controller, kwargs in runs:
        calibrate = [args.budget] if controller == "dht" and args.budget is not None else None
        r = run_experiment(args.task, controller, seed=args.seed, model=model, controller_kwargs=kwargs, train=train,
                           calibrate=calibrate)  # fmt: skip
        rows.append((label, r))
    head = f"{'controller':<30}{'test accuracy':>15}{'FLOP saving (inference)':>26}{'(training)':>12}{'train time':>12}"
    print("\n" + head + "\n" + "-" * len(head))
    for label, r in rows:
        print(
            f"{label:<30}{r['accuracy']:>15.1%}{r['flop_saving']:>26.1%}{r['train_flop_saving']:>12.1%}"
            f"{r['wall_time_s']:>11.1f}s"
        )
    dht = rows[1][1]
    for entry in dht.get("calibrated", []):  # the budget held at inference: calibrated on validation
        if "error" in entry:
            print(f"{'  calibrated':<30}{entry['error']}")
        else:
            print(f"{'  calibrated on validation':<30}{entry['accuracy']:>15.1%}{entry['flop_saving']:>26.1%}")
    print(f"\nDHT depth distribution at inference (depth 1..{args.layers}): {dht['depth_counts']}")
    return 0


#: The flags that make each bench's configuration: flag (argparse dest) -> configuration field.
_BENCH_FIELDS: dict[str, dict[str, str]] = {
    "bandits": {name: name for name in ("problem", "policies", "horizon", "seeds", "seed", "checkpoints", "mabwiser",
                                        "seed_block")},
    "model": {
        **{name: name for name in ("task", "controllers", "lams", "budgets", "dht_budgets", "seeds", "seed", "epochs",
                                   "batch_size", "lr", "pooling", "exit_heads", "warmup", "layerdrop", "task_kwargs",
                                   "controller_kwargs", "threads", "objective", "eval_shapes", "batch1_samples",
                                   "curve")},
        "width": "d_model", "layers": "num_layers", "heads": "num_heads",
    },
}  # fmt: skip


def _given_options(argv: Sequence[str] | None, args: argparse.Namespace) -> set[str]:
    """The options of a bench command given on its command line or in its ``--config`` file (not
    left at their defaults)."""
    parser = build_parser()
    sub = parser._bench_parsers[args.bench]  # type: ignore[attr-defined]
    for action in sub._actions:
        action.default = argparse.SUPPRESS
    given = set(vars(parser.parse_known_args(argv)[0]))
    if getattr(args, "config", None) is not None:
        given |= set(load_toml_defaults(sub, args.config))
    return given & {a.dest for a in sub._actions}


def _bench_config(
    args: argparse.Namespace, kind: str, make: Any, prepare: Any = lambda config: None
) -> tuple[Any, Any, Any]:
    """The configuration, ``prepare(configuration)`` (what is checked before any work: the model
    bench's plan) and the run log of a ``bench`` command: a new results folder under ``--out``
    (made, and written to, before any work, once ``prepare`` passed), or with ``--resume FOLDER``
    the folder's recorded configuration, which the configuration flags given must match."""
    import json

    from banditformer.bench.config import LATER_FIELDS
    from banditformer.bench.runlog import RunLog

    fields = _BENCH_FIELDS[kind]
    values = {field: getattr(args, dest) for dest, field in fields.items()}
    check_int("workers", args.workers, low=1)  # before a results folder exists
    if args.resume is None:
        config = make(**values)
        prepared = prepare(config)
        return config, prepared, RunLog.create(args.out, kind, config.record(), config.digest())
    log = RunLog.resume(args.resume, kind)
    given = getattr(args, "given", set())
    later = LATER_FIELDS if kind == "model" else {}  # left out of the record at their defaults
    differ = [
        f"--{dest.replace('_', '-')} {values[field]!r} (recorded {log.config.get(field, later.get(field))!r})"
        for dest, field in fields.items()
        if dest in given and json.loads(json.dumps(values[field])) != log.config.get(field, later.get(field))
    ]
    try:
        if differ:
            raise InputValidationError(
                f"expected the configuration recorded in {str(log.folder / log.RUN)!r} (give no configuration flags "
                f"with --resume, or the same values), got different flags: {'; '.join(differ)}"
            )
        try:
            from_record = getattr(make, "from_record", None)  # the bandit bench checks its streams
            config = make(**log.config) if from_record is None else from_record(log.config)
        except TypeError as exc:
            raise InputValidationError(
                f"expected a configuration of this version in {str(log.folder / log.RUN)!r}, got: {exc}"
            ) from None
        log.check_config(config.record(like=log.config))
        prepared = prepare(config)
    except BaseException:
        log.close()
        raise
    return config, prepared, log


def _bench_finish(log: Any, report: Any, files: list[Any]) -> None:
    """Mark the folder with the run's status, last, once every summary file is written."""
    jobs = {k: v for k, v in report.meta["jobs"].items() if k != "total"}
    log.set_status(report.meta["status"], **jobs, files=[Path(f).name for f in files])


def _bench_interrupted(kind: str, log: Any, exc: Any, write: Any) -> int:
    """Ctrl-C: write the summaries of what finished (not the plots: they take seconds), mark the
    folder interrupted, say so in one line on stderr; exit status 130 (as shells do for SIGINT)."""
    from banditformer.bench.pool import sigint_ignored

    with sigint_ignored():  # a second Ctrl-C does not cut the summaries short
        files = [] if exc.report is None else [write(exc.report, log.folder) / "results.json"]
        jobs = {} if exc.report is None else {k: v for k, v in exc.report.meta["jobs"].items() if k != "total"}
        log.set_status("interrupted", **jobs, files=[f.name for f in files])
    print(
        f"banditformer: interrupted: {sum(exc.finished)} of {len(exc.finished)} jobs recorded in {log.folder}; "
        f"`banditformer bench {kind} --resume {log.folder}` runs the rest",
        file=sys.stderr,
    )
    return 130


def _bench_os_error(kind: str, log: Any, exc: OSError) -> int:
    """A results folder that cannot be written any more (a full disk, a removed folder): one line
    saying so, the folder marked interrupted where it still can be; exit status 1."""
    if log is not None:
        with contextlib.suppress(OSError):
            log.set_status("interrupted", error=f"{type(exc).__name__}: {exc}")
    where = f" in {log.folder}; `banditformer bench {kind} --resume {log.folder}` runs the rest" if log else ""
    print(
        f"banditformer: error: expected to write the results, got {type(exc).__name__}: {exc.strerror or exc}; the "
        f"jobs that finished are recorded{where}",
        file=sys.stderr,
    )
    return 1


def _bench_session(
    kind: str,
    args: argparse.Namespace,
    prepare: Any,
    run: Any,
    write: Any,
    plot: Any,
    table: str,
) -> tuple[Any, Any, list[Any]] | int:
    """One bench command's life: ``prepare()`` -> ``(config, plan, log)``, ``run(config, plan, log)``
    -> the report, ``write(report, folder)``, ``plot(report, folder)`` -> plot files (unless
    ``--no-plot``). Returns ``(config, report, files)``, or the exit status of an interrupted or
    failed run (its results folder says what finished)."""
    from banditformer.bench.pool import RunInterrupted

    log = None
    try:
        config, plan, log = prepare()
        try:
            report = run(config, plan, log)
        except RunInterrupted as exc:
            return _bench_interrupted(kind, log, exc, write)
        folder = write(report, log.folder)
        files: list[Any] = [folder / "results.json", folder / table]
        if not args.no_plot:
            files += plot(report, folder)
        _bench_finish(log, report, files)
    except KeyboardInterrupt:  # before or after the jobs: status.json still says `running`
        print("banditformer: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        return _bench_os_error(kind, log, exc)
    finally:
        if log is not None:
            log.close()
    return config, report, files


def _cmd_bench_bandits(args: argparse.Namespace) -> int:
    from banditformer.bench.bandits import BanditBenchConfig, check_log_dir, run_bandits
    from banditformer.bench.plots import plot_regret
    from banditformer.bench.report import format_report, write_report

    def prepare(config: BanditBenchConfig) -> None:  # the log folder, before the results folder
        if args.log_dir is not None:
            check_log_dir(config, args.log_dir)

    outcome = _bench_session(
        "bandits",
        args,
        lambda: _bench_config(args, "bandits", BanditBenchConfig, prepare),
        lambda config, _, log: run_bandits(
            config, progress=not args.quiet, workers=args.workers, log=log, log_dir=args.log_dir
        ),
        write_report,
        lambda report, folder: [plot_regret(report, folder / "regret.png", log_x=args.log_x)],
        "regret.csv",
    )
    if isinstance(outcome, int):
        return outcome
    config, report, files = outcome
    print(
        f"banditformer {__version__}: {len(report.results)} policies on {config.problem!r}, {config.seeds} seeds of "
        f"{config.horizon} rounds\n"
    )
    print(format_report(report))
    print(f"\nresults ({report.meta['status']}): {', '.join(str(f) for f in files)}")
    if "logs" in report.meta:
        print(f"logs: {report.meta['logs']} (`banditformer ope --log FILE --policy SPEC` evaluates a policy from one)")
    return 1 if any(r.error for r in report.results) else 0


def _cmd_bench_model(args: argparse.Namespace) -> int:
    from banditformer.bench.models import ModelBenchConfig, plan_models, run_models
    from banditformer.bench.plots import plot_model_report
    from banditformer.bench.report import format_model_report, write_model_report

    def run(config: ModelBenchConfig, plan: Any, log: Any) -> Any:
        print(
            f"banditformer {__version__}: {len(plan.runs)} configurations x {config.seeds} seed(s) on {config.task!r}, "
            f"{config.epochs} epochs, {args.workers} worker(s) of {config.threads} thread(s)"
            + (f", resuming {log.folder}" if log.resumed else "")
            + "\n",
            flush=True,
        )
        return run_models(config, progress=not args.quiet, workers=args.workers, log=log, plan=plan)

    outcome = _bench_session(
        "model",
        args,
        lambda: _bench_config(args, "model", ModelBenchConfig, plan_models),
        run,
        write_model_report,
        plot_model_report,
        "runs.csv",
    )
    if isinstance(outcome, int):
        return outcome
    _, report, files = outcome
    print(format_model_report(report))
    print(
        f"\n* on the Pareto front of accuracy against FLOP saving\n"
        f"results ({report.meta['status']}): {', '.join(str(f) for f in files)}"
    )
    return 1 if any("error" in r for r in report.runs) else 0


def _check_writable_dir(flag: str, path: str) -> None:
    """Fail unless ``path`` is a folder that takes files, or can be made under one (its nearest
    existing ancestor takes a temporary file, removed at once); makes nothing that stays."""
    import tempfile

    p = Path(path).absolute()
    where = p if p.exists() else next((a for a in p.parents if a.exists()), None)
    try:
        if where is None or not where.is_dir():
            raise NotADirectoryError(f"{where} is not a folder")
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        raise InputValidationError(
            f"expected {flag} to be a writable folder or one that can be made, got {path!r}: {exc.strerror or exc}"
        ) from None


def _cmd_bench_report(args: argparse.Namespace) -> int:
    from banditformer.bench.models import combined_report, recorded_report
    from banditformer.bench.report import format_model_report, write_model_report

    if args.out is not None:  # before planning: a place that cannot hold the files fails first
        _check_writable_dir("--out", args.out)
    if len(args.folder) == 1:
        report = recorded_report(args.folder[0], whole_seeds=not args.all_runs)
    else:
        report = combined_report(args.folder, whole_seeds=not args.all_runs)
    which = "every recorded run" if args.all_runs else "whole seeds only"
    for meta in report.meta.get("folders", [report.meta]):
        named = f"; its configurations named [{'], ['.join(meta['variants'])}]" if meta.get("variants") else ""
        print(
            f"{meta['folder']}: {meta['recorded']} of {meta['planned']} runs recorded ({meta['status']}); "
            f"reporting seeds {meta['seeds']} ({which}){named}"
        )
    print()
    if not report.runs:
        print("nothing to report yet" + ("" if args.all_runs else " (no seed has finished every run; --all-runs)"))
        return 0
    print(format_model_report(report))
    if args.out is not None:
        try:
            folder = write_model_report(report, args.out)
            written = [folder / "results.json", folder / "runs.csv"]
            if not args.no_plot:
                from banditformer.bench.plots import plot_model_report

                written += plot_model_report(report, folder)
        except OSError as exc:
            raise BanditformerError(
                f"expected to write the report into {args.out!r}, got: {exc.strerror or exc}"
            ) from None
        print(f"\nwritten: {', '.join(str(f) for f in written)}")
    return 0


def _json_object(text: str) -> dict:
    """An argparse type: a JSON object."""
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _cmd_bandits(args: argparse.Namespace) -> int:
    from banditformer.bench.quick import compare_policies, format_table

    results = compare_policies(args.problem, args.policies, args.horizon, args.seeds, args.seed)
    print(
        f"banditformer {__version__}: context-free bandit policies on problem {args.problem!r}, "
        f"{args.seeds} runs of {args.horizon} rounds (runs batched as policy groups)\n"
    )
    print(format_table(results))
    return 0


def _writable_file(flag: str, path: str) -> Path:
    """``path`` as a file this process can write (its folder made), checked by writing a probe
    beside it (removed), before any work."""
    from banditformer.core.files import write_atomic

    out = Path(path)
    if out.is_dir():
        raise InputValidationError(f"expected {flag} to name a file, got the folder {path!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out.parent / f".probe-{os.getpid()}", b"").unlink()
    except OSError as exc:
        raise InputValidationError(
            f"expected {flag} in a writable folder, got {path!r}: {exc.strerror or exc}"
        ) from None
    return out


def _cmd_ope(args: argparse.Namespace) -> int:
    import json

    import torch

    from banditformer.bench.report import json_safe
    from banditformer.bench.specs import make_spec_policy, spec_names
    from banditformer.core.files import write_atomic
    from banditformer.ope import (
        ESTIMATORS,
        BanditLog,
        check_policy_fits,
        effective_sample_size,
        estimate_all,
        fit_reward_model,
        target_probabilities,
    )

    # Everything is checked, and every target built, before the first estimate.
    unknown = [e for e in args.estimators if e not in ESTIMATORS]
    if unknown:
        raise InputValidationError(f"expected --estimators among {sorted(ESTIMATORS)}, got {unknown}")
    check_int("--batch", args.batch, low=1)
    check_int("--seed", args.seed, low=0, high=SEED_MAX)
    out = None if args.json is None else _writable_file("--json", args.json)
    logs = [BanditLog.load(f) for f in args.log]
    log = BanditLog.cat(logs)  # the pooled rounds; each log's targets start fresh (one run each)
    if len(log) < 2:
        raise InputValidationError(f"expected a log of at least 2 rounds, got {len(log)}")
    spec_names(args.policy)
    targets = []
    for spec in args.policy:
        try:
            policy = make_spec_policy(spec, num_arms=log.num_arms, context_dim=log.context_dim, seed=args.seed)
            check_policy_fits(log, policy, learn=not args.no_learn)
        except InputValidationError as exc:
            bare = " (the log has no contexts)" if log.context is None and "context_dim" in str(exc) else ""
            raise InputValidationError(f"policy {spec!r}: {exc}{bare}") from None
        targets.append((spec, policy))
    model = fit_reward_model(log, seed=args.seed) if {"dm", "dr"} & set(args.estimators) else None
    how = ("greedy" if args.greedy else "as it explores") + (", fixed" if args.no_learn else ", learning from the log")
    print(
        f"banditformer {__version__}: off-policy estimates of {len(targets)} target(s) ({how}) from {len(args.log)} "
        f"log(s): {len(log)} rounds, {log.num_arms} arms"
        + ("" if log.context is None else f", {log.context_dim}-dim contexts")
        + f"; the logging policy's mean reward {float(log.reward.mean()):.4f}\n"
    )
    head = f"{'target':<28}{'estimator':<11}{'value':>9}{'95% interval':>22}{'ESS':>10}"
    print(head + "\n" + "-" * len(head))
    doc: dict[str, Any] = {
        "logs": [str(f) for f in args.log], "rounds": len(log), "num_arms": log.num_arms,
        "context_dim": log.context_dim, "logged_mean_reward": float(log.reward.mean()), "greedy": args.greedy,
        "learn": not args.no_learn, "batch": args.batch, "seed": args.seed, "targets": [],
    }  # fmt: skip
    for spec, first in targets:
        parts = []
        for i, one in enumerate(logs):
            policy = first if i == 0 else make_spec_policy(spec, num_arms=log.num_arms, context_dim=log.context_dim,
                                                           seed=args.seed)  # fmt: skip
            with torch.no_grad():
                parts.append(target_probabilities(one, policy, batch=args.batch, learn=not args.no_learn,
                                                  explore=not args.greedy))  # fmt: skip
        target = torch.cat(parts)
        ess = effective_sample_size(log, target)
        estimates = estimate_all(log, target, model) if model is not None else {}
        if model is None:
            estimates = {name: ESTIMATORS[name](log, target) for name in args.estimators}
        row: dict[str, Any] = {"policy": spec, "effective_sample_size": ess, "estimates": {}}
        for name in args.estimators:
            est = estimates[name]
            row["estimates"][name] = {"value": est.value, "stderr": est.stderr, "low": est.low, "high": est.high}
            print(f"{spec:<28}{name:<11}{est.value:>9.4f}{f'[{est.low:.4f}, {est.high:.4f}]':>22}{ess:>10.1f}")
        doc["targets"].append(row)
    if out is not None:
        write_atomic(out, json.dumps(json_safe(doc), indent=1, allow_nan=False))
        print(f"\nestimates: {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="banditformer", description="Sample-adaptive transformers driven by contextual bandits.")
    parser.add_argument("--version", action="version", version=f"banditformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list every registered implementation and its plugin")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any plugin failed to load")
    p.set_defaults(func=_cmd_plugins)
    m = sub.add_parser("demo", help="train DHT and the full model on a task and compare them")
    m.add_argument("--task", default="digits", help="a registered task (default: %(default)s)")
    m.add_argument("--epochs", type=int, default=40, help="training epochs (default: %(default)s)")
    m.add_argument("--lam", type=float, default=0.1, help="DHT's FLOP penalty (default: %(default)s)")
    m.add_argument(
        "--budget",
        type=float,
        default=None,
        help="adapt lambda to this mean FLOP ratio in training, and calibrate DHT to it on the validation split "
        "for inference (default: none)",
    )
    m.add_argument(
        "--warmup", type=float, default=0.25, help="share of training on the full model first (default: %(default)s)"
    )
    m.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default: %(default)s)")
    m.add_argument("--width", type=int, default=64, help="d_model (default: %(default)s)")
    m.add_argument("--layers", type=int, default=4, help="blocks (default: %(default)s)")
    m.add_argument("--heads", type=int, default=4, help="heads per block (default: %(default)s)")
    m.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_cmd_demo)
    d = sub.add_parser("bandits", help="a quick table of bandit policies on a problem (bench bandits: full reports)")
    d.add_argument("--problem", default="bernoulli_easy", help="a registered problem (default: %(default)s)")
    d.add_argument("--policies", nargs="+", default=None, help="policy names (default: all that fit the problem)")
    d.add_argument("--horizon", type=int, default=2000, help="rounds per run (default: %(default)s)")
    d.add_argument("--seeds", type=int, default=20, help="independent runs (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="master seed (default: %(default)s)")
    d.set_defaults(func=_cmd_bandits)
    o = sub.add_parser(
        "ope",
        help="estimate target policies' values from a log of another policy (off-policy evaluation)",
        description="Estimate each target policy's mean reward per round from logged rounds (context, action, "
        "reward, propensity; `bench bandits --log-dir` writes them), with IPS, SNIPS, the direct method and doubly "
        "robust, each with its 95% interval. A target walks the log in order: each round's action probabilities "
        "come from its state before the round, and then it learns from the logged action and reward (progressive "
        "validation), unless --no-learn.",
    )
    o.add_argument(
        "--log", nargs="+", required=True, metavar="FILE",
        help="BanditLog files (e.g. one per seed); their rounds are pooled, each file walked by a fresh target",
    )  # fmt: skip
    o.add_argument(
        "--policy", action="append", required=True, metavar="SPEC",
        help="a target policy spec, `name` or `name:key=value,...`; repeat for several",
    )  # fmt: skip
    o.add_argument(
        "--estimators", nargs="+", default=["ips", "snips", "dm", "dr"], metavar="NAME",
        help="among ips, snips, dm, dr (default: all)",
    )  # fmt: skip
    o.add_argument("--greedy", action="store_true", help="evaluate each target's greedy choice (explore=False)")
    o.add_argument("--no-learn", action="store_true", help="the targets do not learn from the log (fixed policies)")
    o.add_argument(
        "--batch", type=int, default=1,
        help="rounds per target step; more are cheaper for Monte-Carlo probabilities (default: %(default)s)",
    )  # fmt: skip
    o.add_argument("--seed", type=int, default=0, help="the targets' seed and the reward model's folds (default: 0)")
    o.add_argument("--json", metavar="FILE", default=None, help="also write the estimates to FILE as JSON")
    o.set_defaults(func=_cmd_ope)
    bench = sub.add_parser("bench", help="the benchmark harness (results written to a folder)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    bb = bench_sub.add_parser(
        "bandits", help="policies x seeds on a bandit problem: regret table, JSON and CSV with regret curves"
    )
    bb.add_argument("--problem", default="bernoulli_easy", help="a registered problem (default: %(default)s)")
    bb.add_argument(
        "--policies",
        nargs="+",
        default=None,
        help="policy specs, `name` or `name:key=value,...` (e.g. sw_ucb:window=100,c=0.6; one policy may appear "
        "with several option sets) (default: every registered one that fits the problem)",
    )
    bb.add_argument("--horizon", type=int, default=2000, help="rounds per run (default: %(default)s)")
    bb.add_argument("--seeds", type=int, default=20, help="independent runs per policy (default: %(default)s)")
    bb.add_argument("--seed", type=int, default=0, help="master seed (default: %(default)s)")
    bb.add_argument(
        "--checkpoints", type=int, default=10,
        help="regret checkpoints, log-spaced, at most --horizon or 10 (default: %(default)s)",
    )  # fmt: skip
    where = bb.add_mutually_exclusive_group()
    where.add_argument(
        "--out", default="results", help="parent folder of <time>-bandits-<config hash>/ (default: %(default)s)"
    )
    where.add_argument(
        "--resume", metavar="FOLDER", default=None,
        help="run only the jobs missing from FOLDER, a results folder of an earlier run, with its recorded "
        "configuration (configuration flags given must match it)",
    )  # fmt: skip
    bb.add_argument(
        "--mabwiser", action="store_true", help="also run MABWiser's UCB1 and Thompson sampling as references"
    )
    bb.add_argument(
        "--workers", type=int, default=1,
        help="processes to spread policies and seed blocks over; the numbers do not change (default: %(default)s)",
    )  # fmt: skip
    bb.add_argument(
        "--seed-block", type=int, default=0,
        help="run seeds in blocks of this many, one job each, so --workers can split them; every seed has its "
        "own streams, so the numbers do not change (default: 0, one block)",
    )  # fmt: skip
    bb.add_argument(
        "--log-dir", metavar="DIR", default=None,
        help="also write every round of our policies (context, action, reward, propensity) to DIR, one BanditLog "
        "file per policy and seed with an index logs.json, for `banditformer ope` (one-arm problems; the numbers "
        "do not change)",
    )  # fmt: skip
    bb.add_argument("--log-x", action="store_true", help="a logarithmic round axis in regret.png")
    bb.add_argument("--no-plot", action="store_true", help="skip regret.png (which needs matplotlib)")
    bb.add_argument("--quiet", action="store_true", help="no progress bar")
    bb.add_argument(
        "--config", default=None, help="a TOML file of these options (names with _ for -); flags given override it"
    )
    bb.set_defaults(func=_cmd_bench_bandits)
    bm = bench_sub.add_parser(
        "model",
        help="controllers x lambdas x seeds on a task: accuracy, FLOP saving, time; Pareto front; JSON, CSV, PNGs",
        description="Train a fresh model per controller configuration and seed, with the same schedule, and "
        "compare test accuracy, inference FLOP saving and time per sample. Budgeted baselines (static_small, "
        "random, layerdrop) run at each --budgets value; controllers taking `lam` (dht, dht_integrated) at each "
        "--lams value and, with flop_budget, at each --dht-budgets value; controllers with an inference knob "
        "(the exit controllers) are calibrated after training to each --budgets value on the validation split.",
    )
    bm.add_argument("--task", default="digits", help="a registered task (default: %(default)s)")
    bm.add_argument("--task-kwargs", type=_json_object, default={}, help="the task's options as a JSON object")
    bm.add_argument(
        "--controllers", nargs="+", default=["static", "static_small", "random", "layerdrop", "dht"],
        help="registered controller names (default: %(default)s)",
    )  # fmt: skip
    bm.add_argument(
        "--lams",
        nargs="*",
        type=float,
        default=[0.05, 0.2],
        help="lam values; none: no lam sweep (default: %(default)s)",
    )
    bm.add_argument(
        "--budgets",
        nargs="*",
        type=float,
        default=[0.5, 0.25],
        help="baselines' FLOP budgets; none: no budgeted baseline (default: %(default)s)",
    )
    bm.add_argument(
        "--dht-budgets", nargs="*", type=float, default=[], help="budgets with lam adapted to them (default: none)"
    )
    bm.add_argument(
        "--seeds", type=int, default=5,
        help="runs per configuration, paired by seed in the report (default: %(default)s)",
    )  # fmt: skip
    bm.add_argument("--seed", type=int, default=0, help="first seed (default: %(default)s)")
    bm.add_argument("--epochs", type=int, default=15, help="training epochs (default: %(default)s)")
    bm.add_argument(
        "--objective", default="auto", choices=["auto", "last", "joint", "distill", "sandwich"],  # OBJECTIVES
        help="training objective; auto: joint for controllers that halt at exits, else last (default: %(default)s)",
    )  # fmt: skip
    bm.add_argument(
        "--eval-shapes", action="store_true",
        help="also score every trained network at every uniform shape (the decisions-versus-weights ablation)",
    )  # fmt: skip
    bm.add_argument(
        "--curve", action=argparse.BooleanOptionalAction, default=True,
        help="record each trained network's operating curve on validation and test (controllers with a knob) "
        "and report the area calibrated on validation at every budget (default: on)",
    )  # fmt: skip
    bm.add_argument(
        "--batch1-samples", type=int, default=64,
        help="time inference at batch 1 on this many test samples; 0: not (default: %(default)s)",
    )  # fmt: skip
    bm.add_argument("--batch-size", type=int, default=32, help="batch size (default: %(default)s)")
    bm.add_argument("--lr", type=float, default=3e-3, help="AdamW learning rate (default: %(default)s)")
    bm.add_argument("--width", type=int, default=64, help="d_model (default: %(default)s)")
    bm.add_argument("--layers", type=int, default=4, help="blocks (default: %(default)s)")
    bm.add_argument("--heads", type=int, default=4, help="heads per block (default: %(default)s)")
    bm.add_argument("--pooling", default="cls", choices=["cls", "mean"], help="(default: %(default)s)")
    bm.add_argument("--exit-heads", action="store_true", help="a norm and classifier per exit depth")
    bm.add_argument(
        "--warmup", type=float, default=0.0, help="share of steps on the full model first (default: %(default)s)"
    )
    bm.add_argument("--layerdrop", type=float, default=0.2, help="LayerDrop's drop rate (default: %(default)s)")
    bm.add_argument(
        "--controller-kwargs", type=_json_object, default={},
        help='extra options per controller as JSON, e.g. \'{"dht": {"head_reward": "importance"}}\'',
    )  # fmt: skip
    bm.add_argument("--threads", type=int, default=1, help="threads per run (default: %(default)s)")
    bm.add_argument("--workers", type=int, default=1, help="runs at once, in processes (default: %(default)s)")
    where = bm.add_mutually_exclusive_group()
    where.add_argument(
        "--out", default="results", help="parent folder of <time>-model-<config hash>/ (default: %(default)s)"
    )
    where.add_argument(
        "--resume", metavar="FOLDER", default=None,
        help="run only the runs missing from FOLDER, a results folder of an earlier run, with its recorded "
        "configuration (configuration flags given must match it)",
    )  # fmt: skip
    bm.add_argument("--no-plot", action="store_true", help="skip the plots (which need matplotlib)")
    bm.add_argument("--quiet", action="store_true", help="no progress bar")
    bm.add_argument(
        "--config", default=None, help="a TOML file of these options (names with _ for -); flags given override it"
    )
    bm.set_defaults(func=_cmd_bench_model)
    br = bench_sub.add_parser(
        "report", help="the report of a `bench model` results folder so far, complete or not (reads only)",
        description="Print the report of the runs a `bench model` results folder has recorded, while its run goes "
        "on or after it stopped: by default only the seeds whose every run has finished, so that every comparison "
        "pairs the same seeds. The folder is only read. Several folders make one report.",
    )  # fmt: skip
    br.add_argument(
        "folder", metavar="FOLDER", nargs="+",
        help="a `bench model` results folder (with run.json and jobs/); several on the same task, model and schedule "
        "make one report, paired by seed (a later folder's configurations that train differently are named by the "
        "difference: `entropy_exit [objective=sandwich]`)",
    )  # fmt: skip
    br.add_argument("--all-runs", action="store_true", help="every recorded run, also of seeds not finished")
    br.add_argument(
        "--out", metavar="DIR", default=None, help="also write results.json, runs.csv and the plots into DIR"
    )
    br.add_argument("--no-plot", action="store_true", help="with --out: skip the PNGs (which need matplotlib)")
    br.set_defaults(func=_cmd_bench_report)
    parser._bench_parsers = {"bandits": bb, "model": bm}  # type: ignore[attr-defined]
    parser._commands = {  # type: ignore[attr-defined]
        "plugins": p, "demo": m, "bandits": d, "ope": o, "bench bandits": bb, "bench model": bm, "bench report": br,
    }  # fmt: skip
    return parser


def load_toml_defaults(sub: argparse.ArgumentParser, path: str) -> dict:
    """Options from a TOML file for the subcommand ``sub``: every key must be one of its flags
    (``-`` written ``_``), with a value of the flag's type."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BanditformerError(f"expected a readable TOML file at {path!r}, got: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8; tomllib does not wrap the decoding error
        raise BanditformerError(
            f"expected a UTF-8 TOML file at {path!r}, got byte {exc.object[exc.start : exc.start + 1]!r} at "
            f"offset {exc.start}, which is not UTF-8 (save the file as UTF-8)"
        ) from None
    actions = {a.dest: a for a in sub._actions if a.dest not in ("help", "config", "func")}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        hints = [close_names(k, list(actions)) for k in unknown]
        raise BanditformerError(
            f"expected options among {sorted(actions)} in {path!r}, got unknown {unknown}{''.join(hints)}"
        )

    def fits(kind: Any, v: object) -> bool:
        if isinstance(v, bool):
            return kind is bool
        if kind is float:
            return isinstance(v, (int, float))
        return isinstance(v, kind)

    out = {}
    for key, value in values.items():
        action = actions[key]
        if action.nargs in ("+", "*"):
            kind = action.type or str
            ok = isinstance(value, list) and all(fits(kind, v) for v in value)
            value = [float(v) for v in value] if ok and kind is float else value
        elif action.const is True:  # store_true
            ok = isinstance(value, bool)
        elif action.type is _json_object:
            ok = isinstance(value, dict)
        else:
            kind = action.type or str
            ok = fits(kind, value)
            value = float(value) if ok and kind is float else value
        if not ok:
            raise BanditformerError(f"expected option {key!r} in {path!r} to be like {action.default!r}, got {value!r}")
        out[key] = value
    return out


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> tuple[argparse.Namespace, Any]:
    """``(args, the subcommand's parser)``; unknown flags are reported by the subcommand's parser,
    with its usage and the closest flag."""
    args, extra = parser.parse_known_args(argv)
    command = " ".join(w for w in (args.command, getattr(args, "bench", None)) if w)
    sub = parser._commands.get(command, parser)  # type: ignore[attr-defined]
    if extra:
        sub.error(f"unrecognized arguments: {' '.join(extra)}")
    return args, sub


def _preflight(args: argparse.Namespace, sub: argparse.ArgumentParser) -> None:
    """What can be checked before any work, beyond each option's own check: registered names
    (a usage error of the subcommand, with the closest name), optional packages the run will
    need, and (a warning) more workers than CPUs."""
    if getattr(args, "problem", None) is not None and args.problem not in list_problems():
        names = list_problems()
        sub.error(
            f"unknown problem {args.problem!r}; expected one of: {', '.join(names)}{close_names(args.problem, names)}"
        )
    if getattr(args, "task", None) is not None and args.task not in list_tasks():
        names = list_tasks()
        sub.error(f"unknown task {args.task!r}; expected one of: {', '.join(names)}{close_names(args.task, names)}")
    if hasattr(args, "no_plot") and not args.no_plot and getattr(args, "out", "") is not None:  # report: only --out
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise InputValidationError(
                f"expected matplotlib for the plots (pip install 'banditformer[bench]'), or --no-plot; got: {exc}"
            ) from None
    workers, threads = getattr(args, "workers", 1), getattr(args, "threads", 1)
    if isinstance(workers, int) and isinstance(threads, int) and workers * threads > cpu_count():
        what = f"--workers {workers}" + (f" x --threads {threads}" if threads > 1 else "")
        print(
            f"banditformer: warning: {what} is more than the {cpu_count()} CPU(s) this process may use; "
            "the runs will share them and take longer (the numbers do not change)",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """The ``banditformer`` command: the exit status (0 done, 1 a run or plugin failed, 2 bad
    input; usage errors exit 2 through argparse)."""
    parser = build_parser()
    args, sub = _parse(parser, argv)
    if getattr(args, "config", None) is not None:  # TOML values become defaults; given flags win
        try:
            sub.set_defaults(**load_toml_defaults(sub, args.config))
        except BanditformerError as exc:
            print(f"banditformer: error: {exc}", file=sys.stderr)
            return 2
        args, sub = _parse(parser, argv)
    if getattr(args, "resume", None) is not None:  # which options were given: they must match the recorded run
        args.given = _given_options(argv, args)
    try:
        _preflight(args, sub)
        status = int(args.func(args))
        sys.stdout.flush()  # here, so that a closed pipe is caught below and not at exit
        return status
    except BanditformerError as exc:
        print(f"banditformer: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `banditformer plugins | head`: the reader left; end quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit then finds nothing to write
        return 1


if __name__ == "__main__":
    sys.exit(main())
