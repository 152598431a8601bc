# The hypervisor layer's backend contract (test/hypervisor/contract.ts) on the real `privcmd`
# backend, with two fresh domUs: hv-owner and hv-borrower. Fresh because set_target is once per
# domain and forever. The owner's max memory is raised for the large region (66,048 pages,
# 258 MiB: over one 65,535-page add_to_physmap_batch). Regions sit at 0x60000000 in both guests:
# inside Xen's guest RAM bank, above their 128 MiB of RAM, so nothing of theirs is there.
# The guests' own view goes through their agents and /dev/mem (guest-mem.sh).
. /xen/lib.sh
shim=$(cat /xen/shim-status)
[ "$shim" = built ] || fail "the arm64 shim is $shim"
for vm in hv-owner hv-borrower; do
  out=$(xl create "$(domu_cfg $vm)" 2>&1) || { echo "$out"; fail "xl create $vm failed: $(echo "$out" | grep -m1 error)"; }
done
for vm in hv-owner hv-borrower; do
  wait_for 90 domu_ready $vm || fail "$vm did not report ready within 90 s"
done
owner=$(domid_of hv-owner); borrower=$(domid_of hv-borrower)
# 400 MiB of max memory: 128 of RAM, 258 for the large region, the rest for the small ones.
# Neither xl route works on Arm (see xc-setmaxmem.c), so libxenctrl does it.
xc-setmaxmem "$owner" $((400 * 1024)) || fail "cannot raise hv-owner's max memory to 400 MiB"
# The owner's xenstore event channel: bound interdomain by xenstored in dom0 (the contract's
# EVTCHNOP_status of an interdomain port).
store_port=$(xenstore-read /local/domain/$owner/store/port) || fail "no store/port for hv-owner"
start=$(now)
node "$XEN_PKG/dist/test/hypervisor/run-contract.js" --backend privcmd \
  --owner "$owner" --borrower "$borrower" --owner-gfn 0x60000 --borrower-gfn 0x60000 \
  --interdomain-port "$store_port" --interdomain-remote 0 \
  --guest-cmd 'sh /xen/guest-mem.sh' > /tmp/contract.out 2>&1
rc=$?
cat /tmp/contract.out
echo "XENTIME hypervisor-contract $(elapsed "$start")"
# The contract logs "populated N pages in T ms" and "mapped N pages in T ms": keep them as figures.
sed -n 's/.*\(populated\|mapped\) \([0-9]*\) pages in \([0-9]*\) ms.*/XENTIME hv-\1:\2-pages \3/p' /tmp/contract.out \
  | awk '{ printf "%s %s %.3f\n", $1, $2, $3 / 1000 }'
xl destroy hv-borrower; xl destroy hv-owner
summary=$(grep '^# .* passed, .* failed' /tmp/contract.out | tail -n 1)
[ $rc -eq 0 ] || fail "privcmd contract failed (exit $rc): ${summary:-$(tail -n 1 /tmp/contract.out)}; $(grep -m1 '^not ok' /tmp/contract.out)"
echo "privcmd backend contract on Xen $(xl info | sed -n 's/^xen_version *: //p') arm64 (owner $owner, borrower $borrower): ${summary#\# }"
