#!/usr/bin/env bash
# End to end: the patched Lighthouse validator client, as a real client, through this project's
# middlewares. `dv-aggregator devnet --external-vcs` runs the chain (the project's state-backed
# beacon node, mainnet preset, Deneb from genesis) and one middleware per operator of a 3-of-4
# cluster; this script starts one `lighthouse vc --distributed` per operator with that operator's
# key shares (the keystores/0x<pubkey>/voting-keystore.json + secrets/0x<pubkey> layout the devnet
# writes, found by Lighthouse's own key discovery). Two judges:
#   - the devnet judges every selection the VCs asked the middlewares for, and the
#     subscriptions' is_aggregator, against the undivided keys (its report, exit status);
#   - e2e/e2e_tools.py judges every decision each Lighthouse VC logged against the undivided
#     interop key, signed with py_ecc (independent of blst, Lighthouse and dv-aggregator).
#
# usage: e2e.sh LIGHTHOUSE DV_AGGREGATOR
#   LIGHTHOUSE     the `lighthouse` binary built from the patched checkout
#   DV_AGGREGATOR  this project's `dv-aggregator` binary
# Environment (defaults):
#   VALIDATORS=1024       genesis validators (mainnet preset: one committee of 32 per slot, so
#                         1 in 2 members aggregates; sync subcommittees of 128, 1 in 8)
#   DISTRIBUTED=16        distributed validators among them
#   EPOCHS=2              epochs judged, after one epoch for the VCs to start
#   SECONDS_PER_SLOT=2
#   PYTHON                a python3 with py_ecc (default: target/e2e-venv, made with pip)
#   WORKDIR               where everything goes (default: a new directory under target/)
# Exits non-zero unless both judges find every decision equal to the undivided key's.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
die() { echo "e2e: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: e2e.sh LIGHTHOUSE DV_AGGREGATOR"
LIGHTHOUSE=$(realpath "$1"); DV=$(realpath "$2")
VALIDATORS=${VALIDATORS:-1024}; DISTRIBUTED=${DISTRIBUTED:-16}; EPOCHS=${EPOCHS:-2}
SECONDS_PER_SLOT=${SECONDS_PER_SLOT:-2}
PYTHON=${PYTHON:-$REPO/target/e2e-venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  python3 -m venv "$REPO/target/e2e-venv"
  "$REPO/target/e2e-venv/bin/pip" install -q --disable-pip-version-check py_ecc
  PYTHON=$REPO/target/e2e-venv/bin/python
fi
TOOLS="$PYTHON $HERE/e2e/e2e_tools.py"
W=${WORKDIR:-$(mktemp -d "$REPO/target/lighthouse-e2e.XXXXXX")}
mkdir -p "$W"
echo "e2e: working in $W"

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
json() { "$PYTHON" -c 'import json,sys; v=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v=v[int(k) if k.isdigit() else k]
print(v)' "$@"; }

# 1. The chain and the middlewares. The genesis delay leaves time for the VCs to start.
"$DV" devnet --external-vcs --preset mainnet --fork deneb --validators "$VALIDATORS" \
  --distributed-validators "$DISTRIBUTED" --epochs "$EPOCHS" --seconds-per-slot "$SECONDS_PER_SLOT" \
  --genesis-delay 30 --data-dir "$W/devnet" --report "$W/devnet-report.json" \
  > "$W/devnet.out" 2> "$W/devnet.log" &
DEVNET=$!
PIDS+=($DEVNET)
SETUP=$W/devnet/external-vcs.json
for _ in $(seq 600); do [ -s "$SETUP" ] && break; kill -0 $DEVNET 2>/dev/null || break; sleep 0.2; done
[ -s "$SETUP" ] || { tail -20 "$W/devnet.log"; die "the devnet wrote no $SETUP"; }
sed -n '1,/the same as JSON/p' "$W/devnet.out"

# 2. One Lighthouse VC per operator, each with a copy of its operator's share keystores (the VC
#    writes validator_definitions.yml and its slashing protection database beside them).
LOGS=()
for i in 0 1 2 3; do
  OP=$(json "$SETUP" operators $i operator)
  mkdir -p "$W/vc-$OP"
  cp -r "$(json "$SETUP" operators $i keystores_by_pubkey)" "$W/vc-$OP/validators"
  "$LIGHTHOUSE" --testnet-dir "$(json "$SETUP" testnet_dir)" vc \
    --validators-dir "$W/vc-$OP/validators" --secrets-dir "$(json "$SETUP" operators $i secrets)" \
    --beacon-nodes "$(json "$SETUP" operators $i beacon_node)" --distributed --init-slashing-protection \
    --suggested-fee-recipient 0x0000000000000000000000000000000000000001 \
    --logfile "$W/vc-$OP/vc.log" --logfile-debug-level debug --logfile-format JSON \
    > "$W/vc-$OP/stdout.log" 2>&1 &
  PIDS+=($!)
  LOGS+=("$W/vc-$OP/vc.log")
done
echo "e2e: 4 Lighthouse VCs (--distributed) started"

# 3. While the devnet runs: keep the chain facts the judge needs (the node serves the duties of
#    its current and next epoch only).
REST=$(json "$SETUP" operators 0 beacon_node)
while kill -0 $DEVNET 2>/dev/null; do
  $TOOLS snapshot --rest "$REST" --validators "$VALIDATORS" --out "$W/chain.json" 2>> "$W/snapshot.log" || true
  for pid in "${PIDS[@]:1}"; do kill -0 "$pid" 2>/dev/null || die "Lighthouse VC $pid exited early (see $W)"; done
  sleep 5
done
DEVNET_RC=0; wait $DEVNET || DEVNET_RC=$?
# The VCs' beacon nodes are gone: stop them before their logs fill with that.
cleanup; PIDS=()
sed -n '/the same as JSON/,$p' "$W/devnet.out" | tail -n +2

# 4. The VCs' own decisions over the judged epochs.
FIRST=$(( $(json "$SETUP" first_judged_epoch) * 32 ))
LOG_LIST=$(IFS=,; echo "${LOGS[*]}")
JUDGE_RC=0
$TOOLS judge --chain "$W/chain.json" --logs "$LOG_LIST" --from-slot "$FIRST" \
  --until-slot $(( FIRST + EPOCHS * 32 )) --report "$W/report.json" > "$W/judge.txt" || JUDGE_RC=$?
sed -n '/^duties:/,$p' "$W/judge.txt"
echo "e2e: devnet exit status $DEVNET_RC, judge of the Lighthouse VCs' logs exit status $JUDGE_RC"
[ "$DEVNET_RC" -eq 0 ] && [ "$JUDGE_RC" -eq 0 ]
