#!/usr/bin/env bash
# Installs what pysentry needs on Debian 12 (as root) into ./.venv.
#   ./install.sh          the runtime
#   ./install.sh --test   the runtime plus what the test suite needs
set -euo pipefail
cd "$(dirname "$0")"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs="gcc libc6-dev python3-venv python3-dev busybox-static"
[ $want_test = 1 ] && pkgs="$pkgs diod tmux strace coreutils gzip tar sed gawk findutils python3 libpython3.11-testsuite procps"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $missing >/dev/null
fi

py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ $want_test = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
# Byte-compile now: an editable install leaves it to the first run, and an environment with
# PYTHONDONTWRITEBYTECODE would recompile every module on every start-up.
.venv/bin/python -m compileall -q sentry gofer platform native bench >/dev/null
echo "pysentry installed in $(pwd)/.venv (run: .venv/bin/pysentry run -- /bin/sh)"
