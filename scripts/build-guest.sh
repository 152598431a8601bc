#!/usr/bin/env bash
# Builds the guest side (guest/): the program guest/xen-sshm-guest.c, static, for arm64 and
# x86_64 Linux domUs, and the bare-metal arm64 example (guest/examples/arm64-baremetal) as an
# arm64 Image Xen's toolstack boots:
#   build/guest/arm64/xen-sshm-guest                (aarch64-linux-gnu-gcc, gcc-aarch64-linux-gnu)
#   build/guest/x86_64/xen-sshm-guest               (gcc)
#   build/guest/arm64/xen-sshm-baremetal.Image      (arm64-baremetal)
# usage: scripts/build-guest.sh [arm64|x86_64|arm64-baremetal]... [--out DIR]
#   (default: all three, into build/guest). Compilers: CC_ARM64, CC_X86_64. Warnings are errors.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build/guest
arches=()
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    arm64|x86_64|arm64-baremetal) arches+=("$1"); shift ;;
    *) echo "build-guest: unknown argument $1 (arm64, x86_64, arm64-baremetal, --out DIR)" >&2; exit 2 ;;
  esac
done
[ ${#arches[@]} -gt 0 ] || arches=(arm64 x86_64 arm64-baremetal)

flags=(-std=gnu11 -O2 -static -s -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes -Iguest)
for arch in "${arches[@]}"; do
  case $arch in
    arm64|arm64-baremetal) cc=${CC_ARM64:-aarch64-linux-gnu-gcc}; pkg=gcc-aarch64-linux-gnu ;;
    x86_64) cc=${CC_X86_64:-gcc}; pkg=gcc ;;
  esac
  if ! command -v "$cc" >/dev/null; then
    echo "build-guest: $cc not found (apt-get install --no-install-recommends $pkg)" >&2
    exit 127
  fi
  if [ "$arch" = arm64-baremetal ]; then
    # EL1 with the MMU off: no libc, no unaligned accesses (device memory), no FP registers.
    ex=guest/examples/arm64-baremetal
    objcopy=${cc%gcc}objcopy
    mkdir -p "$out/arm64"
    "$cc" -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -nostdlib -static -fno-pie -no-pie \
      -fno-stack-protector -mstrict-align -mgeneral-regs-only -T "$ex/image.ld" \
      -Wl,--build-id=none -Wl,--no-warn-rwx-segments -Wl,--fatal-warnings \
      -o "$out/arm64/xen-sshm-baremetal.elf" "$ex/start.S" "$ex/main.c"
    "$objcopy" -O binary "$out/arm64/xen-sshm-baremetal.elf" "$out/arm64/xen-sshm-baremetal.Image"
    echo "$out/arm64/xen-sshm-baremetal.Image"
    continue
  fi
  mkdir -p "$out/$arch"
  "$cc" "${flags[@]}" -o "$out/$arch/xen-sshm-guest.tmp" guest/xen-sshm-guest.c
  mv "$out/$arch/xen-sshm-guest.tmp" "$out/$arch/xen-sshm-guest"
  echo "$out/$arch/xen-sshm-guest"
done
