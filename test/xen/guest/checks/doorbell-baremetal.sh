# The bare-metal header (guest/xen-sshm-doorbell.h) on real Xen, after doorbell-guest: bell4 is
# guest/examples/arm64-baremetal (no kernel: an arm64 Image of 17 KiB, EL1, MMU off) borrowing
# DB1 from bell1 through `xen-sshm apply`, which makes bell4's port in bell1 (DB1 has
# doorbell=yes) and writes the mirror keys; bell1 (Linux) writes
# a mailbox into DB1's page 1 (its domid, bell4's port, and bell3's port as a port made for
# another borrower) and waits on bell4's doorbell with xen-sshm-guest. bell4 then binds bell3's
# port (Xen must refuse: -22, EINVAL), binds its own (hvc #0xEA1 EVTCHNOP_bind_interdomain, then
# unmask), rings (EVTCHNOP_send), writes the results into the mailbox and powers off.
# bell1 must get exactly one notification; the mailbox must hold the results. Cleans up: DB1
# released, bell1 and bell3 destroyed.
. /xen/lib.sh
d1=$(domid_of bell1) && d3=$(domid_of bell3) || fail "bell1 and bell3 do not run: doorbell-guest must run first"
[ -f /xen/xen-sshm-baremetal.Image ] || fail "the bare-metal example is not in dom0's image: the guest program is $(cat /xen/guest-status)"

cat > /tmp/bell4.cfg <<CFG
name = "bell4"
type = "pvh"
memory = 16
vcpus = 1
kernel = "/xen/xen-sshm-baremetal.Image"
on_crash = "preserve"
static_shm = [ "id=DB1, begin=0x50000000, size=0x10000, role=borrower" ]
CFG
out=$(xl create -p /tmp/bell4.cfg 2>&1) || fail "xl create -p bell4 failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
d4=$(domid_of bell4)
sshm bell-apply-bell4 apply /tmp/bell4.cfg --domain bell4 --allow-set-target --json || fail "xen-sshm apply bell4 failed: $(sshm_error bell-apply-bell4)"
p4=$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); const e = r.entries.find((x) => x.id === "DB1"); if (!e || !e.port) process.exit(1); process.stdout.write(String(e.port))' < /tmp/sshm-bell-apply-bell4.out) \
  || fail "xen-sshm apply bell4 gave no port: $(sshm_flat bell-apply-bell4)"
[ "$(xc-evtchn status $d1 $p4)" = "unbound $d4" ] || fail "bell1's port $p4 is '$(xc-evtchn status $d1 $p4)', expected 'unbound $d4'"
for kv in "/local/domain/$d1/shared_mem/DB1/doorbells/$d4=$p4" "/local/domain/$d4/shared_mem/DB1/owner=$d1" "/local/domain/$d4/shared_mem/DB1/doorbell=$p4"; do
  [ "$(xenstore-read "${kv%%=*}")" = "${kv#*=}" ] || fail "${kv%%=*} is not ${kv#*=}"
done
echo "xen-sshm apply made port $p4 of bell1 for bell4"
p3=$(xenstore-read /local/domain/$d1/shared_mem/DB1/doorbells/$d3) || fail "bell1's mirror has no doorbell for bell3"

# le64 N: the 8 bytes of N, little-endian, as hex.
le64() { printf '%016x' "$1" | sed 's/\(..\)/\1 /g' | awk '{ for (i = NF; i > 0; i--) printf "%s", $i }'; }
mailbox="$(le64 0x4d425358)$(le64 $d1)$(le64 $p4)$(le64 $p3)$(le64 0)$(le64 0)$(le64 0)$(le64 0)$(le64 0)"
out=$(domu_run bell1 60 "xen-memwrite 0x50001000 $mailbox") || fail "bell1 cannot write the mailbox: $out"
domu_run bell1 30 "xen-sshm-guest wait DB1 --peer $d4 --drain --timeout 120 >/tmp/bm-wait.out 2>/tmp/bm-wait.err & echo started" >/dev/null \
  || fail "bell1 cannot start xen-sshm-guest wait"
wait_for 60 domu_run bell1 10 'grep -q "doorbell: adopted" /tmp/bm-wait.err' || fail "bell1's wait did not adopt port $p4: $(domu_run bell1 10 'cat /tmp/bm-wait.err')"

