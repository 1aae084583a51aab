#!/usr/bin/env bash
# Makes a private, relocated copy of an installed PostgreSQL under DIR, so
# that a build of revetl can be installed and tested there without touching
# the system's installation: several checkouts can then build and run their
# test suites side by side on one machine.
#
#   bash scripts/private-pg.sh DIR [MAJOR]     (MAJOR defaults to 15)
#   export PATH="DIR/usr/lib/postgresql/MAJOR/bin:$PATH"
#   bash scripts/test.sh                       (builds, installs into DIR, tests)
#
# PostgreSQL finds its library and share directories relative to the
# location of its own executable (it resolves symlinks to find it), so the
# programs are copied and everything else is linked: revetl's `make install`
# then writes its files into DIR, and the copy's postgres loads them from
# there. Prints the copy's bin directory.
set -euo pipefail

dir=${1:?usage: private-pg.sh DIR [MAJOR]}
major=${2:-15}
src_bin=/usr/lib/postgresql/$major/bin
src_lib=/usr/lib/postgresql/$major/lib
src_share=/usr/share/postgresql/$major
src_include=/usr/include/postgresql/$major/server
[ -x "$src_bin/postgres" ] || { echo "private-pg.sh: PostgreSQL $major is not installed" >&2; exit 1; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin=$dir/usr/lib/postgresql/$major/bin
lib=$dir/usr/lib/postgresql/$major/lib
share=$dir/usr/share/postgresql/$major

mkdir -p "$bin" "$lib" "$share/extension" "$dir/usr/include/postgresql/$major"
cp -a "$src_bin/." "$bin/"
# Library and share entries are links to the system's, except what revetl
# installs (its module and its extension files), which stay the copy's own.
for entry in "$src_lib"/*; do
    name=$(basename "$entry")
    case "$name" in revetl.so | revetl) continue ;; esac
    [ -e "$lib/$name" ] || ln -s "$entry" "$lib/$name"
done
for entry in "$src_share"/*; do
    name=$(basename "$entry")
    [ "$name" = extension ] && continue
    [ -e "$share/$name" ] || ln -s "$entry" "$share/$name"
done
for entry in "$src_share"/extension/*; do
    name=$(basename "$entry")
    case "$name" in revetl.control | revetl--*) continue ;; esac
    [ -e "$share/extension/$name" ] || ln -s "$entry" "$share/extension/$name"
done
[ -e "$dir/usr/include/postgresql/$major/server" ] || ln -s "$src_include" "$dir/usr/include/postgresql/$major/server"
chmod -R a+rX "$dir"
echo "$bin"
