"""Helpers of e2e.sh (the patched Lighthouse validator client through dv-aggregator middlewares).

Subcommands:
  snapshot  --rest URL --validators N --out FILE   the chain facts the judge needs, taken while
                                                   the devnet runs (spec, genesis, attester duties
                                                   of the current and next epoch; merged into FILE)
  judge     --chain FILE --logs F1,F2,.. ...       every decision of every VC against the undivided key

The ground truth uses only the chain facts and the whole interop secret keys:
sk_i = int.from_bytes(sha256(i as 32 bytes little-endian), "little") mod r, signed with py_ecc
(a BLS implementation independent of Lighthouse's blst and of dv-aggregator).
"""
import argparse
import hashlib
import json
import os
import sys
import time
import urllib.request

from py_ecc.bls import G2ProofOfPossession as bls
from py_ecc.optimized_bls12_381 import curve_order

DOMAIN_SELECTION_PROOF = bytes.fromhex("05000000")
DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF = bytes.fromhex("08000000")
# Indices per attester-duties request (the Beacon API bounds a request's ids).
DUTIES_CHUNK = 256


def interop_secret(index):
    return int.from_bytes(hashlib.sha256(index.to_bytes(32, "little")).digest(), "little") % curve_order


def get(rest, path):
    with urllib.request.urlopen(rest.rstrip("/") + path, timeout=10) as response:
        return json.load(response)


