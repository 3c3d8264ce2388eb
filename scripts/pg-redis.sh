#!/usr/bin/env bash
# Throwaway PostgreSQL + Redis on free loopback ports, for the test lane and benchmarks.
#
#   scripts/pg-redis.sh start [DIR]   start both servers with all their state in DIR (created,
#                                     or an existing empty folder; a fresh mktemp folder when
#                                     omitted) and print `export NAME=value` lines on stdout;
#                                     progress, versions and ports go to stderr:
#                                         eval "$(scripts/pg-redis.sh start)"
#   scripts/pg-redis.sh env DIR       print the same export lines again
#   scripts/pg-redis.sh stop DIR      stop both servers and delete DIR
#   scripts/pg-redis.sh redis-stop DIR    stop Redis alone (a broker outage, for benchmarks)
#   scripts/pg-redis.sh redis-start DIR   start it again on the same port, with no data
#
# Exported: DATABASE_URL (a superuser role that may create the test database),
# CELERY_BROKER_URL (Redis db 0), REDIS_URL (Redis db 1) and PIMSYNC_PG_REDIS_DIR (DIR).
# Nothing is durable: PostgreSQL runs with fsync off and Redis without persistence.
#
# As root the servers run as the unprivileged user $PIMSYNC_SERVICE_USER (default
# `postgres`), because initdb refuses to run as root; otherwise as the calling user.
# A missing redis-server (or PostgreSQL) is installed with apt-get when running as root.
# PG_BIN overrides where initdb/pg_ctl/postgres are looked up.
set -euo pipefail
# The state folder holds the database password: keep it private to its owner.
umask 077

readonly MARKER=".pimsync-pg-redis"
readonly DB_USER="pimsync"
readonly DB_NAME="pimsync"
readonly PORT_TRIES=5
STARTED=0

