# The domU agent runs commands inside a guest (used by the guest-view checks): probe1 sees
# /dev/xen/xenbus, reads its own xenstore home over it, and is refused a write to dom0's with
# EACCES (seen by xenbus-req, which prints the daemon's error name).
. /xen/lib.sh
out=$(domu_run probe1 30 'ls /dev/xen/xenbus && xenstore-read name') || fail "agent: $out"
echo "$out" | grep -qx probe1 || fail "probe1 read its name as '$out'"
out=$(domu_run probe1 30 'xenbus-req write /local/domain/0/xencheck-intrusion x; echo rc=$?')
[ "$out" = "$(printf 'ERROR EACCES\nrc=1')" ] || fail "a domU write under dom0's home was not refused with EACCES: $out"
out=$(domu_run probe1 30 'xenbus-req write data/xencheck-own yes && xenbus-req read data/xencheck-own')
[ "$out" = "$(printf 'OK\nyes')" ] || fail "probe1 could not write its own data/: $out"
echo "agent runs in probe1: reads its home over /dev/xen/xenbus, write to dom0's home refused (EACCES)"
