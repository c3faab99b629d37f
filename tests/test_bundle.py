"""The VIOS bundle (deploy/vios), built and installed the way docs/vios.md tells an admin to, then used.

A VIOS has CPython 3.9 from the AIX Toolbox, no network to a package index, usually no compiler and maybe no
psutil. Here: the bundle is built from this tree (that needs PyPI), unpacked, and installed by its own
install.sh into a fresh Python 3.9 venv with pip's index off, inside a network namespace with no network when
``unshare`` allows one, run by dash (a strict POSIX sh, as AIX's ksh is no bash) when there is one. Two agents
then run from that venv on 127.0.0.1 and 127.0.0.2 and ``lpmbench pair`` from it too.

What is not emulated: AIX itself (the agents run on this Linux host), the Toolbox's Python build, the VIOS
firewall and the SRC. docs/vios.md, "What has run on a real VIOS", says the same.

:func:`bundle_venv_python` is the hook for later tests (e.g. an agent run with an AIX personality): the python
of a venv installed from the bundle, without psutil, built once per session.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lpmbench.metrics.collector import NO_PSUTIL_NOTE
from lpmbench.net import keys
from lpmbench.orchestrator.local import wait_ready

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BUILDER = REPO / "deploy" / "vios" / "build_bundle.py"
BUILD_TIMEOUT_S = 300  # two pip downloads and a wheel build against PyPI
INSTALL_TIMEOUT_S = 180  # psutil's C build included
PSUTIL_CPU_NOTE = "psutil is not installed: CPU figures unknown"


# -- finding Python 3.9, building and installing the bundle ----------------------------------------------
def find_python39() -> str | None:
    """A CPython 3.9 interpreter: python3.9 on PATH or one of pyenv's (as .ci/run finds it)."""
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = [shutil.which("python3.9"), *sorted(glob.glob(f"{pyenv_root}/versions/3.9*/bin/python3.9"))]
    for candidate in filter(None, candidates):
        check = subprocess.run([candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 9)"],
                               capture_output=True)
        if check.returncode == 0:
            return candidate
    return None


def build_bundle(out_dir: Path) -> Path:
    """The one documented command; returns the unpacked bundle directory."""
    built = subprocess.run([sys.executable, str(BUILDER), "--out", str(out_dir)], capture_output=True, text=True,
                           timeout=BUILD_TIMEOUT_S, cwd=REPO)
    assert built.returncode == 0, f"the builder failed (it needs PyPI):\n{built.stderr[-3000:]}"
    tarball = Path(built.stdout.strip().splitlines()[-1])
    with tarfile.open(tarball) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # 3.9.17+, 3.11.4+
        archive.extractall(out_dir / "unpacked", **safe)
    (bundle,) = (out_dir / "unpacked").iterdir()
    return bundle


def offline(argv: list[str]) -> list[str]:
    """argv run in a network namespace of its own (no network at all) when this host allows it."""
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True) if shutil.which("unshare") else None
    return ["unshare", "--net", *argv] if probe is not None and probe.returncode == 0 else argv


def run_installer(bundle: Path, prefix: Path, python39: str, *options: str) -> subprocess.CompletedProcess:
    """install.sh as docs/vios.md runs it, with pip's index off and LPMBENCH_NO_EXTENSIONS=1."""
    shell = shutil.which("dash") or "sh"
    env = {**_clean_env(), "PIP_NO_INDEX": "1", "LPMBENCH_NO_EXTENSIONS": "1"}
    argv = offline([shell, str(bundle / "install.sh"), "--prefix", str(prefix), "--python", python39, *options])
    return subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env,
                          cwd=prefix.parent)


def _clean_env() -> dict[str, str]:
    """This process's environment without what would make the venv import this tree."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


_SESSION: dict[str, object] = {}


def _python39_or_skip() -> str:
    python39 = find_python39()
    if python39 is None:
        pytest.skip("no Python 3.9 here (python3.9 on PATH or pyenv's); the VIOS runs the AIX Toolbox's 3.9, "
                    "so the bundle is only tested with 3.9: install one (pyenv install 3.9)")
    return python39


def built_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked bundle, built once per session."""
    if "bundle" not in _SESSION:
        _SESSION["bundle"] = build_bundle(tmp_path_factory.mktemp("vios-bundle"))
    return _SESSION["bundle"]  # type: ignore[return-value]


