# DomU console output reaches dom0 through xenconsoled's per-guest log files.
. /xen/lib.sh
for vm in probe1 probe2; do
  log=/var/log/xen/console/guest-$vm.log
  wait_for 20 grep -q "XENDOMU $vm ready" "$log" \
    || fail "no 'XENDOMU $vm ready' in $log: $(tail -c 300 "$log" 2>&1 | tr '\n' ' ')"
done
echo "guest consoles logged: $(grep -h 'XENDOMU' /var/log/xen/console/guest-probe*.log | tr -d '\r' | tr '\n' ';')"
