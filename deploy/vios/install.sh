#!/bin/sh
# Install the lpmbench agent on a VIOS (or any AIX) from this bundle: no network, no compiler.
# Run it as root: on a VIOS, log in as padmin and run oem_setup_env first. Steps: vios.md (docs/vios.md).
#
#   sh install.sh                          # a venv in /opt/lpmbench: lpmbench and its pure-Python dependencies
#   sh install.sh --build-psutil           # the same, then psutil built from the bundled source (gcc, headers)
#   sh install.sh --system-site-packages   # the venv also sees the system's packages: the AIX Toolbox's psutil
#   sh install.sh --remove                 # remove the venv (first: sh mkssys-lpmbench.sh --remove)
#
# Options: --prefix DIR (default /opt/lpmbench); --python PATH (default: the first Python 3.9 or later of
# python3.9, /opt/freeware/bin/python3.9, python3, /opt/freeware/bin/python3).
#
# Running it again replaces the venv (stop the agent first). POSIX sh: AIX's /bin/sh is ksh, bash may be absent.

set -eu

PREFIX=/opt/lpmbench
PYTHON=
ACTION=install
SYSTEM_SITE=   # --system-site-packages, or nothing: by default the venv holds the bundle's packages only
MARKER=.lpmbench-bundle   # written into the venv; --remove and reinstalls touch only a directory holding it

here=$(cd "$(dirname "$0")" && pwd)

die() {
    echo "install.sh: $*" >&2
    exit 1
}

say() {
    echo "install.sh: $*"
}

usage() {
    echo "usage: sh install.sh [--prefix DIR] [--python PATH] [--system-site-packages] [--build-psutil | --remove]" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || usage; PREFIX=$2; shift 2 ;;
        --python) [ $# -ge 2 ] || usage; PYTHON=$2; shift 2 ;;
        --build-psutil) ACTION=install-and-psutil; shift ;;
        --system-site-packages) SYSTEM_SITE=--system-site-packages; shift ;;
        --remove) ACTION=remove; shift ;;
        -h|--help) usage ;;
        *) echo "install.sh: unknown option $1" >&2; usage ;;
    esac
done
case "$PREFIX" in
    /*) ;;
    *) die "--prefix must be an absolute path, not $PREFIX" ;;
esac

# pip must take nothing from this host's pip settings (an index, find-links, constraints): only the bundle.
for variable in $(env | sed -n 's/^\(PIP_[A-Za-z0-9_]*\)=.*/\1/p'); do
    unset "$variable"
done
PIP_CONFIG_FILE=/dev/null
PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CONFIG_FILE PIP_DISABLE_PIP_VERSION_CHECK
# A hardened root umask (077) would leave the venv unreadable to the agent's own user.
umask 022

is_python39_or_later() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' >/dev/null 2>&1
}

find_python() {
    if [ -n "$PYTHON" ]; then
        is_python39_or_later "$PYTHON" || die "$PYTHON is not Python 3.9 or later"
        echo "$PYTHON"
        return
    fi
    for candidate in python3.9 /opt/freeware/bin/python3.9 python3 /opt/freeware/bin/python3; do
        if is_python39_or_later "$candidate"; then
            echo "$candidate"
            return
        fi
    done
    die "no Python 3.9 or later found; on AIX: dnf install python3 (AIX Toolbox), or pass --python PATH"
}

check_writable() {
    parent=$(dirname "$PREFIX")
    [ -d "$parent" ] || die "$parent does not exist"
    [ -w "$parent" ] || die "cannot write to $parent: run as root (on VIOS: oem_setup_env first)"
}

agent_running() {
    command -v lssrc >/dev/null 2>&1 && lssrc -s lpmbench 2>/dev/null | grep -q ' active'
}

remove_venv() {
    if [ ! -e "$PREFIX" ]; then
        return
    fi
    [ -f "$PREFIX/$MARKER" ] || die "$PREFIX exists but was not made by this installer; not touching it"
    ! agent_running || die "the lpmbench subsystem is running from $PREFIX: stopsrc -s lpmbench first"
    rm -rf "$PREFIX"
}

