# The cross-built arm64 shim loads in dom0 and a xen_version hypercall goes through it.
. /xen/lib.sh
node "$XEN_PKG/dist/test/xen/guest/shim.js"
