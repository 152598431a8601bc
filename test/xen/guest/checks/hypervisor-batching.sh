# Issue 15's real-Xen figures through the hypervisor layer (hv-batching.ts): a 64 MiB region
# populated with 2 MiB extents and with 4 KiB ones, mapped into a borrower and unmapped, five
# times, with two fresh domUs (hvb-owner, hvb-borrower; set_target is once per domain). The
# figures (µs per page, mean and worst run) are XENTIME lines in the tier's output.
. /xen/lib.sh
shim=$(cat /xen/shim-status)
[ "$shim" = built ] || fail "the arm64 shim is $shim"
for vm in hvb-owner hvb-borrower; do
  out=$(xl create -p "$(domu_cfg $vm)" 2>&1) || { echo "$out"; fail "xl create $vm failed: $(echo "$out" | grep -m1 error)"; }
done
owner=$(domid_of hvb-owner); borrower=$(domid_of hvb-borrower)
# 128 MiB of RAM and room for the 64 MiB region.
xc-setmaxmem "$owner" $((200 * 1024)) || fail "cannot raise hvb-owner's max memory to 200 MiB"
node "$XEN_PKG/dist/test/xen/guest/hv-batching.js" --owner "$owner" --borrower "$borrower" --runs 5 > /tmp/batching.out 2>&1
rc=$?
cat /tmp/batching.out
xl destroy hvb-borrower; xl destroy hvb-owner
[ $rc -eq 0 ] || fail "$(tail -n 1 /tmp/batching.out)"
tail -n 1 /tmp/batching.out
