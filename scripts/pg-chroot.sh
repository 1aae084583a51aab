#!/usr/bin/env bash
# Builds and tests revetl against another PostgreSQL major in a Debian chroot.
# Debian 12 ships PostgreSQL 15 only; Debian's newer suites on the same
# package registry carry the newer majors with their server headers:
#
#   17  trixie                                   (Debian 13)
#   18  sid                                      (unstable)
#   19  sid, PostgreSQL from experimental        (release candidates)
#
# 16 is in none of them (trixie went straight from 15 to 17), so it cannot be
# built or tested here; see docs/operations.md.
#
#   bash scripts/pg-chroot.sh prepare MAJOR   debootstrap the chroot and install
#                                             PostgreSQL MAJOR and revetl's build
#                                             and test dependencies (apt only)
#   bash scripts/pg-chroot.sh test MAJOR      prepare if needed, copy this checkout
#                                             in, and run scripts/test.sh there
#
# The chroots live in REVETL_CHROOT_DIR (default /var/tmp/revetl-chroots),
# one per major, and are reused: `prepare` on a prepared chroot only
# upgrades it. Packages come from the mirror this machine's apt uses
# (REVETL_MIRROR overrides it). The test run passes these on to scripts/test.sh:
#   REVETL_INTEGRATION   integration test files to run (default: all; "none": none)
#   FUZZ_SECONDS         unused there: the fuzzing and the other suites that do
#                        not depend on PostgreSQL run on 15 only (REVETL_PG_ONLY)
# Needs root (debootstrap, chroot, mount). Mounts are made in a private mount
# namespace, so nothing stays mounted after the script, however it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

usage() {
    echo "usage: pg-chroot.sh prepare|test MAJOR" >&2
    exit 2
}
action=${1:-}
major=${2:-}
[ -n "$action" ] && [ -n "$major" ] || usage
case "$action" in prepare | test) ;; *) usage ;; esac

if [ "$(id -u)" != 0 ]; then
    echo "pg-chroot.sh: run as root (debootstrap, chroot and mount need it)" >&2
    exit 1
fi

case "$major" in
17) suite=trixie experimental=0 ;;
18) suite=sid experimental=0 ;;
19) suite=sid experimental=1 ;;
15)
    echo "pg-chroot.sh: 15 is Debian 12's own: run scripts/test.sh directly" >&2
    exit 2
    ;;
16)
    echo "pg-chroot.sh: no Debian suite on this registry carries PostgreSQL 16 (bookworm has 15," >&2
    echo "trixie 17, sid 18, experimental 19): it cannot be built or tested here" >&2
    exit 2
    ;;
*)
    echo "pg-chroot.sh: no Debian suite known for PostgreSQL $major (supported: 17, 18, 19)" >&2
    exit 2
    ;;
esac

