"""The ``banditformer`` command.

banditformer plugins            list every implementation and the plugin it came from
banditformer demo               the quick bandit comparison (the README's main job)
banditformer --version
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from banditformer import __version__
from banditformer.core.errors import BanditformerError
from banditformer.plugins import KINDS, get_plugin_manager, list_problems


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
    from banditformer.harness.quick import compare_policies, format_table

    results = compare_policies(args.problem, args.policies, args.horizon, args.seeds, args.seed)
    print(
        f"banditformer {__version__}: context-free bandit policies on problem {args.problem!r}, "
        f"{args.seeds} runs of {args.horizon} rounds (runs batched as policy groups)\n"
    )
    print(format_table(results))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="banditformer", description="Sample-adaptive transformers driven by contextual bandits."
    )
    parser.add_argument("--version", action="version", version=f"banditformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plugins", help="list every registered implementation and its plugin")
    p.add_argument("--strict", action="store_true", help="exit with status 1 if any plugin failed to load")
    p.set_defaults(func=_cmd_plugins)
    d = sub.add_parser("demo", help="compare the context-free bandit policies on a Bernoulli problem")
    d.add_argument("--problem", default="bernoulli_easy", help="a registered problem (default: %(default)s)")
    d.add_argument("--policies", nargs="+", default=None, help="policy names (default: every context-free one)")
    d.add_argument("--horizon", type=int, default=2000, help="rounds per run (default: %(default)s)")
    d.add_argument("--seeds", type=int, default=20, help="independent runs (default: %(default)s)")
    d.add_argument("--seed", type=int, default=0, help="master seed (default: %(default)s)")
    d.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "problem", None) is not None and args.problem not in list_problems():
        parser.error(f"unknown problem {args.problem!r}; expected one of: {', '.join(list_problems())}")
    try:
        return int(args.func(args))
    except BanditformerError as exc:
        print(f"banditformer: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
