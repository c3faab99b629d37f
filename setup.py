"""Builds lpmbench's optional C data plane, ``lpmbench.dataplane._lpmbench``, from ``ext/``.

Project metadata lives in pyproject.toml; this file only adds the extension module.

The build is loud about what it produced:

* the C build, when the compiler and the Python headers are there;
* a pure-Python build when ``LPMBENCH_NO_EXTENSIONS=1`` is set at install time, or on platforms the
  C twin does not target (non-CPython interpreters, Windows); it lists no extension, so its wheel is
  ``py3-none-any`` and installs on any platform (the VIOS bundle, deploy/vios, relies on that);
* otherwise a failed compile fails the install, naming what is missing, because a silent fallback
  would quietly measure a slower data plane.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

NO_EXTENSIONS_VARIABLE = "LPMBENCH_NO_EXTENSIONS"
EXTENSION = Extension(
    "lpmbench.dataplane._lpmbench",
    sources=["ext/_lpmbench.c", "ext/loops.c"],
    depends=["ext/loops.h"],
)


def _say(message: str) -> None:
    """pip shows this with -v, or whenever the build fails."""
    print(f"lpmbench build: {message}", file=sys.stderr, flush=True)


def _pure_build_reason() -> str | None:
    if os.environ.get(NO_EXTENSIONS_VARIABLE, "") not in ("", "0"):
        return f"{NO_EXTENSIONS_VARIABLE} is set"
    if platform.python_implementation() != "CPython":
        return f"{platform.python_implementation()} uses the pure-Python data plane"
    if sys.platform.startswith(("win", "cygwin")):
        return f"the C data plane needs a POSIX socket API ({sys.platform} is not supported)"
    return None


def _missing_build_tools(compiler_command: list[str]) -> list[str]:
    missing = []
    if not compiler_command or shutil.which(compiler_command[0]) is None:
        name = compiler_command[0] if compiler_command else "cc"
        missing.append(f"a C compiler ({name!r} not found; e.g. apt-get install gcc)")
    include_dir = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include_dir, "Python.h")):
        missing.append(f"the Python headers (no Python.h in {include_dir}; e.g. apt-get install python3-dev)")
    return missing


def _failure(details: str) -> SystemExit:
    return SystemExit(
        f"lpmbench build: could not build the C data plane (lpmbench.dataplane._lpmbench): {details}\n"
        f"lpmbench build: install what is missing, or set {NO_EXTENSIONS_VARIABLE}=1 for a pure-Python build."
    )


class LoudBuildExt(build_ext):
    """build_ext that says which build it made and fails with a named cause instead of a traceback."""

    def run(self) -> None:
        reason = _pure_build_reason()
        if reason is not None:  # reached by an explicit `setup.py build_ext`: a pure build has no extension
            self.extensions = []
            _announce_pure_build(reason, self.build_lib, in_tree=self.inplace)
            return
        _say(f"building the C data plane with {_compiler_description()}")
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated error classes here
            raise self._explain(exc) from exc
        _say("C build: lpmbench.dataplane._lpmbench compiled; the data plane will be the C twin")

    def build_extension(self, ext: Extension) -> None:
        missing = _missing_build_tools(list(getattr(self.compiler, "compiler_so", None) or []))
        if missing:
            raise _failure("missing " + " and ".join(missing))
        if self.compiler.compiler_type == "unix" and _is_gcc_like(self.compiler.compiler_so):
            ext.extra_compile_args = ["-Wall", "-Wextra", *ext.extra_compile_args]
        super().build_extension(ext)

    def _explain(self, exc: Exception) -> SystemExit:
        if isinstance(exc, SystemExit):
            return exc
        return _failure(f"{type(exc).__name__}: {exc}")


def _remove_stale_builds(package_dir: str) -> None:
    """A pure build must not ship or leave an older C build (build/ is reused) that would be imported."""
    if not os.path.isdir(package_dir):
        return
    for name in sorted(os.listdir(package_dir)):
        if name.startswith("_lpmbench.") and name.endswith((".so", ".pyd", ".sl")):
            _say(f"removing the earlier C build {os.path.join(package_dir, name)} (pure build requested)")
            os.remove(os.path.join(package_dir, name))


def _is_gcc_like(compiler_command: list[str]) -> bool:
    name = os.path.basename(compiler_command[0]) if compiler_command else ""
    return any(tag in name for tag in ("gcc", "clang", "cc")) and "xlc" not in name


def _compiler_description() -> str:
    command = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return " ".join(shlex.quote(part) for part in command.split())


class LoudBuildPy(build_py):
    """Says so in a pure build, where build_ext does not run at all (there is no extension to build)."""

    def run(self) -> None:
        reason = _pure_build_reason()
        if reason is not None:
            _announce_pure_build(reason, self.build_lib, in_tree=bool(getattr(self, "editable_mode", False)))
        super().run()


def _announce_pure_build(reason: str, build_lib: str, in_tree: bool) -> None:
    _say(f"PURE-PYTHON build ({reason}); the data plane will be lpmbench.dataplane._python")
    _remove_stale_builds(os.path.join(build_lib, "lpmbench", "dataplane"))
    if in_tree:  # an editable or in-place install imports from the source tree
        _remove_stale_builds(os.path.join(os.path.dirname(os.path.abspath(__file__)), "lpmbench", "dataplane"))


def _extensions() -> list[Extension]:
    """None in a pure build: setuptools tags a wheel for this interpreter and platform as soon as the
    distribution lists an extension, even one build_ext then skips, and a pure wheel must be py3-none-any
    to install on AIX from a bundle built on Linux (deploy/vios)."""
    return [] if _pure_build_reason() is not None else [EXTENSION]


setup(ext_modules=_extensions(), cmdclass={"build_ext": LoudBuildExt, "build_py": LoudBuildPy})
