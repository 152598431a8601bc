#!/usr/bin/env bash
# Builds the guest program guest/xen-sshm-guest.c, static, for arm64 and x86_64 Linux domUs:
#   build/guest/arm64/xen-sshm-guest     (aarch64-linux-gnu-gcc, Debian's gcc-aarch64-linux-gnu)
#   build/guest/x86_64/xen-sshm-guest    (gcc)
# usage: scripts/build-guest.sh [arm64|x86_64]... [--out DIR]   (default: both, into build/guest)
# The compilers can be overridden with CC_ARM64 and CC_X86_64. Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/guest
arches=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    arm64|x86_64) arches+=("$1"); shift ;;
    *) echo "build-guest: unknown argument $1 (arm64, x86_64, --out DIR)" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(arm64 x86_64)

flags=(-std=gnu11 -O2 -static -s -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Iguest)
for arch in "${arches[@]}"; do
  case $arch in
    arm64) cc=${CC_ARM64:-aarch64-linux-gnu-gcc}; pkg=gcc-aarch64-linux-gnu ;;
    x86_64) cc=${CC_X86_64:-gcc}; pkg=gcc ;;
  esac
  if ! command -v "$cc" >/dev/null; then
    echo "build-guest: $cc not found (apt-get install --no-install-recommends $pkg)" >&2
    exit 127
  fi
  mkdir -p "$out/$arch"
  "$cc" "${flags[@]}" -o "$out/$arch/xen-sshm-guest.tmp" guest/xen-sshm-guest.c
  mv "$out/$arch/xen-sshm-guest.tmp" "$out/$arch/xen-sshm-guest"
  echo "$out/$arch/xen-sshm-guest"
done
