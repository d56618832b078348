#!/usr/bin/env bash
# Make the real servers the test suite needs available on a Debian machine; idempotent and quiet.
#  - Dovecot (dovecot-imapd) and openssl: the tests run private Dovecot instances on their own ports,
#    so the system Dovecot service is never started.
#  - PostgreSQL at 127.0.0.1:5432: started with pg_ctlcluster when installed but not running.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-test-servers: run as root" >&2; exit 1; }
    SUDO="sudo"
fi

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
have dovecot || missing+=(dovecot-imapd)
have openssl || missing+=(openssl)

if [ ${#missing[@]} -gt 0 ]; then
    # Keep apt from starting the system Dovecot (it would take ports 143/993 for nothing).
    policy=/usr/sbin/policy-rc.d
    added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        added_policy=1
    fi
    cleanup() { if [ -n "$added_policy" ]; then $SUDO rm -f "$policy"; fi; }
    trap cleanup EXIT
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    cleanup
    trap - EXIT
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        $SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
    fi
fi

pg_answers() {
    if command -v pg_isready >/dev/null; then
        pg_isready -q -h 127.0.0.1 -p 5432 -t 3
    else
        timeout 3 bash -c '</dev/tcp/127.0.0.1/5432' 2>/dev/null
    fi
}

if ! pg_answers; then
    if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null; then
        for version in $(ls /etc/postgresql); do
            $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
        done
    fi
    for _ in $(seq 1 20); do
        pg_answers && break
        sleep 0.5
    done
    pg_answers || echo "install-test-servers: PostgreSQL is not answering at 127.0.0.1:5432" >&2
fi
