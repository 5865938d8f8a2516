"""The plugin manager: built-ins through the hooks, entry points one at a time, failures by name."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch

import banditformer
from banditformer import (
    DuplicateNameError,
    PluginError,
    PluginLoadError,
    PluginWarning,
    UnknownNameError,
    hookimpl,
)
from banditformer.bandits import UCB1
from banditformer.plugins import AUTOLOAD_ENV, PluginManager, set_plugin_manager
from banditformer.plugins.manager import builtin_entry_point


def make_dist(root: Path, dist: str, modules: dict[str, str], entry_points: dict[str, str]) -> None:
    """Write an installed distribution by hand: modules plus a dist-info with entry points."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"  # dist-info names use underscores
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[banditformer]\n{lines}\n")


GOOD = """
    import banditformer
    from banditformer.bandits import UCB1

    @banditformer.hookimpl
    def banditformer_add_policies():
        return {"good_ucb": UCB1}
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(AUTOLOAD_ENV, raising=False)
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("bfplug_")]:
        del sys.modules[mod]


def test_builtins_come_through_the_hooks() -> None:
    pm = PluginManager(autoload=False)
    assert pm.plugins == ["builtin"]
    assert pm.get("policy", "ucb1").plugin == "builtin"
    assert all(pm.names(kind) for kind in ("policy", "controller", "backend", "task", "problem"))


def test_builtins_are_the_installed_packages_own_entry_point(site: Path) -> None:
    # the package declares the entry point (pyproject.toml), so an install registers it like any
    # plugin's; the manager loads it first, or not at all, and never a second time from the group
    ep = builtin_entry_point()
    assert (ep.name, ep.value, ep.group) == ("builtin", "banditformer.builtin", "banditformer")
    assert ep.dist is not None and ep.dist.name == "banditformer"  # read from the installed metadata
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    pm = PluginManager(autoload=True)
    assert pm.plugins == ["builtin", "good"] and pm.failures == []
    bare = PluginManager(autoload=True, builtins=False)
    assert bare.plugins == ["good"] and "ucb1" not in bare.names("policy")


def test_entry_point_plugin_loads(site: Path) -> None:
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    pm = PluginManager()
    assert "good" in pm.plugins
    assert pm.get("policy", "good_ucb").plugin == "good"
    assert pm.failures == []


@pytest.mark.parametrize(
    ("source", "match", "hook"),
    [
        ("raise ImportError('no module named torch_nope')", "failed to import: ImportError", None),
        ("raise SystemExit(3)", "failed to import: SystemExit", None),
        (
            "import banditformer\n@banditformer.hookimpl\ndef banditformer_add_polices():\n    return {}\n",
            "unknown hook 'banditformer_add_polices'",
            "banditformer_add_polices",
        ),
        (
            "import banditformer\n@banditformer.hookimpl\ndef banditformer_on_metrics(bogus):\n    pass\n",
            "PluginValidationError",
            None,
        ),
    ],
    ids=["import-error", "system-exit", "misspelled-hook", "bad-signature"],
)
def test_a_broken_plugin_is_reported_by_name_and_the_rest_load(site: Path, source: str, match: str, hook) -> None:
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    make_dist(site, "bfplug-bad", {"bfplug_bad": source}, {"bad": "bfplug_bad"})
    with pytest.warns(PluginWarning, match="plugin 'bad'"):
        pm = PluginManager()
    assert "good_ucb" in pm.names("policy")  # the good plugin loaded regardless of order
    [failure] = pm.failures
    assert isinstance(failure, PluginLoadError)
    assert failure.plugin == "bad" and failure.entry_point == "bfplug_bad" and failure.hook == hook
    assert match in str(failure) and "entry point 'bfplug_bad'" in str(failure)


def _raise() -> None:
    raise RuntimeError("boom")


@pytest.mark.parametrize(
    ("result", "match"),
    [
        (lambda: [1, 2], "expected a mapping of name -> factory, got list"),
        (_raise, "raised RuntimeError: boom"),
        (lambda: {"x": 42}, "expected a non-empty str name and a callable factory"),
    ],
    ids=["list", "raises", "not-callable"],
)
def test_a_hook_returning_garbage_is_reported_and_skipped(result, match: str) -> None:
    class Bad:
        @hookimpl
        def banditformer_add_policies(self):
            return result()

    pm = PluginManager(autoload=False)
    assert pm.register(Bad(), name="garbage")
    with pytest.warns(PluginWarning, match=match):
        names = pm.names("policy")
    assert "ucb1" in names
    assert pm.failures[0].plugin == "garbage" and pm.failures[0].hook == "banditformer_add_policies"


def test_duplicate_name_is_an_error_naming_both_plugins() -> None:
    class Clash:
        @hookimpl
        def banditformer_add_policies(self):
            return {"ucb1": UCB1, "other": UCB1}

    pm = PluginManager(autoload=False)
    pm.register(Clash(), name="clash")
    with pytest.warns(PluginWarning, match="'ucb1' is provided by both plugin 'builtin' and plugin 'clash'"):
        reg = pm.registry("policy")
    assert reg["ucb1"].plugin == "builtin" and reg["other"].plugin == "clash"
    [err] = pm.failures
    assert isinstance(err, DuplicateNameError) and (err.first, err.second, err.name) == ("builtin", "clash", "ucb1")


def test_env_var_disables_autoload(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    pm = PluginManager()
    assert pm.plugins == ["builtin"] and "good_ucb" not in pm.names("policy")


def test_registering_the_same_name_twice_is_reported() -> None:
    pm = PluginManager(autoload=False)

    class P:
        @hookimpl
        def banditformer_add_policies(self):
            return {}

    assert pm.register(P(), name="p")
    with pytest.warns(PluginWarning, match="plugin 'p'"):
        assert not pm.register(P(), name="p")


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown policy 'ucb2'; expected one of: .*ucb1"):
        banditformer.make_policy("ucb2", num_arms=2)
    with pytest.raises(UnknownNameError, match="unknown registry kind"):
        PluginManager(autoload=False).registry("widgets")


def test_factory_returning_the_wrong_type_is_a_plugin_error() -> None:
    class Liar:
        @hookimpl
        def banditformer_add_policies(self):
            return {"liar": lambda **kw: "not a policy"}

    pm = PluginManager(autoload=False)
    pm.register(Liar(), name="liar-plugin")
    set_plugin_manager(pm)
    try:
        with pytest.raises(PluginError, match=r"plugin 'liar-plugin'.*returned str, expected Policy or Combinatorial"):
            banditformer.make_policy("liar", num_arms=2)
    finally:
        set_plugin_manager(None)


def test_observer_hook_receives_metrics() -> None:
    seen = []

    class Logger:
        @hookimpl
        def banditformer_on_metrics(self, source, step, metrics):
            seen.append((source, step, metrics))

    pm = PluginManager(autoload=False)
    pm.register(Logger(), name="logger")
    pm.notify_metrics("test", 3, {"regret": 1.5})
    assert seen == [("test", 3, {"regret": 1.5})]


def test_a_plugin_policy_is_usable_like_a_builtin() -> None:
    class Plugin:
        @hookimpl
        def banditformer_add_policies(self):
            return {"my_ucb": lambda num_arms, **kw: UCB1(num_arms, c=0.5, **kw)}

    pm = PluginManager(autoload=False)
    pm.register(Plugin(), name="mine")
    set_plugin_manager(pm)
    try:
        p = banditformer.make_policy("my_ucb", num_arms=3, seed=0)
        p.update(p.select(n=3), torch.ones(3))
        assert float(p.c) == 0.5 and "my_ucb" in banditformer.list_policies()
    finally:
        set_plugin_manager(None)


def test_a_raising_observer_is_reported_and_the_others_still_run() -> None:
    seen = []

    class Broken:
        @hookimpl
        def banditformer_on_metrics(self, source, step, metrics):
            raise RuntimeError("logger down")

    class Fine:
        @hookimpl
        def banditformer_on_metrics(self, source, step, metrics):
            seen.append(step)

    pm = PluginManager(autoload=False)
    pm.register(Broken(), name="broken")
    pm.register(Fine(), name="fine")
    with pytest.warns(PluginWarning, match="plugin 'broken', hook 'banditformer_on_metrics': raised RuntimeError"):
        pm.notify_metrics("test", 1, {})
    assert seen == [1]


def test_a_callers_bad_argument_is_an_input_error_not_a_plugin_error() -> None:
    with pytest.raises(banditformer.InputValidationError, match=r"expected arguments matching policy 'ucb1'.*foo=1"):
        banditformer.make_policy("ucb1", num_arms=3, foo=1)
    with pytest.raises(banditformer.InputValidationError, match="problem 'bernoulli_easy'"):
        banditformer.make_problem("bernoulli_easy", foo=1)


def test_each_failure_is_reported_once_even_when_registries_are_rebuilt() -> None:
    class Bad:
        @hookimpl
        def banditformer_add_policies(self):
            return [1]

    pm = PluginManager(autoload=False)
    pm.register(Bad(), name="bad")
    with pytest.warns(PluginWarning):
        pm.names("policy")
    pm.register(type("Empty", (), {})(), name="empty")  # clears the cached registries
    pm.names("policy")
    assert len(pm.failures) == 1


# ------------------------------------------------------------- issue 12: classes 6 and 8
@pytest.mark.parametrize(
    ("value", "loads"),
    [("0", True), ("false", True), ("No", True), ("off", True), ("", True), (" 0 ", True),
     ("1", False), ("true", False), ("YES", False), ("on", False)],
)  # fmt: skip
def test_the_autoload_variable_reads_like_a_switch(site: Path, monkeypatch: pytest.MonkeyPatch, value, loads) -> None:
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    monkeypatch.setenv(AUTOLOAD_ENV, value)
    assert ("good_ucb" in PluginManager().names("policy")) is loads, value


def test_an_unknown_autoload_value_warns_with_the_values_it_takes(site: Path, monkeypatch) -> None:
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    monkeypatch.setenv(AUTOLOAD_ENV, "maybe")
    with pytest.warns(PluginWarning, match=rf"expected {AUTOLOAD_ENV} to be one of 1, true, yes, on .*got 'maybe'"):
        pm = PluginManager()
    assert pm.plugins == ["builtin"]


TURNS_CHECKS_OFF = """
    import banditformer
    from banditformer.bandits import UCB1

    banditformer.set_value_checks(False)  # for everyone: what a plugin may not do

    @banditformer.hookimpl
    def banditformer_add_policies():
        return {"sneaky_ucb": UCB1}
