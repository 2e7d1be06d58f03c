#!/usr/bin/env bash
# Build the JNI library (operators/jni) with cargo and copy it to
# OUT_DIR/<os>-<arch>/, where NativeLibraryLoader looks for it in the jar.
# Honours CARGO_TARGET_DIR (default: operators/target).
set -euo pipefail
out_dir=${1:?usage: build-native.sh OUT_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/operators/target}
(cd "$root/operators" && CARGO_TARGET_DIR=$target_dir cargo build --release --quiet -p streamml-jni)
case "$(uname -s)" in
  Linux) os=linux; lib=libstreamml_jni.so ;;
  Darwin) os=darwin; lib=libstreamml_jni.dylib ;;
  *) echo "build-native.sh: unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) echo "build-native.sh: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
mkdir -p "$out_dir/$os-$arch"
cp "$target_dir/release/$lib" "$out_dir/$os-$arch/$lib"
