"""Scheduler configuration files: ``KubeSchedulerConfiguration`` (kubescheduler.config.k8s.io/v1).

The subset that chooses plugins: ``profiles[].schedulerName``,
``profiles[].plugins.<point|multiPoint>.{enabled,disabled}`` (``name``, ``weight``;
``"*"`` disables all defaults), ``profiles[].pluginConfig[].{name,args}`` and
``percentageOfNodesToScore`` (top level or per profile). Unknown fields are errors,
so a typo does not silently fall back to defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .framework import ExtensionPoint, Profile

API_VERSION = "kubescheduler.config.k8s.io/v1"
_POINTS = {p.value: p for p in ExtensionPoint}
_TOP = {
    "apiVersion",
    "kind",
    "profiles",
    "percentageOfNodesToScore",
    "leaderElection",
    "clientConnection",
    "parallelism",
}
_PROFILE = {"schedulerName", "plugins", "pluginConfig", "percentageOfNodesToScore"}


class ConfigError(ValueError):
    """The configuration file is not valid."""


def load(path: str | Path) -> list[Profile]:
    """Profiles from a configuration file."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read scheduler configuration {path}: {e}") from e
    return parse(doc)


def parse(doc: Any) -> list[Profile]:
    if not isinstance(doc, dict):
        raise ConfigError("the scheduler configuration must be a mapping")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "KubeSchedulerConfiguration":
        raise ConfigError(f"expected apiVersion {API_VERSION} and kind KubeSchedulerConfiguration")
    _no_unknown(doc, _TOP, "")
    top_pct = doc.get("percentageOfNodesToScore")
    profiles = []
    for i, raw in enumerate(doc.get("profiles") or [{}]):
        where = f"profiles[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping")
        _no_unknown(raw, _PROFILE, where)
        profile = Profile(scheduler_name=raw.get("schedulerName") or "default-scheduler")
        pct = raw.get("percentageOfNodesToScore", top_pct)
        if pct is not None:
            if not isinstance(pct, int) or not 0 <= pct <= 100:
                raise ConfigError(f"{where}.percentageOfNodesToScore must be 0..100")
            profile.percentage_of_nodes_to_score = pct
        _apply_plugins(profile, raw.get("plugins") or {}, f"{where}.plugins")
        for j, pc in enumerate(raw.get("pluginConfig") or []):
            if not isinstance(pc, dict) or not pc.get("name"):
                raise ConfigError(f"{where}.pluginConfig[{j}] needs a name")
            profile.plugin_args[pc["name"]] = dict(pc.get("args") or {})
        profiles.append(profile)
    names = [p.scheduler_name for p in profiles]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate schedulerName in profiles: {names}")
    return profiles


def _apply_plugins(profile: Profile, plugins: dict[str, Any], where: str) -> None:
    for point_name, sets in plugins.items():
        if not isinstance(sets, dict):
            raise ConfigError(f"{where}.{point_name} must be a mapping")
        _no_unknown(sets, {"enabled", "disabled"}, f"{where}.{point_name}")
        enabled = [_plugin(e, f"{where}.{point_name}.enabled") for e in sets.get("enabled") or []]
        disabled = {
            _plugin(d, f"{where}.{point_name}.disabled")[0] for d in sets.get("disabled") or []
        }
        if point_name == "multiPoint":
            if "*" in disabled:
                profile.plugins = []
            else:
                profile.plugins = [p for p in profile.plugins if p not in disabled]
            for name, weight in enabled:
                if name not in profile.plugins:
                    profile.plugins.append(name)
                if weight is not None:
                    profile.score_weights[name] = weight
            continue
        point = _POINTS.get(point_name)
        if point is None:
            raise ConfigError(
                f"{where}: unknown extension point {point_name!r}; known: "
                f"{', '.join(['multiPoint', *_POINTS])}"
            )
        if disabled:
            profile.disabled[point] = disabled
        if enabled:
            profile.enabled[point] = [name for name, _ in enabled]
        for name, weight in enabled:
            if weight is not None:
                profile.score_weights[name] = weight


def _plugin(entry: Any, where: str) -> tuple[str, int | None]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(f"{where}: each plugin needs a name")
    _no_unknown(entry, {"name", "weight"}, where)
    weight = entry.get("weight")
    if weight is not None and (not isinstance(weight, int) or weight < 0):
        raise ConfigError(f"{where}: weight of {entry['name']} must be a non-negative integer")
    return entry["name"], weight


def _no_unknown(d: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"{where or 'configuration'}: unknown field(s) {sorted(unknown)}")
