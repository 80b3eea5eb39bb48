#!/usr/bin/env bash
# The offline demo: the whole connected-side → air-gap journey, with no network.
#   1. an "upstream" OCI layout with busybox:musl and three etcd v3 tags (generated locally),
#   2. a signing key,
#   3. one signed bundle of those images (shared layers stored once),
#   4. verify it as the secure side would, with only the public key,
#   5. inspect it, and show that plain tar + zstd read it,
#   6. import it into an OCI image layout directory standing in for the registry inside the gap.
# Usage: bash samples/demo.sh [WORKDIR]   (default: a fresh temp directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
airlock="$here/../bin/airlock"
work=${1:-$(mktemp -d -t airlock-demo-XXXXXX)}
mkdir -p "$work"
cd "$work"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. an upstream to mirror (an OCI layout standing in for docker.io and quay.io)"
rm -rf upstream && node "$here/make-demo-layout.mjs" upstream

step "2. a signing key (the private half stays on the connected side)"
rm -f demo.key demo.pub
"$airlock" key generate --out demo

step "3. bundle create"
"$airlock" bundle create oci:upstream -o mirror.tar.zst --sign-key demo.key --force

step "4. bundle verify (inside the gap: only the public key, no network)"
"$airlock" bundle verify mirror.tar.zst --trust demo.pub
sha256sum -c mirror.tar.zst.sha256

step "5. bundle inspect (reads only the head of the archive)"
"$airlock" bundle inspect mirror.tar.zst

step "6. standard tools read it: tar --zstd lists an OCI image layout"
tar --zstd -tvf mirror.tar.zst > listing.txt   # (not piped into head: pipefail would stop the demo)
head -n 8 listing.txt
echo "... $(wc -l < listing.txt) entries"

step "7. bundle import (inside the gap): here into an OCI layout; --to registry.lan for a registry"
rm -rf imported
"$airlock" bundle import mirror.tar.zst --to oci:imported --trust demo.pub
echo
echo "demo files are in $work"
