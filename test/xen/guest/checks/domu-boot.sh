# Unpaused, both domUs boot their own /init, which writes "ready NAME DOMID" to its xenstore
# data/xencheck through /dev/xen/xenbus. dom0 checks each value names the right domain.
# Broken variant (XENCHECK_BREAK=1): probe1's report is compared with probe2's identity, as a
# wrong mapping would show one domain's data at another's place; the check must then fail.
. /xen/lib.sh
start=$(now)
unpaused=0
for vm in probe1 probe2; do
  # Only once: the broken variant runs after the real one, on the running domUs.
  state=$(xl list "$vm" | awk -v n="$vm" '$1 == n { print $5 }')
  case "$state" in *p*) xl unpause $vm || fail "xl unpause $vm failed"; unpaused=1 ;; esac
done
[ $unpaused = 1 ] && echo "XENTIME domu-unpause $(elapsed "$start")"
for vm in probe1 probe2; do
  if ! wait_for 90 domu_ready $vm; then
    echo "--- /var/log/xen/console/guest-$vm.log (problems and tail) ---"
    grep -i -E 'panic|failed|error|initramfs' /var/log/xen/console/guest-$vm.log | head -n 10
    tail -n 25 /var/log/xen/console/guest-$vm.log
    fail "$vm did not report ready within 90 s (its console log is above)"
  fi
  [ $unpaused = 1 ] && echo "XENTIME domu-boot:$vm $(elapsed "$start")"
done
for vm in probe1 probe2; do
  expect=$vm
  [ "$XENCHECK_BREAK" = 1 ] && [ $vm = probe1 ] && expect=probe2
  d=$(domid_of $expect)
  got=$(xenstore-read /local/domain/$(domid_of $vm)/data/xencheck)
  [ "$got" = "ready $expect $d" ] || fail "$vm reported '$got', expected 'ready $expect $d'"
done
echo "both domUs booted and reported through xenstore in $(elapsed "$start") s"
