# The reported Xen version selects the hypervisor layer's rules, and real Xen agrees with them
# (hv-release.ts). Needs a free domid below a live domU: two paused domUs, the first destroyed.
. /xen/lib.sh
shim=$(cat /xen/shim-status)
[ "$shim" = built ] || fail "the arm64 shim is $shim"
for vm in hvr-gone hvr-live; do
  out=$(xl create -p "$(domu_cfg $vm)" 2>&1) || { echo "$out"; fail "xl create $vm failed: $(echo "$out" | grep -m1 error)"; }
done
gone=$(domid_of hvr-gone); live=$(domid_of hvr-live)
xl destroy hvr-gone
node "$XEN_PKG/dist/test/xen/guest/hv-release.js" --missing "$gone" --domu "$live" > /tmp/release.out 2>&1
rc=$?
cat /tmp/release.out
xl destroy hvr-live
[ $rc -eq 0 ] || fail "$(tail -n 1 /tmp/release.out)"
tail -n 1 /tmp/release.out