def bundle_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """(venv prefix, install.sh's result) of the session's psutil-free install from the bundle."""
    if "install" not in _SESSION:
        python39 = _python39_or_skip()
        prefix = tmp_path_factory.mktemp("vios-install") / "lpmbench"
        _SESSION["install"] = (prefix, run_installer(built_bundle(tmp_path_factory), prefix, python39))
    return _SESSION["install"]  # type: ignore[return-value]


def bundle_venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hook for later tests: the python of a venv installed from the bundle offline, with no psutil.

    Built and installed once per session.
    """
    prefix, installed = bundle_install(tmp_path_factory)
    assert_installed(installed)
    return prefix / "bin" / "python"


def assert_installed(installed: subprocess.CompletedProcess) -> None:
    output = installed.stdout + installed.stderr
    assert installed.returncode == 0, f"install.sh failed:\n{output[-3000:]}"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_bundle(tmp_path_factory)


# -- agents from a venv ----------------------------------------------------------------------------------
def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def agents_from(venv: Path, workdir: Path, metrics_port: int) -> Iterator[tuple[list[str], list[Path], Path]]:
    """Agents of the venv on 127.0.0.1 (sender) and 127.0.0.2 (receiver, /metrics on metrics_port).

    Yields (their host:port, their log files, the key file). Run from workdir with no PYTHONPATH and no
    LPMBENCH_NO_EXTENSIONS, so the data plane they use is the one the bundle installed.
    """
    key_file = workdir / "key"
    keys.write_key(str(key_file), keys.generate_key())
    env = {k: v for k, v in _clean_env().items() if k != "LPMBENCH_NO_EXTENSIONS"}
    procs, logs, endpoints = [], [], []
    try:
        for address, metrics in (("127.0.0.1", 0), ("127.0.0.2", metrics_port)):
            log_path = workdir / f"agent-{address}.log"
            log = open(log_path, "w+")  # noqa: SIM115 - closed below; a pipe nobody reads would block the agent
            logs.append((log_path, log))
            proc = subprocess.Popen([str(venv / "bin" / "lpmbench"), "agent", "--bind", address, "--port", "0",
                                     "--key-file", str(key_file), "--data-ports", "0-0",
                                     "--metrics-port", str(metrics)],
                                    stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                                    env=env, cwd=workdir)
            procs.append(proc)
            endpoints.append(f"{address}:{wait_ready(proc, address, log)}")
        yield endpoints, [path for path, _ in logs], key_file
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=5)
        for _, log in logs:
            log.close()


def pair(venv: Path, endpoints: list[str], key_file: Path, workdir: Path) -> dict:
    """``lpmbench pair --json --duration 1`` from the venv; the result of a run that reached a verdict."""
    proc = subprocess.run([str(venv / "bin" / "lpmbench"), "pair", *endpoints, "--key-file", str(key_file),
                           "--json", "--duration", "1"], capture_output=True, text=True, timeout=60,
                          env=_clean_env(), cwd=workdir)
    assert proc.returncode in (0, 1), f"pair failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def assert_complete(result: dict) -> None:
    assert result["partial"] is False and result["error"] is None and result["agent_lost"] is False
    assert result["bytes"] > 0 and len(result["streams"]) == 4
    assert result["dataplane"] == "python", "the bundle's lpmbench is pure: the Python data plane moves the bytes"
    assert result["sender"]["dataplane"] == result["receiver"]["dataplane"] == "python"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def venv_python_version(venv: Path) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
                          capture_output=True, text=True, check=True).stdout.strip()


def imports_psutil(venv: Path) -> bool:
    probe = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", "import psutil"], capture_output=True)
    return probe.returncode == 0


# -- the tests ------------------------------------------------------------------------------------------
def load_builder():
    spec = importlib.util.spec_from_file_location("build_bundle", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("line", "extras", "on_aix"), [
    ("psutil>=5.9; sys_platform != 'aix'", (), False),
    ("uvloop>=0.17; sys_platform == 'linux' or sys_platform == 'darwin'", (), False),
    ("colorama; platform_system == 'Windows'", (), False),
    ("exceptiongroup>=1; python_version < '3.11'", (), True),  # what pip on a 3.11+ host leaves out
    ("typer>=0.12", (), True),
    ("pytest; extra == 'test'", (), False),
    ("pytest; extra == 'test'", ("test",), True),
])
def test_builder_judges_each_dependency_as_cpython_39_on_aix_would(line, extras, on_aix):
    builder = load_builder()
    requirement = builder.Requirement(line)
    assert builder.needed(requirement, builder.aix_environment("3.9"), frozenset(extras)) is on_aix


def test_bundle_holds_only_pure_wheels_each_pinned_by_its_hash(bundle: Path):
    wheels = sorted((bundle / "wheels").glob("*.whl"))
    names = {w.name.split("-")[0].lower() for w in wheels}
    assert {"lpmbench", "pip", "prometheus_client", "typer", "click", "rich"} <= names
    assert not names & {"psutil", "uvloop"}, "no C extension goes in as a wheel"
    assert [w.name for w in wheels if w.name.startswith("lpmbench-")] == ["lpmbench-0.1.0-py3-none-any.whl"]
    for wheel in wheels:
        assert wheel.name.endswith(("-py3-none-any.whl", "-py2.py3-none-any.whl")), wheel.name
        with zipfile.ZipFile(wheel) as archive:
            assert not [n for n in archive.namelist() if n.endswith((".so", ".pyd", ".sl", ".a"))], wheel.name
    pins = (bundle / "requirements.txt").read_text().splitlines()
    assert len(pins) == len(wheels) and all("==" in line and "--hash=sha256:" in line for line in pins)
    assert len(list((bundle / "psutil").glob("psutil-*.tar.gz"))) == 1, "psutil's source, for a VIOS with gcc"
    for name in ("install.sh", "mkssys-lpmbench.sh", "vios.md", "BUNDLE.txt"):
        assert (bundle / name).is_file(), name
    assert os.access(bundle / "install.sh", os.X_OK)


def test_install_is_offline_needs_no_compiler_and_no_psutil(tmp_path_factory):
    prefix, installed = bundle_install(tmp_path_factory)
    assert_installed(installed)
    assert "Successfully installed" in installed.stdout
    assert "Downloading" not in installed.stdout and "Building wheel" not in installed.stdout
    assert venv_python_version(prefix) == "(3, 9)"
    assert not imports_psutil(prefix), "this venv stands for a VIOS without psutil"
    assert not list(prefix.glob("lib/python3.9/site-packages/lpmbench/**/*.so")), "the installed lpmbench is pure"
    assert "data plane: python" in installed.stdout and "psutil: no" in installed.stdout


def test_agents_from_the_bundle_run_a_pair_without_psutil(tmp_path_factory, tmp_path):
    venv = bundle_venv_python(tmp_path_factory).parent.parent
    metrics_port = free_port("127.0.0.2")
    with agents_from(venv, tmp_path, metrics_port) as (endpoints, logs, key_file):
        result = pair(venv, endpoints, key_file, tmp_path)
        first, second = scrape(metrics_port), scrape(metrics_port)
    assert_complete(result)
    for side in ("sender", "receiver"):
        assert result[side]["cpu_percent"] is None, "no psutil: the CPU figure is unknown, not invented"
        assert PSUTIL_CPU_NOTE in (result[side].get("cpu_note") or ""), result[side]
    for samples in (first, second):
        assert samples[("lpmbench_build_info", (("dataplane", "python"), ("event_loop", "asyncio"),
                                                ("version", "0.1.0")))] == 1
        assert samples[("lpmbench_received_bytes_total", (("peer", "127.0.0.1"),))] == result["bytes"]
        assert not [name for name, _ in samples if name.startswith("lpmbench_nic_")], "no NIC facts without psutil"
    texts = [log.read_text() for log in logs]
    assert not [t for t in texts if "Traceback" in t], "\n".join(texts)[-3000:]
    assert texts[1].count(NO_PSUTIL_NOTE) == 1, "the agent serving /metrics says once why NIC metrics are missing"


def test_psutil_built_from_the_bundle_gives_cpu_figures(bundle: Path, tmp_path):
    """A VIOS with gcc: install.sh --build-psutil builds psutil from the bundled source, still offline."""
    python39 = _python39_or_skip()
    prefix = tmp_path / "lpmbench"
    installed = run_installer(bundle, prefix, python39, "--build-psutil")
    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-3000:]
    assert "psutil: yes" in installed.stdout and imports_psutil(prefix)
    with agents_from(prefix, tmp_path, free_port("127.0.0.2")) as (endpoints, logs, key_file):
        result = pair(prefix, endpoints, key_file, tmp_path)
    assert_complete(result)
    for side in ("sender", "receiver"):
        assert isinstance(result[side]["cpu_percent"], (int, float)), result[side]
        assert not result[side].get("cpu_note")
    assert not [log for log in logs if "Traceback" in log.read_text()]
