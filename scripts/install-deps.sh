#!/usr/bin/env bash
# Installs everything revetl needs to build, run and test, from Debian 12's
# own packages. Safe to run again. Must run as root (apt-get).
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

packages=(
    build-essential            # g++ 12, make
    postgresql-15              # the server the extension runs in
    postgresql-server-dev-15   # PGXS and server headers
    libcurl4-openssl-dev       # HTTP delivery
    ca-certificates            # CA bundle for HTTPS destinations (not pulled in with --no-install-recommends)
    rapidjson-dev              # JSON building and parsing
    libphonenumber-dev         # revetl.e164(): Google's phone number parser and metadata
    libicu-dev                 # Unicode case mapping of the identifier helpers (libphonenumber needs ICU too)
    libgtest-dev               # unit tests of the pure C++ modules
    postgresql-15-pgtap        # SQL-level TAP tests
    libtap-parser-sourcehandler-pgtap-perl  # pg_prove
    python3                    # integration test harness and mock destinations
    python3-jinja2             # renders the dbt package's macros in its test
    python3-jsonschema         # checks requests against vendors' OpenAPI contracts (test/lib/openapi.py)
    python3-yaml               # reads YAML contracts (Zendesk's) in test/lib/openapi.py
    clang-format               # formatting check in the test run
    clang libclang-rt-14-dev   # libFuzzer target for the sync language parser
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q -o DPkg::Lock::Timeout=600
    apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
fi
