#!/usr/bin/env bash
# Installs what is needed, builds revetl, and runs every test suite:
#   1. GoogleTest units of the pure C++ modules
#   2. pg_regress (sql/ + expected/) on a temporary instance
#   3. pgTAP through pg_prove
#   4. integration tests: real clusters, mock destinations, crashes and restarts
#      (test/integration and each connector's test/connectors/<type>/test_*.py)
#   5. each connector's mock self-test
# Run as root on Debian 12 (it installs packages); the PostgreSQL suites run
# as the unprivileged "postgres" user because initdb refuses root.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

if [ "$(id -u)" = 0 ]; then
    bash scripts/install-deps.sh
fi

status=0
passed=0
failed=0
# Runs one suite, counting it as passed or failed; the script goes on either
# way so that one run shows every failure.
suite() {
    local name=$1
    shift
    echo "== $name"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); status=1; echo "!! $name FAILED"; fi
}

echo "== build"
make -j"$(nproc)"
if [ "$(id -u)" = 0 ]; then make install; else sudo make install; fi

suite "versions (control file, Makefile, upgrade scripts)" make -s check-version
suite "boundary (src/core includes no PostgreSQL header)" make -s check-boundary
suite "module symbols" make -s check-symbols
suite "format (clang-format)" make format-check
suite "unit tests (GoogleTest)" make unit
suite "fuzzing the sync language parser (${FUZZ_SECONDS:-60}s)" make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"

# The PostgreSQL suites run from a copy of the test material in a scratch
# directory: the checkout may live where the postgres user cannot read.
WORK=$(mktemp -d /tmp/revetl-test.XXXXXX)
chmod 755 "$WORK"
cp -r sql expected test dbt docs revetl.control README.md "$WORK/"

# The upgrade test starts from every released version, built from the
# repository's history into private copies of PostgreSQL.
build_releases() {
    local v bin
    for v in $(make -s print-released-versions); do
        bin=$(bash scripts/build-release.sh "$v" "$WORK/releases/$v") || return 1
        echo "$bin" > "$WORK/releases/$v/bindir"
    done
}
suite "released versions built for the upgrade test" build_releases
export REVETL_RELEASES_DIR="$WORK/releases"

# The vendors' published API contracts (the steering repository's shared/
# folder, beside this checkout) validate the requests the connectors send.
# They are copied where the unprivileged test user can read them.
for specs in "$REPO/../shared/vendor-specs" /work/shared/vendor-specs; do
    if [ -d "$specs" ]; then
        cp -r "$specs" "$WORK/vendor-specs"
        break
    fi
done
if [ -f "$WORK/vendor-specs/hubspot/contacts.v3.json" ]; then
    export REVETL_HUBSPOT_OPENAPI="$WORK/vendor-specs/hubspot/contacts.v3.json"
fi
if [ -f "$WORK/vendor-specs/zendesk/support-oas.yaml" ]; then
    export REVETL_ZENDESK_OPENAPI="$WORK/vendor-specs/zendesk/support-oas.yaml"
fi
# Salesforce publishes no OpenAPI for these endpoints: its Postman collection
# (see vendor-specs/salesforce/SOURCE.md) is checked by test/lib/postman.py.
if [ -d "$WORK/vendor-specs/salesforce/postman-salesforce-apis-83bd942/src/collections/salesforce_apis" ]; then
    export REVETL_SALESFORCE_POSTMAN="$WORK/vendor-specs/salesforce/postman-salesforce-apis-83bd942/src/collections/salesforce_apis"
fi
as_pg=()
if [ "$(id -u)" = 0 ]; then
    chown -R postgres: "$WORK"
    as_pg=(runuser -u postgres --)
fi
export PYTHONDONTWRITEBYTECODE=1
REGRESS_TESTS=$(make -s print-regress)
cd "$WORK"

run_regress() {
    if ! "${as_pg[@]}" "$PG_REGRESS" --temp-instance="$WORK/regress-instance" --temp-config=test/regress.conf \
            --inputdir=. --outputdir="$WORK/regress" --bindir="$(pg_config --bindir)" $REGRESS_TESTS; then
        cat "$WORK/regress/regression.diffs" 2>/dev/null || true
        return 1
    fi
}
PG_REGRESS="$(pg_config --pkglibdir)/pgxs/src/test/regress/pg_regress"
suite "pg_regress" run_regress
suite "pgTAP (pg_prove)" "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 test/pgtap/run.py
suite "integration (clusters, workers, mock destinations)" \
    "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 test/integration/run.py
# Each connector's mock tests itself (test/connectors/<type>/mock_selftest.py).
for selftest in test/connectors/*/mock_selftest.py; do
    connector=$(basename "$(dirname "$selftest")")
    suite "mock $connector self-test" "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 "$selftest"
done

cd "$REPO"
rm -rf "$WORK"
echo "suites: $passed passed, $failed failed"
exit $status
