#!/usr/bin/env bash
# Cross-builds the privcmd shim for arm64 dom0s (the real-Xen tier, Xen 4.17 arm64 under QEMU).
# Same sources and flags as shim/CMakeLists.txt; the compilers come from Debian's
# gcc-aarch64-linux-gnu and g++-aarch64-linux-gnu, the Node-API headers from node_modules
# (node-api-headers, node-addon-api): Node-API symbols resolve when Node loads the addon, so
# nothing of an arm64 Node is needed here.
#   usage: scripts/cross-build-shim-arm64.sh [OUT]    (default build/arm64/xen_sshm_shim.node)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-build/arm64/xen_sshm_shim.node}
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
cxx=${CROSS_CXX:-aarch64-linux-gnu-g++}
for tool in "$cc" "$cxx"; do
  if ! command -v "$tool" >/dev/null; then
    echo "cross-build-shim-arm64: $tool not found (apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu)" >&2
    exit 127
  fi
done
napi_inc=$(node -p "require('node-api-headers').include_dir")
addon_inc=$(node -p "require('node-addon-api').include_dir")

obj=$(mktemp -d)
trap 'rm -rf "$obj"' EXIT
mkdir -p "$(dirname "$out")"
flags=(-O2 -fPIC -fvisibility=hidden -Wall -Wextra -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS)
"$cc" "${flags[@]}" -std=c11 -c shim/privcmd_sys.c -o "$obj/privcmd_sys.o"
"$cxx" "${flags[@]}" -std=c++17 -I"$napi_inc" -I"$addon_inc" -c shim/addon.cc -o "$obj/addon.o"
"$cxx" -shared -o "$out" "$obj/addon.o" "$obj/privcmd_sys.o"
echo "$out"
