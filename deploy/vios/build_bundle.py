#!/usr/bin/env python3
"""Build the lpmbench bundle for a VIOS: everything the agent needs, installable with no network and no compiler.

Run it from the repository on a host that reaches PyPI (any OS; Python 3.9 or later):

    python3 deploy/vios/build_bundle.py            # writes dist/lpmbench-vios-<version>.tar.gz

The tar.gz holds one directory, lpmbench-vios-<version>/, with

    install.sh              the installer (POSIX sh): a venv, then pip with no index and no compiler
    requirements.txt        every wheel below, pinned with its sha256 (the installer runs pip --require-hashes)
    wheels/                 lpmbench as a pure wheel (py3-none-any, the Python data plane), its dependencies as
                            resolved for CPython 3.9 on AIX (all pure Python), and pip itself
    psutil/                 psutil's source and the setuptools wheel that builds it, for a VIOS with gcc
    mkssys-lpmbench.sh      deploy/aix/mkssys-lpmbench.sh: the agent as an SRC subsystem
    vios.md                 docs/vios.md: the steps on the VIOS
    BUNDLE.txt              what is in it, from which commit, for which Python

Why wheels and not a zipapp: docs/vios.md, "Why a wheelhouse".

pip evaluates the environment markers of dependencies against the interpreter that runs it, not the target,
so the builder does not trust pip's resolution: it evaluates every Requires-Dist as CPython 3.9 on AIX would,
fetches what is missing, drops what AIX does not need, and fails if the set is not closed or not pure.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name, parse_wheel_filename
    from packaging.version import Version
except ImportError:  # every host that runs pip has packaging, vendored inside pip
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
    from pip._vendor.packaging.version import Version

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Any AIX tag will do: only py3-none-any wheels are taken (CPython's _aix_support: aix-{V}{R}{TL}-{build}-{bits}).
AIX_PLATFORM = "aix_7205_2147_64"
# PyPI has no AIX wheel of psutil; its source goes in for a VIOS with gcc. 7.1.0 misses a header on AIX
# (giampaolo/psutil#2639).
PSUTIL_SOURCE = "psutil>=5.9,!=7.1.0"
COMPILED_SUFFIXES = (".so", ".pyd", ".sl", ".a", ".dll", ".dylib")
# Left out of the copy the lpmbench wheel is built from: build/ and *.egg-info keep files a build no longer
# makes (setuptools never prunes build/lib), and an in-place C build must not come along.
NOT_SOURCE_AT_TOP = {".git", "build", "dist", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv", "venv", ".tox"}
NOT_SOURCE_ANYWHERE = shutil.ignore_patterns("*.egg-info", "__pycache__", "*.so", "*.pyd")


class BundleError(Exception):
    pass


def say(message: str) -> None:
    print(f"build_bundle: {message}", file=sys.stderr, flush=True)


def aix_environment(python_version: str) -> dict[str, str]:
    """Marker variables as CPython on AIX reports them (sys.platform is 'aix' since 3.8)."""
    return {
        "implementation_name": "cpython", "implementation_version": f"{python_version}.0",
        "os_name": "posix", "platform_python_implementation": "CPython",
        "platform_machine": "powerpc",  # AIX's uname -m is a machine id; no package writes a marker on that
        "platform_release": "3", "platform_system": "AIX", "platform_version": "7",
        "python_full_version": f"{python_version}.0", "python_version": python_version, "sys_platform": "aix",
    }


def run_pip(subcommand: str, *args: str, env: dict[str, str] | None = None) -> None:
    """pip in this interpreter, quiet: it still says what failed, not every file it looked at."""
    say(" ".join(["pip", subcommand, *args]))
    subprocess.run([sys.executable, "-m", "pip", subcommand, "--quiet", *args], check=True, env=env)


# -- lpmbench itself ---------------------------------------------------------------------------------------
def build_lpmbench_wheel(source: Path, workdir: Path) -> Path:
    """A pure wheel (LPMBENCH_NO_EXTENSIONS=1) built from a clean copy of the source tree."""
    copy = workdir / "source"

    def not_source(directory: str, names: list[str]) -> set[str]:
        top = {n for n in names if n in NOT_SOURCE_AT_TOP} if Path(directory) == source else set()
        return top | set(NOT_SOURCE_ANYWHERE(directory, names))

    shutil.copytree(source, copy, ignore=not_source)
    out = workdir / "lpmbench-wheel"
    run_pip("wheel", "--no-deps", "-w", str(out), str(copy), env={**os.environ, "LPMBENCH_NO_EXTENSIONS": "1"})
    wheels = list(out.glob("lpmbench-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"expected one lpmbench wheel, got {[w.name for w in wheels]}")
    check_pure(wheels[0])
    return wheels[0]


def check_pure(wheel: Path) -> None:
    """py3-none-any (or py2.py3) and no compiled file inside: anything else cannot run on AIX from here."""
    _, _, _, tags = parse_wheel_filename(wheel.name)
    if any(tag.abi != "none" or tag.platform != "any" for tag in tags):
        raise BundleError(f"{wheel.name} is not a pure wheel ({', '.join(map(str, tags))}); "
                          f"AIX needs py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        compiled = [name for name in archive.namelist() if name.endswith(COMPILED_SUFFIXES)]
    if compiled:
        raise BundleError(f"{wheel.name} holds compiled code: {compiled}")


# -- dependencies, resolved for AIX ----------------------------------------------------------------------
def wheel_metadata(wheel: Path) -> tuple[str, Version, list[Requirement]]:
    """(canonical name, version, Requires-Dist) of a wheel."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    requires = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    return canonicalize_name(metadata["Name"]), Version(metadata["Version"]), requires


