# The hypervisor contract's view from inside a guest (test/hypervisor/run-contract.ts
# --guest-cmd): reads or writes guest-physical memory of domain $DOMID at page $GFN (hex)
# through the domU's agent. MODE read prints LENGTH bytes as hex; MODE write stores DATA (hex).
. /xen/lib.sh
name=$(xl domname "$DOMID") || { echo "no domain $DOMID" >&2; exit 1; }
addr=$(printf '0x%x' $((0x$GFN * 4096)))
case "$MODE" in
  read) domu_run "$name" 60 "xen-memread $addr $LENGTH" ;;
  write) domu_run "$name" 60 "xen-memwrite $addr $DATA" ;;
  *) echo "MODE $MODE: read or write" >&2; exit 2 ;;
esac
