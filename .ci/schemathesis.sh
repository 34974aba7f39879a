#!/usr/bin/env bash
# Property-based HTTP check of the real server against its own OpenAPI document: schemathesis
# generates requests for every operation (authenticated as the root admin) and fails on any
# 5xx or any response that disagrees with the document. A bounded run: a few examples per
# operation, a few minutes in all. Needs python3 (with venv) and network access to PyPI the
# first time; the venv is kept in target/py.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-5}
MAX_TIME=${SCHEMATHESIS_MAX_TIME:-240}
PASSWORD='schemathesis-root-password'

venv=target/py
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The debug binary: the test command has just built it.
cargo build --quiet -p halley
data=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

# Cheap argon2id so that generated admin and user creations do not dominate the run; a long
# access token so that it outlives the run.
HALLEY_ADMIN_PASSWORD="$PASSWORD" HALLEY_ARGON2_MEMORY_KIB=256 HALLEY_ARGON2_ITERATIONS=1 \
    HALLEY_ACCESS_TOKEN_TTL_SECS=3600 HALLEY_LOG=warn \
    target/debug/halley serve --data-dir "$data/data" --listen "127.0.0.1:$port" \
    >"$data/server.out" 2>"$data/server.err" &
server=$!
stop() {
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -rf "$data"
}
trap stop EXIT

for _ in $(seq 1 200); do
    curl -sf "$base/readyz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$data/server.err"; exit 1; }
    sleep 0.1
done
curl -sf "$base/readyz" >/dev/null

token=$(curl -sf "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

status=0
"$venv/bin/schemathesis" run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance \
    --max-examples "$EXAMPLES" \
    --max-time "$MAX_TIME" \
    --seed 1 \
    --no-color \
    --generation-database none \
    || status=$?
if [ "$status" -ne 0 ] && grep -q ' ERROR ' "$data/server.err"; then
    echo "--- server errors ---"
    grep ' ERROR ' "$data/server.err" | tail -20
fi
exit "$status"
