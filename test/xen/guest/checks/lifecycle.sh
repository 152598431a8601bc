# Lifecycle on real Xen with `xen-sshm daemon` running in dom0 (after three-vm; destroys vm1,
# vm2 and vm3):
#   1. xen-sshm destroy vm2 (a borrower): its mapping released, then xl destroy; vm2 is gone
#      from xl list and from the records at once; ID1 stays, ready;
#   2. plain xl destroy vm1 (the owner, as a crash or an administrator would end it) while vm3
#      still maps ID2: the daemon turns ID2 `orphaned` (vm1's own mapping gone, vm3's kept) and
#      releases ID1 (no borrower left); vm3 still reads the bytes vm1 wrote just before dying
#      (Xen keeps the frames while they are mapped);
#   3. xen-sshm destroy vm3 cleans up: no records left (`xen-sshm ls --json`), and with vm3
#      gone nothing holds vm1 any more: it disappears from xl list.
. /xen/lib.sh
d1=$(domid_of vm1) && d2=$(domid_of vm2) && d3=$(domid_of vm3) || fail "vm1, vm2 and vm3 do not all run: three-vm must run first"
for p in ID1/mappings/$d2 ID2/mappings/$d1 ID2/mappings/$d3; do
  xenstore-exists /local/shared_mem/$p 2>/dev/null || fail "no record /local/shared_mem/$p to start with"
done
rec() { xenstore-read "/local/shared_mem/$1" 2>/dev/null; }
absent() { ! xenstore-exists "$1" 2>/dev/null; }

# The daemon, as a service would run it. Its JSON lines: {"time", "type", "trigger", "actions"}.
xen-sshm daemon --json > /tmp/daemon.log 2>&1 &
dpid=$!
trap 'kill $dpid 2>/dev/null' EXIT
start=$(now)
wait_for 90 grep -q '"trigger": "connect"' /tmp/daemon.log \
  || { cat /tmp/daemon.log; fail "xen-sshm daemon did not reconcile at start within 90 s"; }
xentime lifecycle:daemon-ready "$start"

gone() { ! xl list | awk '{ print $2 }' | grep -qx "$1"; }

# 1. A borrower is destroyed with xen-sshm: released, then xl destroy.
start=$(now)
sshm lifecycle-destroy-vm2 destroy vm2 --json || fail "xen-sshm destroy vm2 failed: $(sshm_error lifecycle-destroy-vm2)"
sshm_flat lifecycle-destroy-vm2 | grep -q '"action":"released"' || fail "xen-sshm destroy vm2 did not release its ID1 mapping"
absent /local/shared_mem/ID1/mappings/$d2 || fail "vm2's ID1 mapping still recorded after xen-sshm destroy vm2"
wait_for 60 gone "$d2" || { xl list; fail "vm2 (d$d2) is still in xl list 60 s after xen-sshm destroy vm2"; }
xentime lifecycle:borrower-destroyed "$start"
[ "$(rec ID1/state)" = ready ] || fail "ID1 is '$(rec ID1/state)' after its borrower died, expected ready"
[ "$(rec ID1/mappings/$d1/state)" = mapped ] || fail "vm1's own ID1 mapping is '$(rec ID1/mappings/$d1/state)' after vm2 died"
[ "$(rec ID2/mappings/$d3/state)" = mapped ] || fail "vm3's ID2 mapping changed when vm2 died"
absent /local/domain/$d2/shared_mem || fail "vm2's mirror is still there"

# 2. The owner dies (plain xl destroy) while vm3 maps ID2: the daemon cleans up.
stamp="ID2 before vm1 died $(now | tr -d .)"
hex=$(printf '%s' "$stamp" | od -An -v -tx1 | tr -d ' \n')
out=$(domu_run vm1 60 "xen-memwrite 0x50100000 $hex") || fail "vm1 could not write ID2: $out"
start=$(now)
xl destroy vm1 || fail "xl destroy vm1 failed"
wait_for 60 sh -c "[ \"\$(xenstore-read /local/shared_mem/ID2/state 2>/dev/null)\" = orphaned ]" \
  || { cat /tmp/daemon.log; fail "ID2 is '$(rec ID2/state)' 60 s after its owner's xl destroy, expected orphaned"; }
