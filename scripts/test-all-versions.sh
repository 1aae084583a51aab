#!/usr/bin/env bash
# Runs every test suite on every PostgreSQL major revetl supports: 15 here
# (Debian 12's, or the private copy whose pg_config is first in PATH), and
# 17, 18 and 19 in chroots of newer Debian suites (scripts/pg-chroot.sh).
# 16 is in no Debian suite of the registry and is not tested
# (docs/operations.md). Takes about an hour and a half on two cores; CI runs
# a shorter selection (.ci/run).
#
#   bash scripts/test-all-versions.sh [MAJOR...]    (default: 15 17 18 19)
#
# Run as root. Prints a line per major at the end; fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(15 17 18 19)
results=()
status=0
for m in "${majors[@]}"; do
    start=$SECONDS
    if [ "$m" = 15 ]; then
        bash scripts/test.sh
    else
        bash scripts/pg-chroot.sh test "$m"
    fi
    rc=$?
    took=$(((SECONDS - start) / 60))
    if [ $rc = 0 ]; then
        results+=("PostgreSQL $m: passed (${took} min)")
    else
        results+=("PostgreSQL $m: FAILED (${took} min; see its output above)")
        status=1
    fi
done
printf '%s\n' "${results[@]}"
exit $status
