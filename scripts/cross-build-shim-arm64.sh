#!/usr/bin/env bash
# Cross-builds the privcmd shim for arm64 dom0s (the real-Xen tier, Xen 4.17 arm64 under QEMU,
# and the package's prebuilds/linux-arm64). Same sources and flags as every build of the package's
# addon: scripts/build-shim.sh. The compilers come from Debian's gcc-aarch64-linux-gnu and
# g++-aarch64-linux-gnu (CROSS_CC / CROSS_CXX override them).
#   usage: scripts/cross-build-shim-arm64.sh [OUT]    (default build/arm64/xen_sshm_shim.node)
set -euo pipefail
cd "$(dirname "$0")/.."
CC_ARM64=${CROSS_CC:-aarch64-linux-gnu-gcc} CXX_ARM64=${CROSS_CXX:-aarch64-linux-gnu-g++} \
  exec scripts/build-shim.sh arm64 "${1:-build/arm64/xen_sshm_shim.node}"
