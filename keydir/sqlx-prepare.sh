#!/bin/sh
# Regenerates <repo>/.sqlx/, the offline data of the sqlx query macros of keydir
# and of keyward-transparency (akd's storage, in keydir's database).
#
# Starts a throwaway PostgreSQL (Debian package postgresql-15: initdb, pg_ctl,
# psql) on a free loopback port in a temp folder, applies migrations/ with psql,
# then builds both crates online: each query macro describes its query
# against that database and writes .sqlx/query-<sha256 of the query>.json.
# The cluster is stopped and removed on exit. No permanent database needed.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
bindir=$(pg_config --bindir 2>/dev/null || true)
if [ ! -x "$bindir/initdb" ]; then
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
if [ ! -x "$bindir/initdb" ]; then
    echo "initdb not found: install the Debian package postgresql-15" >&2
    exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/keyward-sqlx-XXXXXX")
run=""
if [ "$(id -u)" = 0 ]; then
    # initdb refuses to run as root.
    chown postgres: "$dir"
    run="runuser -u postgres --"
fi
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        $run "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || kill -INT "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

$run "$bindir/initdb" -A trust --no-sync -E UTF8 --locale=C.UTF-8 -U postgres -D "$dir/data" >/dev/null
port=""
for _ in 1 2 3 4 5; do
    try=$(shuf -i 20000-60999 -n 1)
    if $run "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $try -k $dir -c fsync=off" start >/dev/null 2>&1; then
        port=$try
        break
    fi
done
if [ -z "$port" ]; then
    echo "PostgreSQL did not start:" >&2
    cat "$dir/log" >&2
    exit 1
fi
pid=$(head -n 1 "$dir/data/postmaster.pid")

psql() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE keyward" >/dev/null
for migration in "$repo"/migrations/*.sql; do
    psql -d keyward -f "$migration" >/dev/null
done

# The crates whose query macros write .sqlx/.
crates="keydir transparency"
packages="-p keyward-keydir -p keyward-transparency"

mkdir -p "$repo/.sqlx"
rm -f "$repo"/.sqlx/query-*.json
# Touching a crate root makes cargo recompile the crate, so every macro runs again.
for crate in $crates; do touch "$repo/$crate/src/lib.rs"; done
cd "$repo"
# shellcheck disable=SC2086 # $packages is a list of arguments
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$repo/.sqlx" \
    DATABASE_URL="postgres://postgres@127.0.0.1:$port/keyward" \
    cargo build $packages --lib
echo "$(ls "$repo"/.sqlx/query-*.json | wc -l) query files in .sqlx/"

# The same build offline, with no database, must now succeed.
for crate in $crates; do touch "$repo/$crate/src/lib.rs"; done
# shellcheck disable=SC2086
env -u DATABASE_URL SQLX_OFFLINE=true cargo build $packages --lib
echo "offline build OK"
