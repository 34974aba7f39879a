"""Verifies deliveries written by the `deliveries_for_the_standardwebhooks_peer` test with the
`standardwebhooks` library: every delivery must verify under each of its secrets (a delivery
sent during a secret rotation carries both signatures). Exits non-zero on any failure."""

import json
import pathlib
import sys

from standardwebhooks.webhooks import Webhook


def main(directory: str) -> int:
    files = sorted(pathlib.Path(directory).glob("*.json"))
    if not files:
        print(f"webhooks peer: no deliveries in {directory}", file=sys.stderr)
        return 1
    failures = 0
    checks = 0
    for path in files:
        record = json.loads(path.read_text())
        for secret in record["secrets"]:
            checks += 1
            try:
                Webhook(secret).verify(record["body"], record["headers"])
            except Exception as error:  # the library raises its own WebhookVerificationError
                failures += 1
                print(f"webhooks peer: {path.name} does not verify: {error}", file=sys.stderr)
    print(f"webhooks peer: {len(files)} deliveries, {checks} signature checks, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