"""

LEAVES_A_BLOCK_OPEN = """
    import banditformer

    _block = banditformer.value_checks(False)  # kept: a collected block would close itself
    _block.__enter__()
"""


@pytest.mark.parametrize(
    ("source", "says"),
    [
        (TURNS_CHECKS_OFF, "turned value checks off process-wide"),
        (LEAVES_A_BLOCK_OPEN, "turned value checks off for the rest of this thread"),
    ],
    ids=["set_value_checks", "open-block"],
)
def test_a_plugin_that_turns_value_checks_off_at_import_is_named_and_checks_stay_on(site: Path, source, says) -> None:
    from banditformer.core.validation import value_checks_enabled

    make_dist(site, "bfplug-sneaky", {"bfplug_sneaky": source}, {"sneaky": "bfplug_sneaky"})
    assert value_checks_enabled()
    with pytest.warns(PluginWarning, match=rf"plugin 'sneaky' \(entry point 'bfplug_sneaky'\): {says}") as caught:
        pm = PluginManager()
    assert "while it was imported; restored them (on as before)" in str(caught[0].message)
    assert value_checks_enabled() and "sneaky" in pm.plugins and pm.failures == []
    p = banditformer.make_policy("ucb1", num_arms=2)
    with pytest.raises(banditformer.InputValidationError, match="finite"):
        p.update(torch.tensor([0]), torch.tensor([float("nan")]))  # NaN rewards are still refused


def test_a_plugin_that_changes_value_checks_in_register_or_a_hook_is_named() -> None:
    from banditformer.core.validation import set_value_checks, value_checks_enabled

    class Sneaky:
        @hookimpl
        def banditformer_add_policies(self):
            set_value_checks(False)
            return {}

    class AtRegister:
        def __dir__(self):  # pluggy lists a plugin's members while it registers it
            set_value_checks(False)
            return []

    pm = PluginManager(autoload=False)
    pm.register(Sneaky(), name="sneaky")
    with pytest.warns(PluginWarning, match=r"plugin 'sneaky': turned value checks off .* its hook 'banditformer_add_p"):
        pm.names("policy")
    assert value_checks_enabled()
    with pytest.warns(PluginWarning, match="plugin 'at_register': turned value checks off .* it was registered"):
        pm.register(AtRegister(), name="at_register")
    assert value_checks_enabled()


def test_a_user_who_turns_checks_off_keeps_that_setting_through_plugin_loading() -> None:
    import warnings

    from banditformer.core.validation import set_value_checks, value_checks, value_checks_enabled

    set_value_checks(False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to report: no plugin changed anything
            PluginManager(autoload=False).names("policy")
        assert not value_checks_enabled()
    finally:
        set_value_checks(True)
    with value_checks(False):
        PluginManager(autoload=False)
        assert not value_checks_enabled()
    assert value_checks_enabled()


SLOW = """
    import time
    time.sleep(0.6)
    import banditformer
    from banditformer.bandits import UCB1

    @banditformer.hookimpl
    def banditformer_add_policies():
        return {"slow_ucb": UCB1}
"""


def test_a_slow_plugin_import_names_itself_while_the_user_waits(site: Path, monkeypatch, capsys) -> None:
    from banditformer.plugins import manager

    make_dist(site, "bfplug-slow", {"bfplug_slow": SLOW}, {"slow": "bfplug_slow"})
    make_dist(site, "bfplug-good", {"bfplug_good": GOOD}, {"good": "bfplug_good"})
    monkeypatch.setattr(manager, "SLOW_IMPORT_SECONDS", 0.2)
    pm = PluginManager()
    err = capsys.readouterr().err
    assert "banditformer: loading plugin 'slow' (entry point 'bfplug_slow') ..." in err
    assert "plugin 'slow' took" in err and "'good'" not in err  # the fast one says nothing
    assert {"slow_ucb", "good_ucb"} <= set(pm.names("policy"))
