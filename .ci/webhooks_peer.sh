#!/usr/bin/env bash
# Real webhook deliveries verified by a peer nobody here wrote: the e2e test
# `webhooks::deliveries_for_the_standardwebhooks_peer` writes what its receiver got (headers,
# raw body, the secrets in force, both during a rotation) and the Python `standardwebhooks`
# library verifies each signature. Uses the venv of .ci/schemathesis.sh (target/py).
set -euo pipefail
cd "$(dirname "$0")/.."

STANDARDWEBHOOKS_VERSION=1.0.0
venv=target/py
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
    "$venv/bin/pip" install --quiet "standardwebhooks==$STANDARDWEBHOOKS_VERSION"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# --workspace, like the test command, so the build is reused (`-p tests` alone unifies
# features differently and recompiles five crates); the other `it` suites match nothing.
HALLEY_WEBHOOK_PEER_DIR="$out" cargo test --workspace --test it \
    webhooks::deliveries_for_the_standardwebhooks_peer -- --exact
"$venv/bin/python" .ci/webhooks_peer.py "$out"
