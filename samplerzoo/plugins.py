"""The plugin manager: built-in and third-party plugins load through the entry-point group ``samplerzoo``.

Entry points are loaded lazily, once. A plugin that fails to import, raises in a hook or registers a
bad or clashing name is skipped and reported (:func:`plugin_errors`); everything else keeps working.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any

import pluggy

from . import hookspecs
from .errors import RegistrationError, SamplerzooError
from .guidance_rules import SPACES, GuidanceMethod
from .registry import Catalogue, CheckpointSpec, GuidanceSpec, SamplerSpec, ScheduleSpec

ENTRY_POINT_GROUP = hookspecs.PROJECT
ONLY_PLUGINS_ENV = "SAMPLERZOO_PLUGINS"
"""Comma-separated entry-point names: when set, only these plugins load (``builtin`` is always loaded)."""


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: its entry-point name, distribution, and what went wrong."""

    name: str
    distribution: str = ""
    version: str = ""
    samplers: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)
    guidance: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Registry:
    plugin_manager: pluggy.PluginManager
    samplers: Catalogue[SamplerSpec]
    schedules: Catalogue[ScheduleSpec]
    checkpoints: Catalogue[CheckpointSpec]
    guidance: Catalogue[GuidanceSpec]
    plugins: dict[str, PluginInfo]


def _builtin_first(ep: importlib.metadata.EntryPoint) -> bool:
    """Sort key: samplerzoo's own ``builtin`` entry point loads first, so its names always win a clash (entry
    points otherwise come in sys.path order, and a plugin earlier on the path would take ``euler``)."""
    return not (ep.name == "builtin" and ep.dist is not None and ep.dist.name == "samplerzoo")


def _wanted(name: str) -> bool:
    only = os.environ.get(ONLY_PLUGINS_ENV)
    return name == "builtin" or only is None or name in {p.strip() for p in only.split(",")}


@cache
def plugin_manager() -> tuple[pluggy.PluginManager, dict[str, PluginInfo]]:
    """The PluginManager with every ``samplerzoo`` entry point that imports, loaded once.

    Also returns what was found per entry point; import failures are recorded there, not raised.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    found: dict[str, PluginInfo] = {}
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=_builtin_first):
        if not _wanted(ep.name):
            continue
        dist = ep.dist
        info = PluginInfo(ep.name, dist.name if dist else "", dist.version if dist else "")
        if ep.name in found:
            first = found[ep.name]
            if (first.distribution, first.version) != (info.distribution, info.version):
                info.errors.append(f"entry point name {ep.name!r} is already taken by {first.distribution} "
                                   f"{first.version}; not loaded")
                found[f"{ep.name} ({info.distribution})"] = info
            continue  # the same distribution seen twice on sys.path is one plugin
        found[ep.name] = info
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:  # a broken plugin must not break the registry
            info.errors.append(f"failed to load {ep.value!r}: {type(exc).__name__}: {exc}")
    return pm, found


def _collect(pm: pluggy.PluginManager, hook_name: str, spec_type: type[Any], catalogue: Catalogue[Any],
             infos: dict[str, PluginInfo], listing: Callable[[PluginInfo], list[str]]) -> None:
    """Call one registration hook plugin by plugin, so each spec is attributed and each failure isolated."""
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        info = infos.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))

        def register(spec: Any, _info: PluginInfo = info) -> None:
            if not isinstance(spec, spec_type):  # one bad spec is skipped; the plugin's other specs still register
                _info.errors.append(f"{hook_name}: register() takes a {spec_type.__name__}, got {type(spec).__name__}")
                return
            try:
                catalogue.add(replace(spec, plugin=_info.distribution or _info.name))
            except RegistrationError as exc:
                _info.errors.append(str(exc))
                return
            listing(_info).append(spec.name)

        try:
            impl.function(register=register)
        except Exception as exc:
            info.errors.append(f"{hook_name}: {type(exc).__name__}: {exc}")


@cache
def registry() -> Registry:
    """The process-wide registry, built on first use from the plugin manager's current plugins."""
    pm, found = plugin_manager()
    infos = {name: replace(info, errors=list(info.errors), samplers=[], schedules=[], guidance=[],
                         checkpoints=[])
             for name, info in found.items()}
    samplers: Catalogue[SamplerSpec] = Catalogue("sampler")
    schedules: Catalogue[ScheduleSpec] = Catalogue("schedule")
    checkpoints: Catalogue[CheckpointSpec] = Catalogue("checkpoint")
    _collect(pm, "register_samplers", SamplerSpec, samplers, infos, lambda info: info.samplers)
    _collect(pm, "register_schedules", ScheduleSpec, schedules, infos, lambda info: info.schedules)
    _collect(pm, "register_checkpoints", CheckpointSpec, checkpoints, infos, lambda info: info.checkpoints)
    guidance: Catalogue[GuidanceSpec] = Catalogue("guidance")
    _collect(pm, "register_guidance", GuidanceSpec, guidance, infos, lambda info: info.guidance)
    return Registry(pm, samplers, schedules, checkpoints, guidance, infos)


