#!/usr/bin/env bash
# Applies the patch series in this directory to a Lighthouse checkout at the base commit, then
# runs `cargo check` on the touched crates and the series' tests (see README.md).
#
# usage: apply-and-test.sh LIGHTHOUSE_DIR [--base-check]
#
#   LIGHTHOUSE_DIR  a git checkout of sigp/lighthouse holding the base commit, with no uncommitted
#                   changes. The series is applied on a new branch `dv-selections` (set BRANCH to
#                   change it) at the base; the checkout's current branch is left alone.
#   --base-check    instead, show that the new beacon node tests fail without the beacon node
#                   changes: on branch `dv-selections-base-check`, apply only patch 0001 (the
#                   `eth2` client methods the tests call) and add the test files of the series.
#                   Exits 0 only if every new endpoint test fails.
#
# Builds use the debug profile with debug assertions off for test binaries, because
# `beacon_node/http_api/tests/main.rs` is `#![cfg(not(debug_assertions))]` (upstream runs these
# tests with `--release`). Every cargo command uses the same package set and environment, so they
# share one build. Set CARGO_TARGET_DIR to reuse a target directory.
set -euo pipefail

BASE=40d3423193e6f97f44c42eb3673af607627c8f7f # sigp/lighthouse unstable, 2024-10-22
HERE=$(cd "$(dirname "$0")" && pwd)
die() { echo "apply-and-test: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: apply-and-test.sh LIGHTHOUSE_DIR [--base-check]"
LH=$(cd "$1" && pwd)
MODE=${2:-}
BRANCH=${BRANCH:-dv-selections}
cd "$LH"

git cat-file -e "$BASE^{commit}" 2>/dev/null || die "$LH does not hold the base commit $BASE"
git diff --quiet && git diff --cached --quiet || die "$LH has uncommitted changes"

export CARGO_PROFILE_TEST_DEBUG_ASSERTIONS=false
PACKAGES=(-p http_api -p validator_client -p eth2)
LOG=$(mktemp -d)

# Builds the test binaries and prints the path of the one whose name starts with $1.
build_tests() {
  cargo test --locked "${PACKAGES[@]}" --no-run --message-format=json-render-diagnostics \
    > "$LOG/build.json"
}
binary() {
  python3 - "$LOG/build.json" "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") \
            and msg["target"]["name"] == sys.argv[2] and msg["profile"]["test"]:
        print(msg["executable"])
        break
PY
}
# Runs the tests of binary $1 matching filter $2; prints the summary line and the time.
run_tests() {
  local bin
  bin=$(binary "$1")
  [ -n "$bin" ] || die "no test binary $1"
  local start=$SECONDS rc=0
  "$bin" "$2" --test-threads=2 > "$LOG/$1.out" 2>&1 || rc=$?
  grep -E '^test |^test result' "$LOG/$1.out" || true
  echo "== $1 '$2': exit $rc, $((SECONDS - start)) s"
  return $rc
}

if [ "$MODE" = "--base-check" ]; then
  git checkout -q -B "$BRANCH-base-check" "$BASE"
  git am -q "$HERE"/0001-*.patch
  # The test files of the series, without the beacon node changes they test.
  for p in "$HERE"/00*.patch; do
    git apply --include='beacon_node/http_api/tests/*' "$p"
  done
  git add -A && git commit -q -m "Tests of the selection endpoints, without the endpoints"
  build_tests
  rc=0
  run_tests bn_http_api_tests aggregator_selection_tests || rc=$?
  [ $rc -ne 0 ] || die "the new endpoint tests pass on the base: they cannot fail"
  if grep -q "test result: .* 0 passed" "$LOG/bn_http_api_tests.out"; then
    echo "base check: OK, every new endpoint test fails on the base"
  else
    die "base check: some new endpoint tests pass on the base (see above)"
  fi
  exit 0
fi

git checkout -q -B "$BRANCH" "$BASE"
git am -q "$HERE"/00*.patch
echo "applied: $(git log --oneline "$BASE"..HEAD | wc -l) patches on $BASE"

start=$SECONDS
cargo check --locked -p eth2 -p warp_utils -p http_api -p validator_client
echo "== cargo check: $((SECONDS - start)) s"

start=$SECONDS
build_tests
echo "== test build: $((SECONDS - start)) s"
rc=0
run_tests eth2 selection_types_json || rc=$?
run_tests bn_http_api_tests aggregator_selection_tests || rc=$?
run_tests validator_client duties_service:: || rc=$?
[ $rc -eq 0 ] && echo "apply-and-test: OK" || die "some tests failed"