def needed(requirement: Requirement, environment: dict[str, str], extras: frozenset[str]) -> bool:
    """Whether a Requires-Dist line applies on the target, for a dependency asked for with these extras."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in (extras or {""}))


def close_over(roots: list[Requirement], wheels: dict[str, Path],
               environment: dict[str, str]) -> tuple[set[str], list[Requirement]]:
    """(names of the wheels the roots need on the target, requirements no wheel here satisfies)."""
    kept: set[str] = set()
    missing: list[Requirement] = []
    todo = [(r, frozenset(r.extras)) for r in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        wheel = wheels.get(name)
        if wheel is None:
            missing.append(requirement)
            continue
        _, version, requires = wheel_metadata(wheel)
        if not requirement.specifier.contains(version, prereleases=True):
            raise BundleError(f"{wheel.name} does not satisfy {requirement}; the resolution for this host "
                              f"differs from the one for AIX: pin it and build again")
        kept.add(name)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        todo.extend((r, frozenset(r.extras)) for r in requires if needed(r, environment, extras))
    return kept, missing


def by_name(directory: Path) -> dict[str, Path]:
    wheels: dict[str, Path] = {}
    for wheel in sorted(directory.glob("*.whl")):
        name = canonicalize_name(parse_wheel_filename(wheel.name)[0])
        if name in wheels:
            raise BundleError(f"two versions of {name}: {wheels[name].name} and {wheel.name}")
        wheels[name] = wheel
    return wheels


def download_for_aix(requirements: list[str], into: Path, python_version: str) -> None:
    abi = "cp" + python_version.replace(".", "")
    run_pip("download", "--only-binary=:all:", "--platform", AIX_PLATFORM, "--python-version", python_version,
            "--implementation", "cp", "--abi", abi, "--disable-pip-version-check", "-d", str(into), *requirements)


def resolve_wheels(lpmbench_wheel: Path, into: Path, python_version: str) -> list[Path]:
    """lpmbench, pip and everything they need on AIX, as pure wheels in ``into``; returns them."""
    shutil.copy2(lpmbench_wheel, into)
    environment = aix_environment(python_version)
    _, _, requires = wheel_metadata(lpmbench_wheel)
    roots = [Requirement(f"lpmbench=={wheel_metadata(lpmbench_wheel)[1]}"), Requirement("pip")]
    first = [str(r) for r in requires if needed(r, environment, frozenset())]
    download_for_aix([*first, "pip"], into, python_version)
    for _ in range(5):  # each round fetches what markers evaluated for this host hid
        kept, missing = close_over(roots, by_name(into), environment)
        if not missing:
            break
        download_for_aix(sorted({str(r) for r in missing}), into, python_version)
    else:
        raise BundleError(f"no pure wheel for CPython {python_version} on AIX satisfies: "
                          f"{', '.join(sorted(map(str, missing)))}")
    for name, wheel in by_name(into).items():
        if name not in kept:  # fetched only because a marker held on this host
            say(f"dropping {wheel.name}: AIX does not need it")
            wheel.unlink()
    wheels = sorted(by_name(into).values())
    for wheel in wheels:
        check_pure(wheel)
    return wheels


# -- psutil's source, for a VIOS with a compiler ---------------------------------------------------------
def fetch_psutil_source(into: Path, python_version: str) -> list[Path]:
    """psutil's sdist and the setuptools wheel its isolated build needs (pip installs it from here)."""
    run_pip("download", "--no-deps", "--no-binary=:all:", "--disable-pip-version-check", "-d", str(into),
            PSUTIL_SOURCE)
    download_for_aix(["setuptools>=43"], into, python_version)
    return sorted(into.iterdir())