def post(rest, path, body):
    request = urllib.request.Request(
        rest.rstrip("/") + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


# --- the chain facts, taken while the chain runs ------------------------------------------------

def cmd_snapshot(args):
    """Adds the attester duties of the node's current and next epoch to FILE (once per epoch).

    The devnet's node serves duties of its current and next epoch only, and the devnet stops
    after its last judged epoch, so e2e.sh calls this every few seconds while it runs."""
    facts = {"duties": {}}
    if os.path.exists(args.out):
        with open(args.out) as f:
            facts = json.load(f)
    if "spec" not in facts:
        facts["spec"] = get(args.rest, "/eth/v1/config/spec")["data"]
        facts["genesis"] = get(args.rest, "/eth/v1/beacon/genesis")["data"]
    spec = facts["spec"]
    seconds_per_epoch = int(spec["SECONDS_PER_SLOT"]) * int(spec["SLOTS_PER_EPOCH"])
    current = max(0, int(time.time()) - int(facts["genesis"]["genesis_time"])) // seconds_per_epoch
    for epoch in (current, current + 1):
        if str(epoch) in facts["duties"]:
            continue
        duties = []
        for first in range(0, args.validators, DUTIES_CHUNK):
            ids = [str(i) for i in range(first, min(args.validators, first + DUTIES_CHUNK))]
            duties += post(args.rest, f"/eth/v1/validator/duties/attester/{epoch}", ids)["data"]
        facts["duties"][str(epoch)] = duties
    with open(args.out + ".tmp", "w") as f:
        json.dump(facts, f)
    os.replace(args.out + ".tmp", args.out)


# --- the judge --------------------------------------------------------------------------------

def domain(domain_type, fork_version, genesis_validators_root):
    fork_data_root = hashlib.sha256(fork_version.ljust(32, b"\0") + genesis_validators_root).digest()
    return domain_type + fork_data_root[:28]


def signing_root(object_root, dom):
    return hashlib.sha256(object_root + dom).digest()


def uint_root(value):
    return value.to_bytes(8, "little").ljust(32, b"\0")


def selects(signature, modulo):
    return int.from_bytes(hashlib.sha256(signature).digest()[:8], "little") % modulo == 0


class Chain:
    def __init__(self, facts):
        self.spec = facts["spec"]
        self.gvr = bytes.fromhex(facts["genesis"]["genesis_validators_root"][2:])
        self.slots_per_epoch = int(self.spec["SLOTS_PER_EPOCH"])
        self.target_aggregators = int(self.spec["TARGET_AGGREGATORS_PER_COMMITTEE"])
        self.sync_modulo = max(
            1,
            int(self.spec["SYNC_COMMITTEE_SIZE"])
            // int(self.spec["SYNC_COMMITTEE_SUBNET_COUNT"])
            // int(self.spec["TARGET_AGGREGATORS_PER_SYNC_SUBCOMMITTEE"]),
        )
        forks = []
        for name in ["ALTAIR", "BELLATRIX", "CAPELLA", "DENEB", "ELECTRA"]:
            epoch = self.spec.get(f"{name}_FORK_EPOCH")
            if epoch is not None and int(epoch) < 2**63:
                forks.append((int(epoch), bytes.fromhex(self.spec[f"{name}_FORK_VERSION"][2:])))
        self.forks = [(0, bytes.fromhex(self.spec["GENESIS_FORK_VERSION"][2:]))] + sorted(forks)
        self.committee_lengths = {
            (int(duty["validator_index"]), int(duty["slot"])): int(duty["committee_length"])
            for duties in facts["duties"].values()
            for duty in duties
        }

    def fork_version(self, slot):
        epoch = slot // self.slots_per_epoch
        return [version for start, version in self.forks if start <= epoch][-1]

    def committee_length(self, validator_index, slot):
        return self.committee_lengths.get((validator_index, slot))

    def attestation_truth(self, validator_index, slot):
        length = self.committee_length(validator_index, slot)
        if length is None:
            return None, None
        root = signing_root(uint_root(slot), domain(DOMAIN_SELECTION_PROOF, self.fork_version(slot), self.gvr))
        proof = bls.Sign(interop_secret(validator_index), root)
        return selects(proof, max(1, length // self.target_aggregators)), length

    def sync_truth(self, validator_index, slot, subcommittee_index):
        object_root = hashlib.sha256(uint_root(slot) + uint_root(subcommittee_index)).digest()
        dom = domain(DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF, self.fork_version(slot), self.gvr)
        proof = bls.Sign(interop_secret(validator_index), signing_root(object_root, dom))
        return selects(proof, self.sync_modulo)


def read_decisions(path):
    """The decisions one Lighthouse VC logged (JSON log file)."""
    decisions, failures = {}, []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            msg = record.get("msg")
            if msg == "Aggregator selection decided":
                key = ("attestation", int(record["validator_index"]), int(record["slot"]), int(record["committee_index"]))
                decisions[key] = record["is_aggregator"] in (True, "true")
            elif msg in ("Validator is sync aggregator", "Validator is not sync aggregator"):
                key = ("sync", int(record["validator_index"]), int(record["slot"]), int(record["subnet_id"]))
                decisions[key] = msg == "Validator is sync aggregator"
            elif msg in ("Aggregator selection failed", "Sync committee aggregator selection failed"):
                failures.append(record)
    return decisions, failures


def cmd_judge(args):
    with open(args.chain) as f:
        chain = Chain(json.load(f))
    logs = args.logs.split(",")
    per_vc = [read_decisions(path) for path in logs]
    duties = sorted(set().union(*(set(d) for d, _ in per_vc)), key=lambda k: (k[2], k[0], k[1], k[3]))
    duties = [k for k in duties if k[2] >= args.from_slot and (args.until_slot is None or k[2] < args.until_slot)]
    rows, wrong, disagreeing, missing = [], 0, 0, 0
    print(f"{'slot':>5} {'validator':>9}  {'duty':<22} {'aggregator':<10} {'agreed':>6}  {'= truth':<7}")
    for kind, validator_index, slot, index in duties:
        answers = [d.get((kind, validator_index, slot, index)) for d, _ in per_vc]
        if kind == "attestation":
            truth, length = chain.attestation_truth(validator_index, slot)
            duty = f"attestation c{index} (len {length})"
        else:
            truth = chain.sync_truth(validator_index, slot, index)
            duty = f"sync subnet {index}"
        decided = [a for a in answers if a is not None]
        cluster = decided[0] if decided and all(a == decided[0] for a in decided) else None
        agree = sum(1 for a in answers if a is not None and a == truth)
        ok = cluster is not None and cluster == truth and len(decided) == len(logs)
        wrong += cluster is not None and cluster != truth
        disagreeing += len(decided) > 1 and cluster is None
        missing += len(decided) < len(logs)
        mark = "yes" if ok else "NO"
        shown = "?" if cluster is None else ("yes" if cluster else "no")
        print(f"{slot:>5} {validator_index:>9}  {duty:<22} {shown:<10} {agree:>4}/{len(logs)}  {mark}")
        rows.append({"kind": kind, "validator_index": validator_index, "slot": slot, "index": index,
                     "operators": answers, "ground_truth": truth})
    failures = [f for _, fs in per_vc for f in fs
                if args.from_slot <= int(f.get("slot", 0)) and (args.until_slot is None or int(f.get("slot", 0)) < args.until_slot)]
    attestation = sum(1 for k in duties if k[0] == "attestation")
    aggregators = sum(1 for r in rows if r["ground_truth"])
    print()
    print(f"duties: {len(duties)} ({attestation} attestation, {len(duties) - attestation} sync); "
          f"aggregators by the undivided keys: {aggregators}")
    print(f"decided by every operator as the undivided key decides: {len(duties) - wrong - disagreeing - missing} of {len(duties)}")
    print(f"wrong: {wrong}, operators disagreeing: {disagreeing}, missing at some operator: {missing}, "
          f"failure log lines: {len(failures)}")
    for failure in failures[:10]:
        print(f"  failure: {failure.get('msg')} validator {failure.get('validator_index')} slot {failure.get('slot')}: {failure.get('reason')}")
    if args.report:
        with open(args.report, "w") as f:
            json.dump({"duties": rows, "failures": failures}, f, indent=1)
    ok = duties and attestation and not wrong and not disagreeing and not missing and not failures
    ok = ok and (args.allow_no_sync or len(duties) > attestation)
    print("result:", "OK, every decision equals the ground truth" if ok else "FAILED")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("snapshot"); p.add_argument("--rest", required=True); p.add_argument("--out", required=True)
    p.add_argument("--validators", type=int, required=True)
    p = sub.add_parser("judge"); p.add_argument("--chain", required=True); p.add_argument("--logs", required=True)
    p.add_argument("--report"); p.add_argument("--allow-no-sync", action="store_true")
    p.add_argument("--until-slot", type=int, help="judge only the duties before this slot")
    p.add_argument("--from-slot", type=int, default=0, help="judge only the duties from this slot")
    args = parser.parse_args()
    commands = {"snapshot": cmd_snapshot, "judge": cmd_judge}
    return commands[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
