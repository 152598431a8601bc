#!/usr/bin/env bash
# Builds the privcmd shim (shim/) for one Linux architecture with a plain toolchain, the way the
# prebuilt binaries of the package are made (scripts/prebuild.sh) and the real-Xen tier's arm64
# addon (scripts/cross-build-shim-arm64.sh).
#   usage: scripts/build-shim.sh ARCH OUT        ARCH: x64 | arm64
#
# The compilers are Debian's triplet-named ones (CC_X64/CXX_X64, CC_ARM64/CXX_ARM64 override them): on an x86_64 machine
# x86_64-linux-gnu-gcc is the native gcc and aarch64-linux-gnu-gcc the cross one
# (gcc-aarch64-linux-gnu); on an arm64 machine the other way round. Node-API symbols resolve when
# Node loads the addon, so nothing of a Node build for ARCH is needed: the headers come from
# node_modules (node-api-headers, node-addon-api), the Node-API version is 8 (Node >= 12.22, one
# binary for Node 18 and 20).
#
# Reproducible: same sources, same compiler, same bytes. Paths are mapped to "." in the output,
# symbols stripped, and the build-id is a hash of the content. libstdc++ is linked dynamically,
# as Node itself is (statically linked, it would ask glibc 2.36 of the machine instead of 2.17):
# the addon needs libc, libgcc_s and libstdc++ of GCC >= 11 (GLIBCXX_3.4.29), as on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:?usage: scripts/build-shim.sh x64|arm64 OUT}
out=${2:?usage: scripts/build-shim.sh x64|arm64 OUT}
case "$arch" in
  x64) triplet=x86_64-linux-gnu; pkgs='gcc g++ (native) or gcc-x86-64-linux-gnu g++-x86-64-linux-gnu' ;;
  arm64) triplet=aarch64-linux-gnu; pkgs='gcc-aarch64-linux-gnu g++-aarch64-linux-gnu (or gcc g++ on arm64)' ;;
  *) echo "build-shim: unknown architecture '$arch' (x64 or arm64)" >&2; exit 2 ;;
esac
ovr=$(echo "$arch" | tr a-z A-Z)
cc_var=CC_$ovr cxx_var=CXX_$ovr
cc=${!cc_var:-$triplet-gcc}
cxx=${!cxx_var:-$triplet-g++}
for tool in "$cc" "$cxx"; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-shim: $tool not found (apt-get install --no-install-recommends $pkgs)" >&2
    exit 127
  fi
done
napi_inc=$(node -p "require('node-api-headers').include_dir")
addon_inc=$(node -p "require('node-addon-api').include_dir")

obj=$(mktemp -d)
trap 'rm -rf "$obj"' EXIT
mkdir -p "$(dirname "$out")"
root=$(pwd)
flags=(-O2 -fPIC -fvisibility=hidden -Wall -Wextra -DNAPI_VERSION=8 -DNAPI_DISABLE_CPP_EXCEPTIONS
  "-ffile-prefix-map=$root=." "-ffile-prefix-map=$obj=." "-ffile-prefix-map=$napi_inc=napi"
  "-ffile-prefix-map=$addon_inc=node-addon-api" -fno-ident)
"$cc" "${flags[@]}" -std=c11 -c shim/privcmd_sys.c -o "$obj/privcmd_sys.o"
"$cxx" "${flags[@]}" -std=c++17 -I"$napi_inc" -I"$addon_inc" -c shim/addon.cc -o "$obj/addon.o"
"$cxx" -shared -s -Wl,--build-id=sha1 -Wl,--hash-style=gnu \
  -o "$out.tmp" "$obj/addon.o" "$obj/privcmd_sys.o"
mv "$out.tmp" "$out"
echo "$out"
