"""Policy specs: a registered policy name with options, as the bandit benchmark takes them.

A spec is ``name`` or ``name:key=value,key=value`` (``sw_ucb:window=100,c=0.6``). Values are
read as ``true``/``false``, ``none``, an int, a float, or else a string. The spec string is the
run's label, so several option sets of one policy run side by side, each labelled.

Examples:
    >>> parse_policy("ucb1")
    ('ucb1', {})
    >>> parse_policy("sw_ucb:window=100,c=0.6")
    ('sw_ucb', {'window': 100, 'c': 0.6})
"""

from __future__ import annotations

from typing import Any

from banditformer.core.errors import InputValidationError
from banditformer.core.policy import PolicyBase
from banditformer.plugins import check_registered, make_policy

__all__ = ["RESERVED", "make_spec_policy", "parse_policy", "spec_names"]

#: Options the benchmark sets itself: a spec may not set them.
RESERVED = ("num_arms", "context_dim", "num_groups", "seed")


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_policy(spec: object) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` of a spec (see the module docstring).

    Raises:
        InputValidationError: not a string, an empty name, an option without ``=``, a repeated
            option, or one of :data:`RESERVED`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputValidationError(f"expected a policy spec `name` or `name:key=value,...`, got {spec!r}")
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise InputValidationError(f"expected a policy name before ':' in {spec!r}, got none")
    options: dict[str, Any] = {}
    if rest.strip():
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise InputValidationError(f"expected `key=value` options in policy spec {spec!r}, got {part!r}")
            if key in options:
                raise InputValidationError(f"expected each option once in policy spec {spec!r}, got {key!r} twice")
            if key in RESERVED:
                raise InputValidationError(
                    f"expected options other than {', '.join(RESERVED)} (the benchmark sets them) in policy spec "
                    f"{spec!r}, got {key!r}"
                )
            options[key] = _value(value.strip())
    elif rest or spec.endswith(":"):
        raise InputValidationError(f"expected options after ':' in policy spec {spec!r}, got none")
    return name, options


def spec_names(specs: list[str]) -> list[str]:
    """Check a list of specs: each parses, names a registered policy, and appears once; returns
    the registered names, in order."""
    names = [parse_policy(s)[0] for s in specs]
    check_registered("policy", names)
    repeated = sorted({s for s in specs if specs.count(s) > 1})
    if repeated:
        raise InputValidationError(f"expected each policy spec once, got {repeated} more than once")
    return names


def make_spec_policy(spec: str, **kwargs: Any) -> PolicyBase:
    """``make_policy(name, **options, **kwargs)`` for a spec (the options checked against the
    policy's signature by the registry)."""
    name, options = parse_policy(spec)
    return make_policy(name, **options, **kwargs)
