#!/usr/bin/env bash
# package.sh DIR — the GPU-check bundle: a release mpo-train with the Swift runtime linked
# statically, and every shared library it needs that a bare Linux GPU machine may lack (ldd
# decides; glibc's own libraries stay the target's; OpenBLAS, libgfortran, the OpenCL ICD loader
# and libstdc++ go in), in bundle.tar.gz (≈ 36 MB; the stripped binary alone is ≈ 61 MB, most of
# it Foundation's ICU data), with Tiny Shakespeare; run.sh and VERSION beside it.
# Fails if the bundle exceeds 60 MB. Then: copy DIR to the GPU machine and run `DIR/run.sh OUT`.
# The target needs glibc at least as new as this machine's (the binary links against it).
set -euo pipefail
DIR=${1:?usage: package.sh DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=${SCRATCH:-$ROOT/.build-gpu}
LIMIT=$((60 * 1000 * 1000))

swift build -c release --static-swift-stdlib --product mpo-train --package-path "$ROOT" --scratch-path "$SCRATCH"
BIN=$SCRATCH/release/mpo-train
rm -rf "$DIR"; mkdir -p "$DIR"
STAGE=$(mktemp -d); trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/data"
strip -o "$STAGE/bin/mpo-train" "$BIN"
if ldd "$BIN" | grep -q 'not found'; then echo "package.sh: $(ldd "$BIN" | grep 'not found')" >&2; exit 1; fi
ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | while read -r lib; do
  case $(basename "$lib") in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libutil.so.*|ld-linux*) ;;   # the target's glibc
    *) cp -L "$lib" "$STAGE/lib/" ;;
  esac
done
cp "$ROOT/Data/tinyshakespeare.txt" "$STAGE/data/"
tar -czf "$DIR/bundle.tar.gz" -C "$STAGE" bin lib data
cp "$ROOT/Benchmarks/gpu/run.sh" "$DIR/run.sh"; chmod +x "$DIR/run.sh"
(cd "$ROOT" && echo "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo '+changes'), built $(date -u +%F) on $(uname -m), glibc $(ldd --version | head -1 | awk '{print $NF}')") > "$DIR/VERSION"

size=$(du -sb "$DIR" | cut -f1)
echo "bundle $DIR: $(cat "$DIR/VERSION"); $((size / 1000000)) MB"
tar -tzvf "$DIR/bundle.tar.gz" | awk '$NF !~ /\/$/ {printf "  %-28s %6.1f MB\n", $NF, $3 / 1e6}'
if [ "$size" -gt "$LIMIT" ]; then echo "package.sh: the bundle is $((size / 1000000)) MB, over the 60 MB limit" >&2; exit 1; fi
