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
#
# The PostgreSQL is the one whose pg_config is first in PATH (Debian 12's
# 15, or a private copy of it: scripts/private-pg.sh). scripts/pg-chroot.sh
# runs this script for 17, 18 and 19 in chroots of newer Debian suites, with:
#   REVETL_PG_ONLY=1     only the suites that depend on PostgreSQL (the
#                        version, boundary and format checks, the unit tests
#                        of src/core, which has no PostgreSQL header, and the
#                        fuzzing do not, and run on 15)
#   REVETL_INTEGRATION   integration test files to run, e.g. "test_pipeline.py
#                        test_workers.py" (default: all; "none": none)
# Every integration test cluster also gets the lines of REVETL_TEST_EXTRA_CONF
# in its postgresql.conf (test/lib/pgcluster.py), e.g.
# "revetl.recorder_min_rows = 0" to run any selection with a recorder process
# for every run.
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

PG_MAJOR=$(pg_config --version | sed -n 's/^PostgreSQL \([0-9][0-9]*\).*/\1/p')
echo "== PostgreSQL $PG_MAJOR ($(pg_config --version), $(command -v pg_config))"
export REVETL_PG_MAJOR=$PG_MAJOR
pg_only=${REVETL_PG_ONLY:-0}

echo "== build"
make -j"$(nproc)"
if [ "$(id -u)" = 0 ]; then make install; else sudo make install; fi

if [ "$pg_only" != 1 ]; then
    suite "versions (control file, Makefile, upgrade scripts)" make -s check-version
    suite "boundary (src/core includes no PostgreSQL header)" make -s check-boundary
fi
suite "module symbols" make -s check-symbols
if [ "$pg_only" != 1 ]; then
    suite "format (clang-format)" make format-check
    suite "unit tests (GoogleTest)" make -j"$(nproc)" unit
    suite "fuzzing the sync language parser (${FUZZ_SECONDS:-60}s)" make fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
fi

# The PostgreSQL suites run from a copy of the test material in a scratch
# directory: the checkout may live where the postgres user cannot read.
WORK=$(mktemp -d /tmp/revetl-test.XXXXXX)
chmod 755 "$WORK"
cp -r sql expected test dbt docs contrib revetl.control README.md "$WORK/"

# The upgrade test starts from every released version, built from the
# repository's history into private copies of PostgreSQL. A release is
# built only for the majors it was released for (test/upgrade/releases.txt):
# no installation of it on another major exists to be upgraded, and its code
# may not compile there (0.1.0 predates the PostgreSQL 16 API).
build_releases() {
    local v bin majors
    for v in $(make -s print-released-versions); do
        mkdir -p "$WORK/releases/$v"
        majors=$(awk -v v="$v" '$1 == v { print $3 }' test/upgrade/releases.txt)
        if ! echo ",$majors," | grep -q ",$PG_MAJOR,"; then
            echo "release $v was released for PostgreSQL $majors only, not $PG_MAJOR" | tee "$WORK/releases/$v/unsupported"
            continue
        fi
        bin=$(bash scripts/build-release.sh "$v" "$WORK/releases/$v") || return 1
        echo "$bin" > "$WORK/releases/$v/bindir"
    done
}
suite "released versions built for the upgrade test" build_releases

# The Debian package (debian/, scripts/build-deb.sh) for this major, and a
# clean private copy of PostgreSQL to install it into:
# test/integration/test_package.py checks it and runs a sync from it. On 15
# only (the package is built the same way for every major).
build_package() {
    local deb
    bash scripts/build-deb.sh "$WORK/deb" >/dev/null || return 1
    deb=$(ls "$WORK"/deb/postgresql-"$PG_MAJOR"-revetl_*.deb 2>/dev/null | head -1)
    [ -n "$deb" ] || { echo "no postgresql-$PG_MAJOR-revetl package was built" >&2; return 1; }
    bash scripts/private-pg.sh "$WORK/deb-root" "$PG_MAJOR" >/dev/null || return 1
    export REVETL_DEB="$deb" REVETL_DEB_ROOT="$WORK/deb-root"
}
if [ "$pg_only" != 1 ]; then
    suite "Debian package built (scripts/build-deb.sh)" build_package