# -- the bundle ------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pinned(files: list[Path], only: str | None = None) -> str:
    """requirements.txt lines, name==version --hash=sha256:..., for wheels and sdists."""
    lines = []
    for path in files:
        if path.suffix == ".whl":
            name, version, _, _ = parse_wheel_filename(path.name)
        else:
            match = re.fullmatch(r"(.+)-([^-]+)\.tar\.gz", path.name)
            if match is None:
                raise BundleError(f"cannot tell the name and version of {path.name}")
            name, version = canonicalize_name(match.group(1)), Version(match.group(2))
        if only is None or name == only:
            lines.append(f"{name}=={version} --hash=sha256:{sha256(path)}")
    return "\n".join(lines) + "\n"


def source_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return out.stdout.strip()


def describe(version: str, python_version: str, wheels: list[Path], psutil_files: list[Path]) -> str:
    built = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "\n".join([
        f"lpmbench {version} bundle for VIOS / AIX, CPython {python_version} (AIX Toolbox)",
        f"built {built} from commit {source_commit()} with {sys.executable} ({sys.version.split()[0]})",
        "install: sh install.sh   (see vios.md)", "", "wheels/ (all pure Python, pip installs them offline):",
        *(f"  {w.name}" for w in wheels), "",
        "psutil/ (optional; sh install.sh --build-psutil builds it with gcc):",
        *(f"  {p.name}" for p in psutil_files), "",
    ])


def build(out_dir: Path, python_version: str) -> Path:
    with tempfile.TemporaryDirectory(prefix="lpmbench-bundle-") as tmp:
        workdir = Path(tmp)
        lpmbench_wheel = build_lpmbench_wheel(REPO, workdir)
        version = str(wheel_metadata(lpmbench_wheel)[1])
        top = workdir / f"lpmbench-vios-{version}"
        (top / "wheels").mkdir(parents=True)
        (top / "psutil").mkdir()
        wheels = resolve_wheels(lpmbench_wheel, top / "wheels", python_version)
        psutil_files = fetch_psutil_source(top / "psutil", python_version)
        (top / "requirements.txt").write_text(pinned(wheels))
        (top / "psutil" / "requirements.txt").write_text(pinned(psutil_files, only="psutil"))
        shutil.copy2(HERE / "install.sh", top / "install.sh")
        shutil.copy2(REPO / "deploy" / "aix" / "mkssys-lpmbench.sh", top / "mkssys-lpmbench.sh")
        shutil.copy2(REPO / "docs" / "vios.md", top / "vios.md")
        (top / "BUNDLE.txt").write_text(describe(version, python_version, wheels, psutil_files))
        out_dir.mkdir(parents=True, exist_ok=True)
        bundle = out_dir / f"{top.name}.tar.gz"
        with tarfile.open(bundle, "w:gz") as archive:
            archive.add(top, arcname=top.name, filter=_executable_scripts)
    return bundle


def _executable_scripts(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = "root"
    if member.isfile():
        member.mode = 0o755 if member.name.endswith(".sh") else 0o644
    return member


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the offline lpmbench bundle for VIOS (docs/vios.md).")
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="directory for the tar.gz (dist/)")
    parser.add_argument("--python-version", default="3.9",
                        help="the VIOS's Python, MAJOR.MINOR (3.9: the AIX Toolbox's python3)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"3\.\d+", args.python_version):
        parser.error("--python-version must look like 3.9")
    try:
        bundle = build(args.out.resolve(), args.python_version)
    except (BundleError, subprocess.CalledProcessError) as exc:
        say(f"FAILED: {exc}")
        return 1
    say(f"wrote {bundle}")
    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
