# xl create -p of two domUs (PVH, 128 MiB, same kernel, busybox initramfs): both exist, paused.
. /xen/lib.sh
for vm in probe1 probe2; do
  cfg=$(domu_cfg $vm)
  start=$(now)
  out=$(xl create -p "$cfg" 2>&1) || fail "xl create -p $vm failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
  echo "XENTIME domu-create:$vm $(elapsed "$start")"
  state=$(xl list "$vm" | awk -v n="$vm" '$1 == n { print $5 }')
  case "$state" in *p*) ;; *) fail "$vm is not paused after xl create -p (state '$state')" ;; esac
done
echo "created paused: probe1 (domid $(domid_of probe1)), probe2 (domid $(domid_of probe2))"
