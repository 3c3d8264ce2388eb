#!/usr/bin/env bash
# `make test-pg`: the whole suite, tests marked `postgres` included, against a throwaway
# PostgreSQL and Redis (scripts/pg-redis.sh) that are stopped and deleted afterwards.
#
#   bash scripts/test-pg.sh [pytest args...]      (from anywhere; .venv must be installed)
#
# Exits with pytest's code; "no tests collected" (5) is a failure like any other non-zero.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
readonly PYTHON=.venv/bin/python
if [[ ! -x $PYTHON ]]; then
    echo "test-pg: $PYTHON is missing; run \`make install\` first" >&2
    exit 2
fi

# The browser tests (marker `browser`) drive Debian's chromium: install it if missing.
bash scripts/ensure-chromium.sh || exit 1

state_dir=$(mktemp -d "${TMPDIR:-/tmp}/pimsync-test-pg.XXXXXX") || exit 2

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    bash scripts/pg-redis.sh stop "$state_dir"
    rm -rf "$state_dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "test-pg: starting throwaway PostgreSQL + Redis in $state_dir" >&2
if ! exports=$(bash scripts/pg-redis.sh start "$state_dir"); then
    echo "test-pg: FAILED to start PostgreSQL/Redis (see above)" >&2
    exit 1
fi
eval "$exports"
export PIMSYNC_TEST_LANE=pg
# The production shape: the channel rate limiter shared through Redis, not the database.
export PIMSYNC_RATE_LIMIT_REDIS_URL="$REDIS_URL"
echo "test-pg: DATABASE_URL=${DATABASE_URL/:[0-9a-f]*@/:***@} CELERY_BROKER_URL=$CELERY_BROKER_URL" \
    "REDIS_URL=$REDIS_URL PIMSYNC_RATE_LIMIT_REDIS_URL=$PIMSYNC_RATE_LIMIT_REDIS_URL" \
    "PIMSYNC_TEST_LANE=pg" >&2

run_pytest() {
    "$PYTHON" -m pytest "$@"
    local rc=$?
    if ((rc == 5)); then
        echo "test-pg: FAILED: pytest collected no tests (exit 5)" >&2
    elif ((rc != 0)); then
        echo "test-pg: FAILED: pytest exited $rc" >&2
    fi
    return "$rc"
}

if (($# > 0)); then  # the tests asked for, in one process
    run_pytest "$@"
    exit $?
fi
# The whole lane: the suite on PostgreSQL + Redis in PIMSYNC_TEST_WORKERS parallel
# processes (each with its own test database and Redis database for the rate
# limiter), then the concurrency tests (`postgres`) and the end-to-end tests, whose
# worker processes share the broker, one at a time. Both always run.
rc=0
run_pytest -n "${PIMSYNC_TEST_WORKERS:-2}" -m "not postgres and not e2e" || rc=$?
run_pytest -m "postgres or e2e" || rc=$?
exit "$rc"
