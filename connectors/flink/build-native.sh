#!/usr/bin/env bash
# Build the JNI library (operators/jni) with cargo and copy it to OUT_DIR/<os>-<arch>/, where
# NativeLibraryLoader looks for it in the jar.
#
#   build-native.sh OUT_DIR [TARGETS]
#
# TARGETS: comma-separated, e.g. linux-x86_64,linux-aarch64 (default: this machine's, built with
# the system linker). A list (the `dist` profile passes both) builds every target with
# `cargo zigbuild` against glibc 2.28, the floor streamml ships for; zig and cargo-zigbuild come
# from PyPI into a tools virtualenv under ~/.cache/streamml (no repository .venv needed), and the
# Rust targets are added with rustup. Honours CARGO_TARGET_DIR (default: operators/target).
set -euo pipefail
out_dir=${1:?usage: build-native.sh OUT_DIR [TARGETS]}
targets=${2:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/operators/target}
glibc=2.28

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) echo "build-native.sh: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "build-native.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
lib_of() { case "$1" in darwin-*) echo libstreamml_jni.dylib ;; *) echo libstreamml_jni.so ;; esac; }

if [[ -z "$targets" ]]; then
  (cd "$root/operators" && CARGO_TARGET_DIR=$target_dir cargo build --release --quiet -p streamml-jni)
  mkdir -p "$out_dir/$os-$arch"
  cp "$target_dir/release/$(lib_of "$os-$arch")" "$out_dir/$os-$arch/"
  exit 0
fi

# zig and cargo-zigbuild, pinned by constraints.txt, in a virtualenv of their own.
tools=${STREAMML_TOOLS_DIR:-$HOME/.cache/streamml/tools}
if [[ ! -x "$tools/bin/cargo-zigbuild" || ! -x "$tools/bin/python" ]] || ! "$tools/bin/python" -m ziglang version >/dev/null 2>&1; then
  python3 -m venv "$tools" >&2
  "$tools/bin/python" -m pip install --quiet -c "$root/constraints.txt" ziglang cargo-zigbuild >&2
fi
export PATH="$tools/bin:$PATH"
IFS=, read -r -a wanted <<<"$targets"
for t in "${wanted[@]}"; do
  case "$t" in
    linux-x86_64) triple=x86_64-unknown-linux-gnu ;;
    linux-aarch64) triple=aarch64-unknown-linux-gnu ;;
    *) echo "build-native.sh: cannot build target '$t'; expected linux-x86_64 or linux-aarch64" >&2; exit 1 ;;
  esac
  rustup target add "$triple" >/dev/null 2>&1 || rustup target list --installed | grep -qx "$triple" \
    || { echo "build-native.sh: rustup cannot add $triple" >&2; exit 1; }
  (cd "$root/operators" && CARGO_TARGET_DIR=$target_dir cargo zigbuild --release --quiet -p streamml-jni \
    --target "$triple.$glibc")
  mkdir -p "$out_dir/$t"
  cp "$target_dir/$triple/release/$(lib_of "$t")" "$out_dir/$t/"
done
