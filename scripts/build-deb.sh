#!/usr/bin/env bash
# Builds revetl's Debian packages, postgresql-<major>-revetl, as Debian's own
# extension packages are built (debian/: debhelper with pg_buildext from
# postgresql-server-dev-all, one package per major of debian/pgversions that
# has its server headers installed), from a clean copy of this checkout.
#
#   bash scripts/build-deb.sh [OUTDIR]     (default: ./build-deb)
#
# Prints the paths of the built .deb files. Needs dpkg-dev, debhelper,
# postgresql-server-dev-all and the build dependencies of debian/control
# (scripts/install-deps.sh installs them); root is not needed. The test
# test/integration/test_package.py builds the package, checks its contents,
# installs it into a private copy of PostgreSQL and runs a sync from it.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
out=${1:-$REPO/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n 's/^EXTVERSION *= *//p' Makefile)
changelog_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$changelog_version" != "$version" ]; then
    echo "build-deb.sh: debian/changelog is at $changelog_version, the Makefile at $version" >&2
    exit 1
fi

work=$(mktemp -d /tmp/revetl-deb.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/revetl-$version
mkdir -p "$src"
# The checkout as it is, without build products or what git ignores.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=.deps --exclude=build-deb -cf - . | tar -xf - -C "$src"
fi
cd "$src"
# debian/control lists one package per major installed here (pg_buildext
# updatecontrol renders it from debian/control.in).
pg_buildext updatecontrol >/dev/null
echo "build-deb.sh: building for PostgreSQL $(pg_buildext supported-versions | tr '\n' ' ')" >&2
DEB_BUILD_OPTIONS="nocheck parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -us -uc --no-sign >"$work/build.log" 2>&1 || {
    tail -50 "$work/build.log" >&2
    echo "build-deb.sh: dpkg-buildpackage failed (log above)" >&2
    exit 1
}
for deb in "$work"/*.deb; do
    cp "$deb" "$out/"
    echo "$out/$(basename "$deb")"
done