pip_wheel() {
    set -- "$here"/wheels/pip-*.whl
    [ $# -eq 1 ] && [ -f "$1" ] || die "the bundle must hold exactly one pip wheel in $here/wheels"
    echo "$1"
}

install_wheels() {
    python=$(find_python)
    say "Python: $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
    remove_venv
    # --without-pip: no ensurepip needed; pip runs from its wheel in the bundle, then lives in the venv.
    # shellcheck disable=SC2086 # empty, or one word
    "$python" -m venv --without-pip $SYSTEM_SITE "$PREFIX"
    : > "$PREFIX/$MARKER"
    # --no-index: no network. --only-binary: never a compiler. --no-deps: the set was resolved for AIX
    # when the bundle was built. --ignore-installed: with --system-site-packages, a Toolbox RPM of click or
    # rich neither satisfies nor blocks ours (the venv's own packages come first on sys.path).
    # --require-hashes: every file must match requirements.txt.
    "$PREFIX/bin/python" "$(pip_wheel)/pip" install --isolated --no-index --find-links "$here/wheels" \
        --no-deps --ignore-installed --only-binary=:all: --require-hashes --no-cache-dir \
        -r "$here/requirements.txt"
    echo "installed from $here" > "$PREFIX/$MARKER"
}

build_psutil() {
    say "building psutil from $(ls "$here"/psutil/psutil-*.tar.gz) (needs gcc and the Python headers)"
    "$PREFIX/bin/python" -m pip install --isolated --no-index --find-links "$here/psutil" --no-deps \
        --require-hashes --no-cache-dir -r "$here/psutil/requirements.txt" \
        || die "psutil did not build; the agent runs without it (CPU figures and NIC metrics unknown)." \
               "On AIX: dnf install gcc python3-devel, then run this again"
}

check_installed() {
    errors=$("$PREFIX/bin/lpmbench" --help 2>&1 >/dev/null) || {
        echo "$errors" >&2
        die "$PREFIX/bin/lpmbench does not start (above)"
    }
    # -I: the venv's lpmbench, not one in the current directory or on PYTHONPATH.
    "$PREFIX/bin/python" -I - <<'EOF'
import importlib.util
import logging
logging.disable(logging.WARNING)  # the data plane's fallback warning: printed below as the reason
import lpmbench
from lpmbench import dataplane
psutil = "yes" if importlib.util.find_spec("psutil") else (
    "no: CPU figures and NIC metrics will be unknown (see vios.md: --build-psutil, or the Toolbox's psutil)")
reason = f" ({dataplane.fallback_reason})" if dataplane.fallback_reason else ""
print(f"install.sh: lpmbench {lpmbench.__version__}; data plane: {dataplane.IMPLEMENTATION}{reason}; psutil: {psutil}")
EOF
}

next_steps() {
    cat <<EOF
install.sh: done. Next (vios.md has the details):
  mkuser login=false rlogin=false lpmbench                       # the agent's own user
  mkdir -p /etc/lpmbench && chown lpmbench /etc/lpmbench && chmod 700 /etc/lpmbench
  $PREFIX/bin/lpmbench keygen --out /etc/lpmbench/key               # or copy the key the other agents use
  chown lpmbench /etc/lpmbench/key && chmod 600 /etc/lpmbench/key
  LPMBENCH=$PREFIX/bin/lpmbench sh $here/mkssys-lpmbench.sh && startsrc -s lpmbench
EOF
}

case "$ACTION" in
    remove)
        check_writable
        remove_venv
        say "removed $PREFIX"
        ;;
    install|install-and-psutil)
        check_writable
        install_wheels
        if [ "$ACTION" = install-and-psutil ]; then
            build_psutil
        fi
        check_installed
        next_steps
        ;;
esac
