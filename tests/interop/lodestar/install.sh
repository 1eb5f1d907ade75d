#!/usr/bin/env bash
# Installs Lodestar 1.5.1 (a real beacon node for the interop tests) from the npm
# registry with the pinned lock file next to this script. Idempotent: skips when the
# install dir already holds an install made from the same package files.
#   LODESTAR_DIR  install dir (default: <repo>/target/lodestar-1.5.1)
# The interop tests find the binary at $LODESTAR_DIR/node_modules/.bin/lodestar.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
dir="${LODESTAR_DIR:-$repo/target/lodestar-1.5.1}"
stamp="$dir/.package-files.sha256"
# The stamp covers both files: package.json carries the overrides npm ci checks.
want="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -d' ' -f1)"

if [[ -x "$dir/node_modules/.bin/lodestar" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "lodestar 1.5.1 already installed in $dir"
  exit 0
fi

mkdir -p "$dir"
rm -f "$stamp"
cp "$here/package.json" "$here/package-lock.json" "$dir/"
start=$SECONDS
# No --ignore-scripts: native bindings are built at install.
(cd "$dir" && npm ci --no-audit --no-fund)
echo "$want" >"$stamp"
echo "lodestar 1.5.1 installed in $dir in $((SECONDS - start)) s"
