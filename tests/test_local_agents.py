"""``pair --local`` starts its agents from the lpmbench the orchestrator imported, wherever the user stands."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import lpmbench
from lpmbench import dataplane
from lpmbench.net import eventloop
from lpmbench.orchestrator.local import local_agents
from lpmbench.orchestrator.pair import PairConfig, run_pair

DECOY_VERSION = "0.0.0+decoy"


def _decoy_checkout(where: Path) -> Path:
    """A source tree of lpmbench as a checkout has it before a build: no C extension, and a version of its own
    so that an agent running it gives itself away."""
    source = Path(lpmbench.__file__).parent
    decoy = where / "lpmbench"
    shutil.copytree(source, decoy, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    (decoy / "__init__.py").write_text(f'__version__ = "{DECOY_VERSION}"\n')
    return where


def test_local_agents_run_the_orchestrators_package_not_the_one_in_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(_decoy_checkout(tmp_path))
    with local_agents() as (a, b, key):
        result = eventloop.run(run_pair(PairConfig(sender=a, receiver=b, key=key, streams=1, duration=0.3,
                                                   interval=0.3)))
    assert result["partial"] is False, result["error"]
    for side in ("sender", "receiver"):
        assert result[side]["version"] == lpmbench.__version__ != DECOY_VERSION
        assert result[side]["dataplane"] == dataplane.IMPLEMENTATION