start=$(now)
xl unpause bell4 || fail "xl unpause bell4 failed"
# bell4 powers off when done: gone from xl list (on_poweroff destroys it).
if ! wait_for 60 sh -c '! xl domid bell4'; then
  state=$(domu_run bell1 30 'xen-memread 0x50001020 8')
  xl destroy bell4
  fail "bell4 was still running 60 s after unpause (mailbox state bytes $state): destroyed"
fi
xentime doorbell:baremetal "$start"
wait_for 60 domu_run bell1 10 'grep -q "^wait:" /tmp/bm-wait.out' || fail "bell1 was not notified by bell4: $(domu_run bell1 10 'cat /tmp/bm-wait.out /tmp/bm-wait.err'); bell4's mailbox words 4-8 (state, other bind, own bind, local port, send): $(domu_run bell1 30 'xen-memread 0x50001020 40')"
got=$(domu_run bell1 10 'cat /tmp/bm-wait.out')
echo "inside bell1: $got"
echo "$got" | grep -q "^wait: 1 notification on port $p4 (from d$d4)" || fail "bell1's wait says '$got'"

# word N of the mailbox, as an unsigned decimal (64-bit words: two 32-bit halves).
raw=$(domu_run bell1 30 'xen-memread 0x50001020 40') || fail "bell1 cannot read the mailbox: $raw"
word() {
  local _w; _w=$(echo "$raw" | cut -c$(( ($1 - 4) * 16 + 1 ))-$(( ($1 - 3) * 16 )))
  local _le; _le=$(echo "$_w" | sed 's/\(..\)/\1 /g' | awk '{ for (i = NF; i > 0; i--) printf "%s", $i }')
  echo "0x$_le"
}
state=$(word 4); other=$(word 5); bind=$(word 6); local_port=$(word 7); ringrc=$(word 8)
echo "bell4's mailbox: state $state, bind of bell3's port $other, bind of its own $bind, local port $local_port, send $ringrc"
[ "$state" = 0x0000000000000004 ] || fail "bell4 stopped at state $state (1 started, 2 tried the other port, 3 bound, 4 rang; 0xbad no mailbox; 0xe00 + class: an exception)"
[ "$other" = 0xffffffffffffffea ] || fail "bell4's bind of bell3's port $p3 gave $other, expected -22 (EINVAL: made for another borrower)"
[ "$bind" = 0x0000000000000000 ] || fail "bell4's bind of its port $p4 gave $bind"
[ "$ringrc" = 0x0000000000000000 ] || fail "bell4's EVTCHNOP_send gave $ringrc"
[ "$local_port" != 0x0000000000000000 ] || fail "bell4 got no local port"
# bell4 is gone: its end closed, bell1's port back to unbound for it; bell3's untouched.
wait_for 10 sh -c "[ \"\$(xc-evtchn status $d1 $p4)\" = 'unbound $d4' ]" || fail "bell1's port $p4 is '$(xc-evtchn status $d1 $p4 2>&1)' after bell4 died"
[ "$(xc-evtchn status $d1 $p3)" = "unbound $d3" ] || fail "bell3's port $p3 is '$(xc-evtchn status $d1 $p3 2>&1)'"

# Clean up: DB1 (bell3's and the dead bell4's mappings first), then the domains.
sshm bell-release1 release --domain bell1 --id DB1 --force --json || fail "xen-sshm release --force of bell1's DB1 failed: $(sshm_error bell-release1)"
for vm in bell3 bell1; do xl destroy $vm || fail "xl destroy $vm failed"; done
# DB1's ports outlived it (kept-ports: dom0 cannot close them) until bell1 died; reconcile forgets them.
kept=$(xenstore-ls /local/shared_mem/kept-ports/$d1 2>/dev/null | tr '\n' ' ')
sshm bell-reconcile reconcile --json || fail "xen-sshm reconcile failed: $(sshm_error bell-reconcile)"
! xenstore-exists /local/shared_mem/kept-ports || fail "kept ports left after bell1 died: $(xenstore-ls /local/shared_mem/kept-ports | tr '\n' ' ')"
echo "bell1's kept ports before it died: ${kept:-none}; forgotten by reconcile after it died"
echo "bare-metal bell4 (d$d4): bind of a port made for bell3 -> -22 (EINVAL), its own port $p4 bound (local $((local_port))) and rung: bell1 got 1 notification; bell4 powered off"
