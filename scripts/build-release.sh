#!/usr/bin/env bash
# Builds a released version of revetl from the repository's history and
# installs it into a private copy of PostgreSQL (scripts/private-pg.sh), for
# the upgrade test: it creates a database with that version, fills it, and
# updates it with the build under test.
#
#   bash scripts/build-release.sh VERSION DIR     (prints the copy's bin dir)
#
# The commit of each release is in test/upgrade/releases.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: build-release.sh VERSION DIR}
dir=${2:?usage: build-release.sh VERSION DIR}
commit=$(awk -v v="$version" '$1 == v { print $2 }' test/upgrade/releases.txt)
[ -n "$commit" ] || { echo "build-release.sh: no release $version in test/upgrade/releases.txt" >&2; exit 1; }
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "build-release.sh: commit $commit of release $version is not in this clone's history" >&2
    echo "(the upgrade test needs a full clone, not a shallow one)" >&2
    exit 1
fi
mkdir -p "$dir"
bin=$(bash scripts/private-pg.sh "$dir/pg" "${REVETL_PG_MAJOR:-15}") # the major under test (scripts/test.sh)
rm -rf "$dir/src" && mkdir -p "$dir/src"
git archive "$commit" Makefile revetl.control sql src | tar -x -C "$dir/src"
make -s -C "$dir/src" -j"$(nproc)" PG_CONFIG="$bin/pg_config" >/dev/null
make -s -C "$dir/src" install PG_CONFIG="$bin/pg_config" >/dev/null
chmod -R a+rX "$dir"
echo "$bin"
