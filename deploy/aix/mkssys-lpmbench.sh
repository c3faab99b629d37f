#!/bin/sh
# Register the lpmbench agent with the AIX System Resource Controller (SRC) and start it at boot.
# AIX and VIOS (on VIOS: log in as padmin, run `oem_setup_env` to get a root shell, then run this).
# See docs/service.md.
#
#   sh mkssys-lpmbench.sh            # define (or redefine) the subsystem and its inittab entry
#   sh mkssys-lpmbench.sh --remove   # stop it, remove the subsystem and the inittab entry
#
# Settings (environment): LPMBENCH (the lpmbench command), AGENT_USER, KEY_FILE, AGENT_ARGS, LOG_FILE.
# The agent runs in the foreground and is driven by signals (-S): stopsrc sends SIGTERM (-n 15: runs are
# aborted and report "aborted" to their orchestrators), stopsrc -f sends SIGKILL (-f 9), and the SRC
# restarts it if it dies (-R). SIGHUP re-reads the key file (refresh -s does not work for a signal
# subsystem; see docs/service.md).

set -eu

SUBSYSTEM=lpmbench
LPMBENCH=${LPMBENCH:-/usr/bin/lpmbench}
AGENT_USER=${AGENT_USER:-lpmbench}
KEY_FILE=${KEY_FILE:-/etc/lpmbench/key}
AGENT_ARGS=${AGENT_ARGS:-"agent --key-file $KEY_FILE"}
LOG_FILE=${LOG_FILE:-/var/log/lpmbench-agent.log}
INITTAB_ENTRY="lpmbench:2:once:/usr/bin/startsrc -s $SUBSYSTEM >/dev/console 2>&1"

die() {
    echo "mkssys-lpmbench: $*" >&2
    exit 1
}

remove() {
    if lssrc -s "$SUBSYSTEM" >/dev/null 2>&1; then
        stopsrc -s "$SUBSYSTEM" >/dev/null 2>&1 || true
        rmssys -s "$SUBSYSTEM"
    fi
    if lsitab "$SUBSYSTEM" >/dev/null 2>&1; then
        rmitab "$SUBSYSTEM"
    fi
    echo "lpmbench subsystem and inittab entry removed"
}

check() {
    [ "$(id -u)" -eq 0 ] || die "run as root (on VIOS: oem_setup_env first)"
    [ -x "$LPMBENCH" ] || die "$LPMBENCH is not executable; set LPMBENCH to the lpmbench command (pip's bin directory)"
    lsuser "$AGENT_USER" >/dev/null 2>&1 || die "no user $AGENT_USER; create it: mkuser login=false rlogin=false $AGENT_USER"
    [ -f "$KEY_FILE" ] || die "no key file $KEY_FILE; create it: $LPMBENCH keygen --out $KEY_FILE (the same key on every agent)"
    # The agent refuses a key that group or others may read, and must be able to read it itself.
    owner=$(ls -l "$KEY_FILE" | awk '{print $3}')
    mode=$(ls -l "$KEY_FILE" | awk '{print $1}')
    [ "$owner" = "$AGENT_USER" ] || die "$KEY_FILE belongs to $owner; run: chown $AGENT_USER $KEY_FILE"
    case "$mode" in
        -rw-------*|-r--------*) ;;
        *) die "$KEY_FILE has mode $mode; run: chmod 600 $KEY_FILE" ;;
    esac
}

define() {
    uid=$(lsuser -a id "$AGENT_USER" | awk -F= '{print $2}')
    [ -n "$uid" ] || die "cannot read the uid of $AGENT_USER"
    touch "$LOG_FILE"
    chown "$AGENT_USER" "$LOG_FILE"
    chmod 640 "$LOG_FILE"
    if lssrc -s "$SUBSYSTEM" >/dev/null 2>&1; then
        stopsrc -s "$SUBSYSTEM" >/dev/null 2>&1 || true
        rmssys -s "$SUBSYSTEM"
    fi
    # -S signals, -n 15 normal stop (SIGTERM), -f 9 forced stop (SIGKILL), -R restart when it dies,
    # -Q one instance only, -w 20 s between SIGTERM and SIGKILL on stopsrc -c, -G a group of its own (so
    # lssrc shows the PID in column 3, and startsrc -g works), stdin /dev/null,
    # stdout and stderr (the agent's log) to LOG_FILE.
    mkssys -s "$SUBSYSTEM" -p "$LPMBENCH" -a "$AGENT_ARGS" -u "$uid" -G "$SUBSYSTEM" -S -n 15 -f 9 -R -Q -w 20 \
        -i /dev/null -o "$LOG_FILE" -e "$LOG_FILE"
    if lsitab "$SUBSYSTEM" >/dev/null 2>&1; then
        chitab "$INITTAB_ENTRY"
    else
        mkitab "$INITTAB_ENTRY"
    fi
    echo "lpmbench subsystem defined; inittab: $INITTAB_ENTRY"
    echo "start: startsrc -s $SUBSYSTEM   status: lssrc -s $SUBSYSTEM   stop: stopsrc -s $SUBSYSTEM"
    echo "reload the key: kill -HUP \$(lssrc -s $SUBSYSTEM | awk 'NR==2 {print \$3}')"
}

case "${1:-}" in
    --remove) check_root_only=1 ;;
    "") check_root_only=0 ;;
    *) die "usage: $0 [--remove]" ;;
esac

if [ "$check_root_only" -eq 1 ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (on VIOS: oem_setup_env first)"
    remove
else
    check
    define
fi
