"""Scheduler configuration files choose the plugins."""

from __future__ import annotations

import pytest

from skiff.scheduler import config
from skiff.scheduler.framework import ExtensionPoint, Framework


def _doc(**profile: object) -> dict:
    return {
        "apiVersion": config.API_VERSION,
        "kind": "KubeSchedulerConfiguration",
        "profiles": [profile],
    }


def test_defaults_when_no_profiles() -> None:
    (p,) = config.parse({"apiVersion": config.API_VERSION, "kind": "KubeSchedulerConfiguration"})
    assert p.scheduler_name == "default-scheduler"
    Framework(p)


def test_disable_enable_weights_and_args() -> None:
    (p,) = config.parse(
        _doc(
            schedulerName="spread",
            plugins={
                "score": {
                    "disabled": [{"name": "NodeResourcesBalancedAllocation"}],
                    "enabled": [{"name": "NodeResourcesFit", "weight": 5}],
                }
            },
            pluginConfig=[
                {
                    "name": "NodeResourcesFit",
                    "args": {"scoringStrategy": {"type": "LeastAllocated"}},
                }
            ],
            percentageOfNodesToScore=50,
        )
    )
    assert p.scheduler_name == "spread"
    assert p.disabled[ExtensionPoint.SCORE] == {"NodeResourcesBalancedAllocation"}
    assert p.score_weights["NodeResourcesFit"] == 5
    assert p.percentage_of_nodes_to_score == 50
    fw = Framework(p)
    assert "NodeResourcesBalancedAllocation" not in {pl.name for pl in fw.score_plugins}


def test_multipoint_disable_all() -> None:
    (p,) = config.parse(
        _doc(
            plugins={
                "multiPoint": {
                    "disabled": [{"name": "*"}],
                    "enabled": [
                        {"name": "NodeResourcesFit"},
                        {"name": "DefaultBinder"},
                        {"name": "NodeName"},
                    ],
                }
            }
        )
    )
    assert p.plugins == ["NodeResourcesFit", "DefaultBinder", "NodeName"]
    Framework(p)


@pytest.mark.parametrize(
    "bad",
    [
        {"apiVersion": "v1", "kind": "KubeSchedulerConfiguration"},
        _doc(plugins={"filtre": {"enabled": [{"name": "NodePorts"}]}}),
        _doc(plugins={"score": {"enabled": [{"name": "NodePorts", "weight": -1}]}}),
        _doc(schedulerName="x", bogus=1),
        {**_doc(schedulerName="a"), "profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]},
    ],
)
def test_bad_configuration_is_refused(bad: dict) -> None:
    with pytest.raises(config.ConfigError):
        config.parse(bad)