fi
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
if [ -f "$WORK/vendor-specs/intercom/api.intercom.io.2.16.yaml" ]; then
    export REVETL_INTERCOM_OPENAPI="$WORK/vendor-specs/intercom/api.intercom.io.2.16.yaml"
fi
if [ -f "$WORK/vendor-specs/pipedrive/openapi-v2.yaml" ]; then
    export REVETL_PIPEDRIVE_OPENAPI="$WORK/vendor-specs/pipedrive/openapi-v2.yaml"
fi
# Iterable publishes a Swagger 2.0 document (test/lib/openapi.py reads both).
if [ -f "$WORK/vendor-specs/iterable/api-docs.json" ]; then
    export REVETL_ITERABLE_OPENAPI="$WORK/vendor-specs/iterable/api-docs.json"
fi
if [ -f "$WORK/vendor-specs/marketo/swagger-mapi.json" ]; then
    export REVETL_MARKETO_OPENAPI="$WORK/vendor-specs/marketo/swagger-mapi.json"
fi
if [ -f "$WORK/vendor-specs/outreach/outreach.oas.json" ]; then
    export REVETL_OUTREACH_OPENAPI="$WORK/vendor-specs/outreach/outreach.oas.json"
fi
if [ -f "$WORK/vendor-specs/customerio/customer-io-track-api-openapi.json" ]; then
    export REVETL_CUSTOMERIO_OPENAPI="$WORK/vendor-specs/customerio/customer-io-track-api-openapi.json"
fi
if [ -f "$WORK/vendor-specs/klaviyo/stable.json" ]; then
    export REVETL_KLAVIYO_OPENAPI="$WORK/vendor-specs/klaviyo/stable.json"
fi
# Mailchimp's own contract could not be saved: a derived copy of its list
# endpoints stands in (vendor-specs/mailchimp/SOURCE.md).
if [ -f "$WORK/vendor-specs/mailchimp/derived-apievangelist-mailchimp-list-id-api-openapi.yml" ]; then
    export REVETL_MAILCHIMP_OPENAPI="$WORK/vendor-specs/mailchimp/derived-apievangelist-mailchimp-list-id-api-openapi.yml"
fi
# Meta publishes its codegen spec files, not OpenAPI (test/lib/metaspec.py reads them).
if [ -f "$WORK/vendor-specs/meta/CustomAudience.json" ]; then
    export REVETL_META_SPEC="$WORK/vendor-specs/meta"
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
integration=${REVETL_INTEGRATION:-}
if [ -z "$integration" ]; then
    suite "integration (clusters, workers, mock destinations)" \
        "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 test/integration/run.py
elif [ "$integration" != none ]; then
    # shellcheck disable=SC2086 # a list of file names
    suite "integration, selected ($integration)" \
        "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 test/integration/run.py $integration
fi
# The suites above give a run a recorder process (src/pg/recorder.hpp) only
# from 10,000 rows, which few of their runs reach: the end-to-end pipeline and
# the late-request rules once more with a recorder for every run, so that
# both ways of recording are held to the same outcomes.
if [ -z "$integration" ]; then
    suite "integration with a recorder for every run (test_pipeline.py, test_late_requests.py)" \
        "${as_pg[@]}" env REVETL_TEST_EXTRA_CONF="revetl.recorder_min_rows = 0" PYTHONDONTWRITEBYTECODE=1 \
        python3 test/integration/run.py test_pipeline.py test_late_requests.py
fi
# Each connector's mock tests itself (test/connectors/<type>/mock_selftest.py).
for selftest in test/connectors/*/mock_selftest.py; do
    connector=$(basename "$(dirname "$selftest")")
    suite "mock $connector self-test" "${as_pg[@]}" env PYTHONDONTWRITEBYTECODE=1 python3 "$selftest"
done

cd "$REPO"
rm -rf "$WORK"
echo "suites on PostgreSQL $PG_MAJOR: $passed passed, $failed failed"
exit $status