# The mirror the machine's own apt uses, so that the chroot reaches the same
# registry (deb822 sources first, then the one-line format).
mirror=${REVETL_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
fi
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

root=${REVETL_CHROOT_DIR:-/var/tmp/revetl-chroots}/pg$major
say() { echo "pg-chroot.sh [$major]: $*"; }

# Runs a command in the chroot with /proc, /dev (and its shm, which the
# server's dynamic shared memory uses) and /sys mounted, in a private mount
# namespace of its own.
in_chroot() {
    unshare --mount --propagation private -- bash -c '
        set -e
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        mount -t tmpfs tmpfs "$root/tmp"
        chmod 1777 "$root/tmp"
        exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
            PATH=/usr/lib/postgresql/'"$major"'/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            DEBIAN_FRONTEND=noninteractive "$@"
    ' in_chroot "$root" "$@"
}

prepare() {
    if ! command -v debootstrap >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q -o DPkg::Lock::Timeout=600 --no-install-recommends debootstrap
    fi
    if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -e "$root/.revetl-debootstrap-done" ]; then
        say "debootstrap $suite from $mirror into $root"
        rm -rf "$root"
        mkdir -p "$(dirname "$root")"
        if ! debootstrap --variant=minbase "$suite" "$root" "$mirror"; then
            say "FAILED: debootstrap of $suite from $mirror (is the package registry reachable?)" >&2
            return 1
        fi
        touch "$root/.revetl-debootstrap-done"
    fi
    {
        echo "deb $mirror $suite main"
        if [ "$experimental" = 1 ]; then echo "deb $mirror experimental main"; fi
    } > "$root/etc/apt/sources.list"
    # From experimental only PostgreSQL itself (and its client library and
    # extensions); everything else stays sid's.
    if [ "$experimental" = 1 ]; then
        printf 'Package: postgresql* libpq* libecpg* libpgtypes*\nPin: release a=experimental\nPin-Priority: 990\n' \
            > "$root/etc/apt/preferences.d/revetl-postgresql"
    fi
    # The registry serves a fixed snapshot of each suite: sid's Release file
    # (signed, and still checked) outlives its Valid-Until date there.
    echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99revetl-snapshot"
    # No service starts in the chroot (there is no init there).
    printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    # Names resolve as on the machine: debootstrap's /etc/hosts also maps
    # localhost to ::1, where the tests' mocks (on 127.0.0.1) do not listen.
    cp /etc/hosts "$root/etc/hosts"
    mkdir -p "$root/build"
    cp scripts/install-deps.sh "$root/build/install-deps.sh"
    say "installing PostgreSQL $major and revetl's dependencies"
    if ! in_chroot bash -c "apt-get update -q && REVETL_PG_MAJOR=$major REVETL_PG_ONLY=1 bash /build/install-deps.sh"; then
        say "FAILED: installing PostgreSQL $major and the dependencies from $mirror ($suite)" >&2
        return 1
    fi
    # pgTAP is plain SQL (no module), so where the registry has no package
    # for this major yet (19), the previous major's package's SQL files are
    # installed for it, taken with apt from the same registry.
    local prev=$((major - 1))
    if ! in_chroot dpkg-query -W -f='${Status}' "postgresql-$major-pgtap" 2>/dev/null | grep -q "install ok installed" \
        && [ ! -e "$root/usr/share/postgresql/$major/extension/pgtap.control" ]; then
        say "no postgresql-$major-pgtap: installing postgresql-$prev-pgtap's SQL files for $major"
        if ! in_chroot bash -c "set -e; rm -rf /var/tmp/pgtap; mkdir -p /var/tmp/pgtap; cd /var/tmp/pgtap
                apt-get download -q postgresql-$prev-pgtap; dpkg-deb -x postgresql-$prev-pgtap_*.deb x
                cp x/usr/share/postgresql/$prev/extension/pgtap* /usr/share/postgresql/$major/extension/
                cd /; rm -rf /var/tmp/pgtap"; then
            say "FAILED: no pgTAP for $major (postgresql-$prev-pgtap not available either)" >&2
            return 1
        fi
    fi
    in_chroot pg_config --version
}

run_tests() {
    # The checkout as it is (committed or not, without what git ignores),
    # and the vendors' API contracts the tests validate requests against.
    # The previous copy's build products are kept, so make rebuilds only
    # what changed. Its mtimes cannot say what changed: a file unpacked with
    # its checkout time can be older than a product another checkout built
    # here since, from other content. So the new tree is unpacked aside and
    # only the files whose content differs are copied over (with a new
    # mtime, so make rebuilds what depends on them); files gone from the
    # tree are removed from the copy (a removed .cpp would still be built).
    # REVETL_CHROOT_CLEAN=1 starts afresh.
    if [ "${REVETL_CHROOT_CLEAN:-0}" = 1 ]; then rm -rf "$root/build/revetl"; fi
    rm -rf "$root/build/shared" "$root/build/incoming"
    mkdir -p "$root/build/revetl" "$root/build/shared" "$root/build/incoming"
    if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$root/build/incoming"
    else
        tar --exclude=.git --exclude='*.o' --exclude='*.so' --exclude=.deps --exclude=./build -cf - . |
            tar -xf - -C "$root/build/incoming"
    fi
    (cd "$root/build/incoming" && find . -type f -print0) | while IFS= read -r -d '' f; do
        if ! cmp -s "$root/build/incoming/$f" "$root/build/revetl/$f"; then
            mkdir -p "$(dirname "$root/build/revetl/$f")"
            cp "$root/build/incoming/$f" "$root/build/revetl/$f"
        fi
    done
    (cd "$root/build/revetl" && find . -type f ! -name '*.o' ! -name '*.so' ! -name '*.d' ! -name '*.Po' \
        ! -path './.deps/*' ! -path './build/*' ! -path './test/unit/revetl_unit' -print0) |
        while IFS= read -r -d '' f; do
            [ -e "$root/build/incoming/$f" ] || rm -f "$root/build/revetl/$f"
        done
    rm -rf "$root/build/incoming"
    for specs in "$REPO/../shared/vendor-specs" /work/shared/vendor-specs; do
        if [ -d "$specs" ]; then
            cp -r "$specs" "$root/build/shared/vendor-specs"
            break
        fi
    done
    say "building and testing in $root"
    in_chroot env REVETL_PG_MAJOR="$major" REVETL_PG_ONLY=1 REVETL_INTEGRATION="${REVETL_INTEGRATION:-}" \
        bash /build/revetl/scripts/test.sh
}

prepare
if [ "$action" = test ]; then
    run_tests
fi
