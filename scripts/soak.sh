#!/usr/bin/env bash
# Long soaks, beyond what CI runs. From the repository root:
#
#   scripts/soak.sh kills [KILLS] [CALLS]       # SIGKILL tokentap KILLS times (default 20) under
#                                               # load, CALLS answered calls between kills (2000);
#                                               # every answered call must be stored exactly once
#   scripts/soak.sh growth [DURATION] [RETENTION] [RATE]  # RATE calls/s (200; 0 = flat out) for
#                                               # DURATION (30m) with --retention RETENTION (5m):
#                                               # RSS and disk over time must level off
#
# CI runs the kill soak in reduced form (3 kills, 3,000 calls) as
# TestKill9KeepsAcknowledgedCalls.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
kills)
    TOKENTAP_SOAK_KILLS="${2:-20}" TOKENTAP_SOAK_CALLS="${3:-2000}" \
        go test ./cmd/sidecar -run '^TestKill9KeepsAcknowledgedCalls$' -count=1 -v -timeout 0
    ;;
growth)
    go run ./bench -role soak -duration "${2:-30m}" -retention "${3:-5m}" -rate "${4:-200}"
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