log() { printf 'pg-redis: %s\n' "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

# Microseconds since the epoch, for the start/stop timings printed in CI logs.
now_us() { local t="${EPOCHREALTIME/[.,]/}"; echo "$t"; }
seconds_since() { # start_us -> "1.234"
    local ms=$((($(now_us) - $1) / 1000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

service_user() {
    if [[ $EUID -eq 0 ]]; then echo "${PIMSYNC_SERVICE_USER:-postgres}"; else id -un; fi
}

# Runs a server binary as the unprivileged service user, from inside DIR so that
# it never tries to read a working directory it cannot enter (e.g. /root).
as_service_user() {
    if [[ $EUID -eq 0 ]]; then
        (cd "$DIR" && runuser -u "$(service_user)" -- "$@")
    else
        (cd "$DIR" && "$@")
    fi
}

# A loopback port that was free a moment ago; the callers retry if it is taken
# by the time the server binds it.
free_port() {
    local py
    for py in "${PYTHON:-}" python3 .venv/bin/python; do
        if [[ -n $py ]] && command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()' && return 0
        fi
    done
    # No Python: probe random ports below the kernel's ephemeral range.
    local port
    for _ in {1..50}; do
        port=$((20000 + RANDOM % 12000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    die "found no free loopback port"
}

random_hex() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }

apt_install() { # package...
    if [[ $EUID -ne 0 ]]; then
        die "$* is not installed and only root may install it: sudo apt-get install -y $*"
    fi
    command -v apt-get >/dev/null || die "$* is not installed and apt-get is not available"
    log "installing $* with apt-get (once per machine)"
    local apt_log ok=0 added_policy=0
    apt_log=$(mktemp)
    # Keep Debian's postinst from starting a system-wide service on the default port.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    # System files get the usual permissions, not this script's private umask.
    if (
        umask 022
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$apt_log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
                >>"$apt_log" 2>&1
    ); then
        ok=1
    fi
    if ((added_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    if ((!ok)); then
        tail -n 20 "$apt_log" >&2
        rm -f "$apt_log"
        die "apt-get install $* failed"
    fi
    rm -f "$apt_log"
}

find_pg_bin() {
    if [[ -n ${PG_BIN:-} ]]; then
        echo "$PG_BIN"
        return 0
    fi
    local dir initdb
    # Newest installed major version first.
    while read -r dir; do
        if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
            echo "$dir"
            return 0
        fi
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V -r)
    initdb=$(command -v initdb || true)
    if [[ -n $initdb ]]; then
        dirname "$(readlink -f "$initdb")"
        return 0
    fi
    return 1
}

require_state_dir() {
    [[ -n ${DIR:-} ]] || die "missing DIR argument"
    [[ -f $DIR/$MARKER ]] || die "$DIR was not created by scripts/pg-redis.sh start"
}

# --- PostgreSQL ------------------------------------------------------------------------------

start_postgres() {
    local pg_bin="$1" began password port attempt
    began=$(now_us)
    password=$(random_hex)
    mkdir "$DIR/pg"
    printf '%s\n' "$password" >"$DIR/pg.pw"
    chmod 0600 "$DIR/pg.pw"
    if [[ $EUID -eq 0 ]]; then chown -R "$(service_user):" "$DIR/pg" "$DIR/pg.pw"; fi
    chmod 0700 "$DIR/pg"

    if ! as_service_user "$pg_bin/initdb" --pgdata="$DIR/pg" --username="$DB_USER" \
        --pwfile="$DIR/pg.pw" --auth=scram-sha-256 --encoding=UTF8 --locale=C --no-sync \
        >"$DIR/initdb.log" 2>&1; then
        cat "$DIR/initdb.log" >&2
        die "initdb failed"
    fi
    rm -f "$DIR/pg.pw"

    # Tuned for tests: durability off, plenty of connections for the concurrency
    # tests, TCP on loopback only (no Unix socket, so no shared socket directory).
    cat >>"$DIR/pg/postgresql.conf" <<'CONF'

# --- pimsync throwaway test server (scripts/pg-redis.sh) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 250
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
checkpoint_timeout = 30min
max_wal_size = 2GB
jit = off
timezone = 'UTC'
log_min_messages = warning
CONF

    for ((attempt = 1; attempt <= PORT_TRIES; attempt++)); do
        port=$(free_port)
        if as_service_user "$pg_bin/pg_ctl" --pgdata="$DIR/pg" --log="$DIR/pg.log" \
            --options="-p $port" --wait --timeout=60 start >/dev/null 2>&1; then
            break
        fi
        if ((attempt == PORT_TRIES)) || ! grep -q 'could not bind' "$DIR/pg.log" 2>/dev/null; then
            tail -n 20 "$DIR/pg.log" >&2 || true
            die "PostgreSQL did not start"
        fi
        log "port $port was taken, trying another"
    done

    if ! PGPASSWORD="$password" PGCONNECT_TIMEOUT=10 "$pg_bin/createdb" --host=127.0.0.1 \
        --port="$port" --username="$DB_USER" "$DB_NAME" 2>&1 | sed 's/^/pg-redis: /' >&2; then
        die "could not create database $DB_NAME"
    fi
    printf 'PG_BIN=%q\nPG_PORT=%q\n' "$pg_bin" "$port" >>"$DIR/state"
    printf 'export DATABASE_URL=postgres://%s:%s@127.0.0.1:%s/%s\n' \
        "$DB_USER" "$password" "$port" "$DB_NAME" >>"$DIR/env.sh"
    log "$("$pg_bin/postgres" --version) on 127.0.0.1:$port" \
        "(user $DB_USER, database $DB_NAME, run as $(service_user)) up in $(seconds_since "$began")s"
}

stop_postgres() {
    local pg_bin="${PG_BIN_STATE:-}"
    [[ -f $DIR/pg/postmaster.pid ]] || return 0
    if [[ -z $pg_bin ]]; then pg_bin=$(find_pg_bin) || return 1; fi
    # Immediate: the data is thrown away, so skip the shutdown checkpoint.
    as_service_user "$pg_bin/pg_ctl" --pgdata="$DIR/pg" --mode=immediate --wait --timeout=30 \
        stop >/dev/null 2>&1 || {
        log "pg_ctl stop failed; killing the postmaster"
        kill -KILL "$(head -n 1 "$DIR/pg/postmaster.pid")" 2>/dev/null || true
    }
}

# --- Redis ------------------------------------------------------------------------------------

# True when a Redis server answers PONG on the port (bash's /dev/tcp, no redis-cli needed).
redis_answers() ( # port
    reply=""
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    read -r -t 2 reply <&3 || true
    [[ $reply == "+PONG"* ]]
)

# Starts redis-server on PORT with its state in DIR/redis; true once it answers.
launch_redis() { # redis_bin port
    local waited
    rm -f "$DIR/redis/redis.pid"
    as_service_user "$1" --bind 127.0.0.1 --port "$2" --protected-mode yes \
        --save '' --appendonly no --dir "$DIR/redis" --daemonize yes \
        --pidfile "$DIR/redis/redis.pid" --logfile "$DIR/redis/redis.log" \
        --maxclients 1000 >/dev/null 2>&1 || true
    # Redis writes its pid file only after it has bound the port, so a PONG
    # with the pid file present is our server, not a stranger on that port.
    for ((waited = 0; waited < 100; waited++)); do
        if [[ -s $DIR/redis/redis.pid ]] && redis_answers "$2" 2>/dev/null; then
            return 0
        fi
        if grep -qiE 'address already in use|could not create server' \
            "$DIR/redis/redis.log" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

start_redis() {
    local began port attempt redis_bin
    began=$(now_us)
    redis_bin=$(command -v redis-server || true)
    if [[ -z $redis_bin ]]; then
        apt_install redis-server
        redis_bin=$(command -v redis-server) || die "redis-server still missing after apt-get"
    fi
    mkdir "$DIR/redis"
    if [[ $EUID -eq 0 ]]; then chown "$(service_user):" "$DIR/redis"; fi

    for ((attempt = 1; attempt <= PORT_TRIES; attempt++)); do
        port=$(free_port)
        if launch_redis "$redis_bin" "$port"; then
            printf 'REDIS_PORT=%q\n' "$port" >>"$DIR/state"
            printf 'export CELERY_BROKER_URL=redis://127.0.0.1:%s/0\n' "$port" >>"$DIR/env.sh"
            printf 'export REDIS_URL=redis://127.0.0.1:%s/1\n' "$port" >>"$DIR/env.sh"
            log "$("$redis_bin" --version | cut -d' ' -f1-3) on 127.0.0.1:$port" \
                "(no persistence) up in $(seconds_since "$began")s"
            return 0
        fi
        stop_redis
        if ((attempt == PORT_TRIES)) ||
            ! grep -qi 'address already in use' "$DIR/redis/redis.log" 2>/dev/null; then
            tail -n 20 "$DIR/redis/redis.log" >&2 2>/dev/null || true
            die "Redis did not start"
        fi
        log "port $port was taken, trying another"
        : >"$DIR/redis/redis.log"
    done
}

# A daemonized server's parent is PID 1, which may reap it late: a zombie counts as gone.
is_running() { # pid
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

stop_redis() {
    local pid waited
    [[ -s $DIR/redis/redis.pid ]] || return 0
    pid=$(cat "$DIR/redis/redis.pid")
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((waited = 0; waited < 50; waited++)); do
        is_running "$pid" || return 0
        sleep 0.05
    done
    log "redis-server $pid ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# --- commands -----------------------------------------------------------------------------

stop_all() {
    PG_BIN_STATE=""
    if [[ -f $DIR/state ]]; then
        # shellcheck disable=SC1091
        PG_BIN_STATE=$(. "$DIR/state" && echo "${PG_BIN:-}")
    fi
    stop_redis || true
    stop_postgres || true
}

cmd_start() {
    local began pg_bin
    began=$(now_us)
    if [[ -z ${DIR:-} ]]; then
        DIR=$(mktemp -d "${TMPDIR:-/tmp}/pimsync-pg-redis.XXXXXX")
    elif [[ -e $DIR ]]; then
        [[ -d $DIR && -z $(ls -A "$DIR") ]] || die "$DIR must be a new or empty folder"
    else
        mkdir -p "$DIR"
    fi
    DIR=$(cd "$DIR" && pwd)
    : >"$DIR/$MARKER"
    : >"$DIR/state"
    printf 'export PIMSYNC_PG_REDIS_DIR=%s\n' "$DIR" >"$DIR/env.sh"
    if [[ $EUID -eq 0 ]]; then
        id -u "$(service_user)" >/dev/null 2>&1 ||
            die "user $(service_user) does not exist (set PIMSYNC_SERVICE_USER)"
        command -v runuser >/dev/null || die "runuser (util-linux) is required when run as root"
        chown "$(service_user):" "$DIR"
        runuser -u "$(service_user)" -- test -w "$DIR" ||
            die "$(service_user) cannot write $DIR (choose a folder under /tmp)"
    fi

    # Whatever was started is stopped again if a later step fails or we are interrupted.
    trap '((STARTED)) || { stop_all; rm -rf "$DIR"; }' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    if ! pg_bin=$(find_pg_bin); then
        apt_install postgresql
        pg_bin=$(find_pg_bin) || die "PostgreSQL server binaries still missing after apt-get"
    fi
    start_postgres "$pg_bin"
    start_redis
    # shellcheck disable=SC2034 # read by the EXIT trap
    STARTED=1
    log "state in $DIR; stop with: scripts/pg-redis.sh stop $DIR" \
        "(started in $(seconds_since "$began")s)"
    cat "$DIR/env.sh"
}

cmd_stop() {
    local began
    began=$(now_us)
    require_state_dir
    stop_all
    rm -rf "$DIR"
    log "stopped PostgreSQL and Redis, removed $DIR in $(seconds_since "$began")s"
}

# Redis again on the port the clients know (after redis-stop): a broker outage ends.
cmd_redis_start() {
    local began port redis_bin
    began=$(now_us)
    require_state_dir
    port=$(. "$DIR/state" && echo "${REDIS_PORT:-}")
    [[ -n $port ]] || die "no Redis port recorded in $DIR/state"
    redis_bin=$(command -v redis-server) || die "redis-server is not installed"
    if ! launch_redis "$redis_bin" "$port"; then
        tail -n 20 "$DIR/redis/redis.log" >&2 2>/dev/null || true
        die "Redis did not start again on port $port"
    fi
    log "Redis back on 127.0.0.1:$port in $(seconds_since "$began")s"
}

main() {
    local command="${1:-}"
    DIR="${2:-}"
    case "$command" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    redis-stop)
        require_state_dir
        stop_redis
        log "Redis stopped (PostgreSQL still running)"
        ;;
    redis-start) cmd_redis_start ;;
    env)
        require_state_dir
        cat "$DIR/env.sh"
        ;;
    *)
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
}

main "$@"
