#!/usr/bin/env bash
# End to end: the patched Lighthouse validator client, as a real client, through this project's
# middlewares. Four operators each run `dv-aggregator middleware` and `lighthouse vc --distributed`
# with their key shares of the distributed validators, in front of one Lodestar 1.5.1 dev chain
# (a real beacon node with blocks and attestations). Every aggregation decision each Lighthouse
# VC logs is judged against the undivided interop key's (e2e/e2e_tools.py judge).
#
# usage: e2e.sh LIGHTHOUSE DV_AGGREGATOR LODESTAR
#   LIGHTHOUSE     the `lighthouse` binary built from the patched checkout
#   DV_AGGREGATOR  this project's `dv-aggregator` binary
#   LODESTAR       node_modules/.bin/lodestar of Lodestar 1.5.1 (tests/interop/lodestar/install.sh)
# Environment (defaults):
#   VALIDATORS=1024       genesis validators (mainnet preset: one committee of 32 per slot)
#   DISTRIBUTED=8         the last DISTRIBUTED validators are the cluster's (4 operators, 3-of-4)
#   EPOCHS=3              full epochs to judge after the VCs started
#   SECONDS_PER_SLOT=2
#   PYTHON                a python3 with py_ecc and cryptography (default: target/e2e-venv)
#   WORKDIR               where everything goes (default: a new directory under target/)
# Exits non-zero unless every operator decided every duty as the undivided key does.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
die() { echo "e2e: $*" >&2; exit 1; }
[ $# -eq 3 ] || die "usage: e2e.sh LIGHTHOUSE DV_AGGREGATOR LODESTAR"
LIGHTHOUSE=$(realpath "$1"); DV=$(realpath "$2"); LODESTAR=$(realpath "$3")
VALIDATORS=${VALIDATORS:-1024}; DISTRIBUTED=${DISTRIBUTED:-8}; EPOCHS=${EPOCHS:-3}
SECONDS_PER_SLOT=${SECONDS_PER_SLOT:-2}
PYTHON=${PYTHON:-$REPO/target/e2e-venv/bin/python}
if [ ! -x "$PYTHON" ]; then
  python3 -m venv "$REPO/target/e2e-venv"
  "$REPO/target/e2e-venv/bin/pip" install -q --disable-pip-version-check py_ecc cryptography
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
free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# 1. The chain: Lodestar runs every validator but the distributed ones.
FIRST_DV=$((VALIDATORS - DISTRIBUTED)); LAST_DV=$((VALIDATORS - 1))
REST_PORT=$(free_port); REST="http://127.0.0.1:$REST_PORT"
mkdir -p "$W/lodestar"
(cd "$W/lodestar" && exec "$LODESTAR" dev --preset mainnet \
   --genesisValidators "$VALIDATORS" --startValidators "0..$((FIRST_DV - 1))" \
   --params.SECONDS_PER_SLOT "$SECONDS_PER_SLOT" --params.ALTAIR_FORK_EPOCH 0 \
   --rest.address 127.0.0.1 --rest.port "$REST_PORT" --rest.namespace '*' --server "$REST" \
   --listenAddress 127.0.0.1 --port "$(free_port)" --discv5 false --mdns false \
   --reset --dataDir "$W/lodestar/data" > "$W/lodestar/lodestar.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 240); do curl -sf "$REST/eth/v1/beacon/genesis" > "$W/genesis.json" && break; sleep 0.5; done
[ -s "$W/genesis.json" ] || { tail -20 "$W/lodestar/lodestar.log"; die "Lodestar did not serve REST"; }
FORK_VERSION=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["genesis_fork_version"])' "$W/genesis.json")
echo "e2e: Lodestar dev chain at $REST ($VALIDATORS validators, mainnet preset, Altair from genesis); cluster: validators $FIRST_DV..$LAST_DV"

# 2. The cluster: split the distributed validators' interop keys 3-of-4.
$TOOLS keystores --indices "$FIRST_DV-$LAST_DV" --out "$W/keys" > "$W/keys.log"
PEER_BASE=$(free_port)
"$DV" cluster create --operators 4 --split-existing-keys "$W/keys" --out "$W/cluster" \
  --network mainnet --fork-version "$FORK_VERSION" --peer-base-port "$PEER_BASE" --insecure-fast-kdf > "$W/cluster.log"

# 3. One middleware and one Lighthouse VC per operator.
$TOOLS testnet --rest "$REST" --out "$W/testnet"
LOGS=()
for i in 1 2 3 4; do
  MW_PORT=$(free_port)
  "$DV" middleware --lock "$W/cluster/cluster-lock.json" --operator-index $i \
    --node-key "$W/cluster/operator-$i/node-key" --beacon-node "$REST" --http-port "$MW_PORT" \
    > "$W/middleware-$i.log" 2>&1 &
  PIDS+=($!)
  $TOOLS vc-defs --keystores "$W/cluster/operator-$i/validator_keys" --out "$W/vc-$i/validators/validator_definitions.yml"
  "$LIGHTHOUSE" --testnet-dir "$W/testnet" vc --validators-dir "$W/vc-$i/validators" \
    --beacon-nodes "http://127.0.0.1:$MW_PORT" --distributed --init-slashing-protection \
    --suggested-fee-recipient 0x0000000000000000000000000000000000000001 --disable-auto-discover \
    --logfile "$W/vc-$i/vc.log" --logfile-debug-level debug --logfile-format JSON \
    > "$W/vc-$i/stdout.log" 2>&1 &
  PIDS+=($!)
  LOGS+=("$W/vc-$i/vc.log")
done
echo "e2e: 4 middlewares and 4 Lighthouse VCs (--distributed) started"

# 4. Run until EPOCHS full epochs have passed, then judge.
GENESIS_TIME=$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["data"]["genesis_time"])' "$W/genesis.json")
SLOTS_PER_EPOCH=32
now_slot() { echo $(( ($(date +%s) - GENESIS_TIME) / SECONDS_PER_SLOT )); }
START=$(now_slot); [ "$START" -ge 0 ] || START=0
END_EPOCH=$(( START / SLOTS_PER_EPOCH + 1 + EPOCHS ))
echo "e2e: judging until epoch $END_EPOCH (slot $((END_EPOCH * SLOTS_PER_EPOCH)))"
while [ "$(now_slot)" -lt $((END_EPOCH * SLOTS_PER_EPOCH + 1)) ]; do
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "process $pid exited early (see $W)"; done
  sleep 5
done
IFS=,; $TOOLS judge --rest "$REST" --logs "${LOGS[*]}" --until-slot $((END_EPOCH * SLOTS_PER_EPOCH)) \
  --report "$W/report.json" | tee "$W/judge.txt"