def register_plugin(plugin: object, name: str) -> None:
    """Add a plugin object at run time (tests, notebooks); the registry is rebuilt on next use."""
    plugin_manager()[0].register(plugin, name=name)
    registry.cache_clear()


def unregister_plugin(name: str) -> None:
    plugin_manager()[0].unregister(name=name)
    registry.cache_clear()


def reload() -> Registry:
    """Reload entry points and rebuild the registry (after installing or removing a plugin package)."""
    plugin_manager.cache_clear()
    registry.cache_clear()
    return registry()


def get_samplers() -> Mapping[str, SamplerSpec]:
    return registry().samplers.as_dict()


def get_sampler(name: str) -> SamplerSpec:
    return registry().samplers.get(name)


def get_schedules() -> Mapping[str, ScheduleSpec]:
    return registry().schedules.as_dict()


def get_schedule(name: str) -> ScheduleSpec:
    """A registered schedule by name or alias; ``NAME:ARGUMENT`` binds the argument of a schedule that takes one
    (``ays:sdxl``, ``file:PATH``), so every command that accepts a schedule name accepts these too."""
    base, colon, argument = name.partition(":")
    spec = registry().schedules.get(base)
    return spec.with_argument(argument) if colon else spec


def get_guidances() -> Mapping[str, GuidanceSpec]:
    return registry().guidance.as_dict()


def get_guidance(name: str) -> GuidanceSpec:
    return registry().guidance.get(name)


GUIDANCE_COMMON_OPTIONS = ("space", "rescale")
"""Options every guidance rule takes: the space it acts in and Lin et al. 2024's rescale phi."""


def guidance_method(name: str = "cfg", options: Mapping[str, Any] | None = None) -> GuidanceMethod:
    """The registered rule ``name`` with its options checked and bound (``space`` and ``rescale`` taken by every
    rule); a bad name, option or value is one line, before any work."""
    spec = get_guidance(name)
    rest = dict(options or {})
    space, rescale = rest.pop("space", spec.space), rest.pop("rescale", 0.0)
    if space not in SPACES:
        raise SamplerzooError(f"guidance {spec.name!r}: option space={space!r} is not a space; accepted: "
                              f"{', '.join(SPACES)}")
    if isinstance(rescale, bool) or not isinstance(rescale, int | float) or not 0 <= rescale <= 1:
        raise SamplerzooError(f"guidance {spec.name!r}: option rescale={rescale!r} is not a number in [0, 1] "
                              "(Lin et al. 2024's phi; 0 is off)")
    try:
        spec.check_options(rest)
    except SamplerzooError as exc:
        raise SamplerzooError(f"{exc} (and, for every rule, {', '.join(GUIDANCE_COMMON_OPTIONS)})") from None
    return GuidanceMethod(spec.name, partial(spec.build, **rest), space, float(rescale))


def provenance(kind: str, name: str) -> dict[str, str]:
    """Which plugin registered the sampler, schedule, guidance rule or checkpoint ``name`` (``kind``), and its
    distribution's name and version: recorded with every results row."""
    field_name = {"sampler": "samplers", "schedule": "schedules", "checkpoint": "checkpoints",
                  "guidance": "guidance"}[kind]
    catalogue: Catalogue[Any] = getattr(registry(), field_name)
    canonical = catalogue.get(name.partition(":")[0] if kind == "schedule" else name).name
    info = next(info for info in registry().plugins.values() if canonical in getattr(info, field_name))
    return {"plugin": info.name, "distribution": info.distribution, "version": info.version}


def schedule_name(name: str) -> str:
    """A schedule request's canonical spelling: its registered name (an alias resolved), its ``:ARGUMENT`` kept
    (``align_your_steps:sdxl`` -> ``ays:sdxl``); the argument is checked as :func:`get_schedule` checks it."""
    _, colon, argument = name.partition(":")
    return get_schedule(name).name + colon + argument


def plugin_errors() -> dict[str, list[str]]:
    return {name: info.errors for name, info in registry().plugins.items() if info.errors}
