#!/usr/bin/env bash
# Installs everything revetl needs to build, run and test, from Debian 12's
# own packages. Safe to run again. Must run as root (apt-get).
#
# The PostgreSQL major is REVETL_PG_MAJOR, else that of the pg_config in
# PATH, else 15 (Debian 12's). scripts/pg-chroot.sh runs this script in a
# chroot of a newer Debian suite for 17, 18 and 19, with REVETL_PG_ONLY=1:
# the tools of the suites that do not depend on PostgreSQL (clang-format,
# whose output differs between versions, and the fuzzer's clang) are then
# left out; those suites run on 15.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "install-deps.sh: run as root (it calls apt-get)" >&2
    exit 1
fi

# Debian's postgresql-common would create and start a "main" cluster on
# install; revetl's scripts make their own throwaway clusters instead.
mkdir -p /etc/postgresql-common
if ! grep -qs '^create_main_cluster *= *false' /etc/postgresql-common/createcluster.conf; then
    echo 'create_main_cluster = false' >> /etc/postgresql-common/createcluster.conf
fi

major=${REVETL_PG_MAJOR:-}
if [ -z "$major" ] && command -v pg_config >/dev/null; then
    major=$(pg_config --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
fi
major=${major:-15}

packages=(
    build-essential            # g++, make
    "postgresql-$major"        # the server the extension runs in
    "postgresql-server-dev-$major"  # PGXS and server headers
    libcurl4-openssl-dev       # HTTP delivery
    ca-certificates            # CA bundle for HTTPS destinations (not pulled in with --no-install-recommends)
    rapidjson-dev              # JSON building and parsing
    libphonenumber-dev         # revetl.e164(): Google's phone number parser and metadata
    libicu-dev                 # Unicode case mapping of the identifier helpers (libphonenumber needs ICU too)
    libgtest-dev               # unit tests of the pure C++ modules
    libtap-parser-sourcehandler-pgtap-perl  # pg_prove
    python3                    # integration test harness and mock destinations
    python3-jinja2             # renders the dbt package's macros in its test
    python3-jsonschema         # checks requests against vendors' OpenAPI contracts (test/lib/openapi.py)
    python3-yaml               # reads YAML contracts (Zendesk's) in test/lib/openapi.py
)
if [ "${REVETL_PG_ONLY:-0}" != 1 ]; then
    packages+=(
        clang-format               # formatting check in the test run
        clang libclang-rt-14-dev   # libFuzzer target for the sync language parser
        dpkg-dev debhelper postgresql-server-dev-all  # the Debian package (scripts/build-deb.sh, pg_buildext)
        prometheus-postgres-exporter  # test_metrics.py reads revetl's metrics through it
    )
fi

# pgTAP is packaged per major; a major in release candidates may not have
# it yet (19 in experimental has not): then the pgTAP suite says so.
if [ "$major" = 15 ] || apt-cache show "postgresql-$major-pgtap" >/dev/null 2>&1; then
    packages+=("postgresql-$major-pgtap")  # SQL-level TAP tests
else
    echo "install-deps.sh: the registry has no postgresql-$major-pgtap" >&2
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q -o DPkg::Lock::Timeout=600
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
fi