xentime lifecycle:owner-orphaned "$start"
wait_for 30 absent /local/shared_mem/ID1 || fail "ID1 (no borrower left) is still recorded after its owner died: $(rec ID1/state)"
absent /local/shared_mem/ID2/mappings/$d1 || fail "the dead owner's ID2 mapping is still recorded"
[ "$(rec ID2/mappings/$d3/state)" = mapped ] || fail "vm3's ID2 mapping is '$(rec ID2/mappings/$d3/state)' in the orphaned region, expected mapped"
[ "$(rec ID2/owner)" = "$d1" ] || fail "the orphaned ID2 no longer names its owner d$d1"
echo "xl list after vm1's destroy (vm3 still maps its frames and has it as target):"
xl list
got=$(domu_run vm3 60 "xen-memread 0x50000000 ${#stamp}") || fail "vm3 cannot read the orphaned ID2: $got"
[ "$got" = "$hex" ] || fail "vm3 reads \"$(hex_text "$got")\" in the orphaned ID2, expected \"$stamp\" written by vm1 before it died"

sshm lifecycle-ls ls --json || fail "xen-sshm ls --json failed: $(sshm_error lifecycle-ls)"
sshm_flat lifecycle-ls | grep -q '"id":"ID2"' && sshm_flat lifecycle-ls | grep -q '"state":"orphaned"' \
  || fail "xen-sshm ls --json does not show ID2 orphaned"
sshm_flat lifecycle-ls | grep -q '"id":"ID1"' && fail "xen-sshm ls --json still lists ID1"

# 3. xen-sshm destroy vm3: its ID2 mapping released (the orphaned region goes with it), then
# xl destroy; with vm3 gone, nothing holds vm1.
start=$(now)
sshm lifecycle-destroy-vm3 destroy vm3 --json || fail "xen-sshm destroy vm3 failed: $(sshm_error lifecycle-destroy-vm3)"
sshm_flat lifecycle-destroy-vm3 | grep -q '"action":"released"' || fail "xen-sshm destroy vm3 did not release ID2"
absent /local/shared_mem/ID2 || fail "ID2 is still recorded after xen-sshm destroy vm3: $(xenstore-ls -f /local/shared_mem/ID2 | head -n 3)"
absent /local/domain/$d3/shared_mem/ID2 || fail "vm3's mirror of ID2 is still there after xen-sshm destroy vm3"
sshm lifecycle-ls-after ls --json || fail "xen-sshm ls --json failed: $(sshm_error lifecycle-ls-after)"
sshm_flat lifecycle-ls-after | grep -q '"regions":\[\]' || fail "xen-sshm ls --json still lists regions after xen-sshm destroy vm3"
left=$(xenstore-list /local/shared_mem 2>/dev/null)
[ -z "$left" ] || fail "records left under /local/shared_mem: $left"
wait_for 60 gone "$d3" || { xl list; fail "vm3 (d$d3) is still in xl list 60 s after xen-sshm destroy vm3"; }
wait_for 60 gone "$d1" || { xl list; fail "vm1 (d$d1) still lingers 60 s after its last borrower vm3 was destroyed"; }
xentime lifecycle:owner-freed "$start"

# The daemon saw it all without an error, and stops on SIGTERM.
kill $dpid
wait_for 30 grep -q '"type": "stopped"' /tmp/daemon.log || { cat /tmp/daemon.log; fail "xen-sshm daemon did not stop on SIGTERM"; }
trap - EXIT
cat /tmp/daemon.log
grep -q '"type": "error"' /tmp/daemon.log && fail "the daemon reported an error: $(grep -m1 '"type": "error"' /tmp/daemon.log | cut -c1-160)"
grep -q '"action": "orphaned"' /tmp/daemon.log || fail "the daemon's log does not show ID2 orphaned"
echo "xen-sshm destroy vm2 released and destroyed it in $(time_of lifecycle-destroy-vm2:cli) s; daemon: ID2 orphaned $(time_of lifecycle:owner-orphaned) s after xl destroy vm1," \
  "vm3 still reads it; xen-sshm destroy vm3 ($(time_of lifecycle-destroy-vm3:cli) s) leaves no records; vm1 freed once vm3 went"
