#!/usr/bin/env bash
# The main job, end to end: installs what is needed, builds and installs
# revetl, starts a throwaway PostgreSQL cluster with revetl preloaded and a
# local mock webhook, creates a model and a sync, runs it, and shows what
# arrived at the destination. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    bash scripts/install-deps.sh
fi
make -j"$(nproc)"
if [ "$(id -u)" = 0 ]; then make install; else sudo make install; fi

WORK=$(mktemp -d /tmp/revetl-demo.XXXXXX)
chmod 755 "$WORK"
cp -r scripts test "$WORK/"
cd "$WORK"
if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$WORK"
    runuser -u postgres -- env PYTHONDONTWRITEBYTECODE=1 python3 scripts/demo.py "$@"
else
    PYTHONDONTWRITEBYTECODE=1 python3 scripts/demo.py "$@"
fi
cd / && rm -rf "$WORK"
