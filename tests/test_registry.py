"""The pluggy registry: discovery, attribution, validation and isolation of plugins."""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable, Iterator

import pytest

import samplerzoo as sz
from samplerzoo import hookspecs, plugins
from samplerzoo.samplers.ode import sample_euler


@pytest.fixture
def throwaway() -> Iterator[Callable[[object], None]]:
    """Register plugin objects for one test, and remove them afterwards."""
    names: list[str] = []

    def add(plugin: object) -> None:
        names.append(f"throwaway{len(names)}")
        plugins.register_plugin(plugin, names[-1])

    yield add
    for name in names:
        plugins.unregister_plugin(name)


class OneSampler:
    @sz.hookimpl
    def register_samplers(self, register: Callable[[sz.SamplerSpec], None]) -> None:
        register(sz.SamplerSpec("my_euler", sample_euler, order=1, stochastic=False, aliases=("MyEuler",)))


def test_every_hook_is_documented() -> None:
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert hooks and all(inspect.getdoc(f) for f in hooks)


def test_builtins_come_through_the_entry_point() -> None:
    info = plugins.registry().plugins["builtin"]
    assert info.distribution == "samplerzoo" and not info.errors
    assert {"euler", "heun", "dpm2", "euler_ancestral", "ddim", "ddpm"} <= set(info.samplers)
    assert {"karras", "exponential", "polyexponential", "vp", "linspace", "leading", "trailing"} <= set(info.schedules)
    assert all(sz.get_sampler(name).plugin == "samplerzoo" for name in info.samplers)


def test_aliases_resolve_case_insensitively() -> None:
    assert sz.get_sampler("dpm_2") is sz.get_sampler("KDPM2DiscreteScheduler") is sz.get_sampler("DPM2")
    assert sz.get_schedule("logsnr").name == "exponential"


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(sz.UnknownNameError, match=r"^unknown sampler 'dpm3'; did you mean dpm2.*known: .*ddim"):
        sz.get_sampler("dpm3")
    with pytest.raises(sz.UnknownNameError, match=r"^unknown schedule 'karas'; did you mean karras\b"):
        sz.get_schedule("karas")


def test_plugin_sampler_is_registered_and_attributed(throwaway: Callable[[object], None]) -> None:
    throwaway(OneSampler())
    assert sz.get_sampler("myeuler").plugin == "throwaway0"
    assert plugins.registry().plugins["throwaway0"].samplers == ["my_euler"]


def test_plugin_is_gone_after_unregistering() -> None:
    plugins.register_plugin(OneSampler(), "temporary")
    assert "my_euler" in sz.get_samplers()
    plugins.unregister_plugin("temporary")
    assert "my_euler" not in sz.get_samplers()


class Clashing:
    @sz.hookimpl
    def register_samplers(self, register: Callable[[sz.SamplerSpec], None]) -> None:
        register(sz.SamplerSpec("euler", sample_euler, order=1, stochastic=False))
        register(sz.SamplerSpec("fine_one", sample_euler, order=1, stochastic=False, aliases=("dpm_2",)))
        register(sz.SamplerSpec("kept", sample_euler, order=1, stochastic=False))


def test_clashing_names_are_skipped_and_reported(throwaway: Callable[[object], None]) -> None:
    throwaway(Clashing())
    assert sz.get_sampler("euler").plugin == "samplerzoo"
    assert "fine_one" not in sz.get_samplers() and "kept" in sz.get_samplers()
    errors = plugins.plugin_errors()["throwaway0"]
    assert errors == [
        "sampler 'euler' from 'throwaway0': name 'euler' is already taken by 'euler' from 'samplerzoo'",
        "sampler 'fine_one' from 'throwaway0': name 'dpm_2' is already taken by 'dpm2' from 'samplerzoo'",
    ]


class Raising:
    @sz.hookimpl
    def register_samplers(self, register: Callable[[sz.SamplerSpec], None]) -> None:
        register(sz.SamplerSpec("Bad Name", sample_euler, order=1, stochastic=False))


def test_malformed_spec_is_reported_and_the_rest_keeps_working(throwaway: Callable[[object], None]) -> None:
    throwaway(Raising())
    assert plugins.plugin_errors() == {
        "throwaway0": ["register_samplers: RegistrationError: sampler name 'Bad Name' must be lower-case letters, "
                       "digits, '_' and '-'"]}
    assert "euler" in sz.get_samplers()


@pytest.mark.parametrize(("fields", "message"), [
    ({"order": 0}, "need order >= 1"),
    ({"evals_per_step": 2, "final_step_evals": 3}, "1 <= final_step_evals <= evals_per_step"),
    ({"fn": None}, "fn is not callable"),
    ({"aliases": ("two words",)}, "blank or spaced alias"),
])
def test_spec_validation(fields: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "x", "fn": sample_euler, "order": 1, "stochastic": False}
    with pytest.raises(sz.SamplerzooError, match=message):
        sz.SamplerSpec(**{**base, **fields})  # type: ignore[arg-type]


def test_broken_entry_point_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint("broken", "samplerzoo_no_such_module", "samplerzoo")

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [*real(group=group), broken]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    try:
        registry = plugins.reload()
        assert "failed to load 'samplerzoo_no_such_module': ModuleNotFoundError" in registry.plugins["broken"].errors[0]
        assert "euler" in registry.samplers.specs
    finally:
        monkeypatch.undo()
        plugins.reload()


def test_only_plugins_env_restricts_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(plugins.ONLY_PLUGINS_ENV, "nothing_else")
    try:
        assert set(plugins.reload().plugins) == {"builtin"}
    finally:
        monkeypatch.undo()
        plugins.reload()
