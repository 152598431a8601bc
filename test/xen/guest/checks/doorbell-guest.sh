# The guest program (guest/xen-sshm-guest.c) on real Xen, with the doorbells the manager makes
# (docs/doorbells.md): bell1 owns region DB1 (64 KiB, doorbell=yes, through `xen-sshm apply`),
# bell2 and bell3 borrow it. `xen-sshm apply` of each borrower allocates its port in bell1
# (EVTCHNOP_alloc_unbound {dom = bell1, remote_dom = borrower}), records it under
# /local/shared_mem/DB1/ports/<borrower> and writes the mirror keys:
#   /local/domain/<bell1>/shared_mem/DB1/doorbells/<borrower> = <port>
#   /local/domain/<borrower>/shared_mem/DB1/owner = <bell1>, .../doorbell = <port>
# (xc-evtchn only reads the ports' state from dom0, beside `xen-sshm ls`.)
# Then, inside the domUs (Debian 12's kernel 6.1, xen-evtchn loaded; xen-privcmd as below):
#  1. `info` reads each mirror over /dev/xen/xenbus; the owner with privcmd loaded as by
#     default cannot adopt its port on 6.1 (no BIND_STATIC; XSA-482 restricts privcmd) and says
#     so; privcmd is then reloaded with unrestricted=1;
#  2. bell3, binding the port made for bell2 (by number), is refused by Xen (EINVAL) and says so;
#  3. with its own port, bell3 rings and bell1 (`wait --drain`) gets exactly one notification;
#  4. bell1 and bell2 play 1,000 ping-pongs (sequence numbers through DB1's page 0): zero lost,
#     zero out of order; median and p99 round trip in the detail;
#  5. bell2's DB1 is released (`xen-sshm release`): its mirror is gone (info: ENOENT), the
#     owner's port stays unbound for bell2 (dom0 cannot close it), `xen-sshm ls` shows it kept
#     with its live state, bell2 can still bind it by number, and bell2 applied again gets the
#     same port back (no new allocation).
# After each step dom0 reads the ports' state (EVTCHNOP_status) to see both ends left as dom0
# made them. bell2 is destroyed at the end; bell1 and bell3 stay for doorbell-baremetal.
. /xen/lib.sh
[ "$(cat /xen/shim-status)" = built ] || fail "the arm64 shim is $(cat /xen/shim-status)"
[ "$(cat /xen/guest-status 2>/dev/null)" = built ] || fail "the guest program is $(cat /xen/guest-status 2>/dev/null || echo 'not in this image')"
command -v xc-evtchn >/dev/null || fail "xc-evtchn is not in dom0's image"
# Debian's arm64 Xen has XSM, whose default on Arm is SILO: no event channel between two domUs
# (docs/doorbells.md "XSM"). The tier boots it with xsm=dummy (test/xen/boot.ts).
xencmd=$(xl info | sed -n 's/^xen_commandline *: //p')
case " $xencmd " in *" xsm=dummy "*) ;; *) fail "Xen's command line '$xencmd' lacks xsm=dummy: under XSM SILO (Arm's default) domUs get no event channels between them" ;; esac

OWNER_SHM='static_shm = [ "id=DB1, begin=0x50000000, size=0x10000, role=owner, doorbell=yes" ]'
BORROWER_SHM='static_shm = [ "id=DB1, begin=0x50000000, size=0x10000, role=borrower" ]'
COUNT=1000

start=$(now)
for vm in bell1 bell2 bell3; do
  if [ $vm = bell1 ]; then shm=$OWNER_SHM; else shm=$BORROWER_SHM; fi
  cfg=$(domu_cfg $vm "$shm")
  out=$(xl create -p "$cfg" 2>&1) || fail "xl create -p $vm failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
done
d1=$(domid_of bell1); d2=$(domid_of bell2); d3=$(domid_of bell3)
sshm bell-apply1 apply /tmp/bell1.cfg --domain bell1 --raise-maxmem --json || fail "xen-sshm apply bell1 failed: $(sshm_error bell-apply1)"
for vm in bell2 bell3; do
  sshm bell-apply-$vm apply /tmp/$vm.cfg --domain $vm --allow-set-target --json || fail "xen-sshm apply $vm failed: $(sshm_error bell-apply-$vm)"
done
xl unpause bell1 && xl unpause bell2 && xl unpause bell3 || fail "xl unpause failed"
for vm in bell1 bell2 bell3; do
  if ! wait_for 120 domu_ready $vm; then
    tail -n 25 /var/log/xen/console/guest-$vm.log
    fail "$vm did not report ready within 120 s after unpause (its console log is above)"
  fi
  # Every guest needs xen-evtchn. privcmd: bell1 (owner) gets it as Debian loads it first (since
  # XSA-482 a domU's privcmd refuses hypercalls), bell3 unrestricted (its refusal names why),
  # bell2 (a borrower) none at all.
  case $vm in
    bell1) mods='insmod /lib/modules/xen/xen-privcmd.ko' ;;
    bell2) mods='true' ;;
    bell3) mods='insmod /lib/modules/xen/xen-privcmd.ko unrestricted=1' ;;
  esac
  out=$(domu_run $vm 30 "insmod /lib/modules/xen/xen-evtchn.ko && $mods && ls /dev/xen/evtchn && uname -r") \
    || fail "$vm cannot load its Xen modules: $out"
  kernel=$(echo "$out" | tail -n 1)
done
xentime doorbell:setup "$start"
echo "bell1 d$d1 owns DB1, bell2 d$d2 and bell3 d$d3 borrow it; domU kernel $kernel; Xen's command line: $xencmd"

# The ports xen-sshm apply made: in its --json result, in the records, in the mirrors.
port_of() { node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); const e = r.entries.find((x) => x.id === "DB1"); if (!e || !e.port) process.exit(1); process.stdout.write(String(e.port))' < /tmp/sshm-bell-apply-$1.out; }
p2=$(port_of bell2) || fail "xen-sshm apply bell2 gave no port: $(sshm_flat bell-apply-bell2)"
p3=$(port_of bell3) || fail "xen-sshm apply bell3 gave no port: $(sshm_flat bell-apply-bell3)"
for kv in "/local/shared_mem/DB1/doorbell=yes" "/local/shared_mem/DB1/ports/$d2=$p2" "/local/shared_mem/DB1/ports/$d3=$p3" \
  "/local/domain/$d1/shared_mem/DB1/doorbells/$d2=$p2" "/local/domain/$d1/shared_mem/DB1/doorbells/$d3=$p3" \
  "/local/domain/$d2/shared_mem/DB1/owner=$d1" "/local/domain/$d2/shared_mem/DB1/doorbell=$p2" \
  "/local/domain/$d3/shared_mem/DB1/owner=$d1" "/local/domain/$d3/shared_mem/DB1/doorbell=$p3"; do
  got=$(xenstore-read "${kv%%=*}" 2>&1)
  [ "$got" = "${kv#*=}" ] || fail "${kv%%=*} is '$got', expected '${kv#*=}'"
done
echo "xen-sshm apply made port $p2 of bell1 for bell2 and port $p3 for bell3 (records and mirrors written)"
# port_is ROLE PORT EXPECTED: EVTCHNOP_status of bell1's PORT, from dom0.
port_is() {
  local _got; _got=$(xc-evtchn status $d1 $2 2>&1)
  [ "$_got" = "$3" ] || fail "$1: bell1's port $2 is '$_got', expected '$3'"
  echo "$1: bell1's port $2 is $_got"
}
port_is allocated $p2 "unbound $d2"
port_is allocated $p3 "unbound $d3"
sshm bell-ls1 ls || fail "xen-sshm ls failed: $(sshm_error bell-ls1)"
grep -qF "DB1: port $p2 of bell1 (d$d1) for bell2 (d$d2): unbound, for d$d2" /tmp/sshm-bell-ls1.out || fail "xen-sshm ls does not show port $p2 unbound for bell2"

# 1. Each guest reads its mirror over /dev/xen/xenbus.
out=$(domu_run bell2 30 'xen-sshm-guest info DB1') || fail "bell2: xen-sshm-guest info DB1 failed: $out"
echo "inside bell2: xen-sshm-guest info DB1"; echo "$out"
for l in "domid $d2" 'role borrower' 'begin 0x50000000' 'size 0x10000' 'offset 0x0' 'prot rw' "owner $d1" "doorbell $p2"; do
  echo "$out" | grep -qxF "$l" || fail "bell2's info lacks the line '$l'"
done
out=$(domu_run bell1 30 'xen-sshm-guest info DB1') || fail "bell1: xen-sshm-guest info DB1 failed: $out"
echo "inside bell1: xen-sshm-guest info DB1"; echo "$out"
echo "$out" | grep -qxF 'role owner' || fail "bell1's info does not say role owner"
for b in "$d2=$p2" "$d3=$p3"; do
  echo "$out" | grep '^doorbells ' | tr ' ' '\n' | grep -qxF "$b" || fail "bell1's info lacks the doorbell $b"
done

# 1b. The owner with privcmd as loaded by default: without IOCTL_EVTCHN_BIND_STATIC (Linux < 6.5)
# the fallback's hypercalls are refused (XSA-482), and the program says what it needs. Then
# bell1 gets privcmd with unrestricted=1 for the rest.
out=$(domu_run bell1 30 "xen-sshm-guest wait DB1 --peer $d3 --timeout 3; echo \"exit \$?\"")
echo "inside bell1 (privcmd restricted): xen-sshm-guest wait DB1 --peer $d3"; echo "$out"
case "$out" in
  *"lacks IOCTL_EVTCHN_BIND_STATIC"*"XSA-482"*) restricted="no BIND_STATIC, restricted privcmd: refused, named" ;;
  *"with IOCTL_EVTCHN_BIND_STATIC"*) restricted="BIND_STATIC: no privcmd needed" ;;
  *) fail "bell1 with a restricted privcmd says '$(echo "$out" | head -n 1)'" ;;
esac
port_is restricted-owner $p3 "unbound $d3"
out=$(domu_run bell1 30 'rmmod xen_privcmd && insmod /lib/modules/xen/xen-privcmd.ko unrestricted=1 && ls /dev/xen/privcmd') \
  || fail "bell1 cannot reload xen-privcmd with unrestricted=1: $out"

# 2. bell3 binds the port made for bell2: Xen refuses, the program says why.
out=$(domu_run bell3 30 "xen-sshm-guest notify DB1 --owner $d1 --port $p2; echo \"exit \$?\"")
echo "inside bell3: xen-sshm-guest notify DB1 --owner $d1 --port $p2 (the port made for bell2)"; echo "$out"
want="xen-sshm-guest: Xen refused to bind port $p2 of d$d1 (EINVAL): port $p2 of d$d1 was made for d$d2, not for this domain (d$d3)"
echo "$out" | grep -qxF "$want" || fail "bell3's refused bind printed '$(echo "$out" | head -n 1)', expected '$want'"
echo "$out" | grep -qx 'exit 1' || fail "bell3's refused bind did not exit 1"
port_is refused $p2 "unbound $d2"

# 3. bell3 with its own port (from its mirror) rings once; bell1 waits (events pending at bind drained first).
domu_run bell1 30 "xen-sshm-guest wait DB1 --peer $d3 --drain --timeout 120 >/tmp/wait.out 2>/tmp/wait.err & echo started" >/dev/null \
  || fail "bell1 cannot start xen-sshm-guest wait"
wait_for 60 domu_run bell1 10 'grep -q "doorbell: adopted" /tmp/wait.err' || fail "bell1's wait did not adopt port $p3: $(domu_run bell1 10 'cat /tmp/wait.err')"
adopt=$(domu_run bell1 10 'grep "doorbell: adopted" /tmp/wait.err')
echo "inside bell1: $adopt"
port_is adopted $p3 "unbound $d3"
out=$(domu_run bell3 30 'xen-sshm-guest notify DB1') || fail "bell3: xen-sshm-guest notify DB1 failed: $out"
echo "inside bell3: $out"
wait_for 60 domu_run bell1 10 'grep -q "^wait:" /tmp/wait.out' || fail "bell1 was not notified: $(domu_run bell1 10 'cat /tmp/wait.out /tmp/wait.err')"
out=$(domu_run bell1 10 'cat /tmp/wait.out')
echo "inside bell1: $out"
echo "$out" | grep -q "^wait: 1 notification on port $p3 (from d$d3)" || fail "bell1's wait says '$out'"
# Both gone: bell3's end closed, bell1's re-created port put back unbound for bell3.
wait_for 10 sh -c "[ \"\$(xc-evtchn status $d1 $p3)\" = 'unbound $d3' ]"
port_is after-wait $p3 "unbound $d3"

# 4. 1,000 ping-pongs between bell1 (responder) and bell2 (--lead) through DB1's page 0.
domu_run bell1 30 "xen-sshm-guest ping-pong DB1 --peer $d2 --count $COUNT --timeout 60 >/tmp/pp.out 2>/tmp/pp.err & echo started" >/dev/null \
  || fail "bell1 cannot start the ping-pong responder"
wait_for 60 domu_run bell1 10 'grep -q "responder ready" /tmp/pp.err' || fail "bell1's responder is not ready: $(domu_run bell1 10 'cat /tmp/pp.err')"
port_is responder $p2 "unbound $d2"
start=$(now)
lead=$(domu_run bell2 300 "xen-sshm-guest ping-pong DB1 --lead --count $COUNT --timeout 60 2>&1") \
  || fail "bell2's ping-pong failed: $(echo "$lead" | tail -n 1)"
xentime doorbell:ping-pong "$start"
echo "inside bell2:"; echo "$lead"
wait_for 60 domu_run bell1 10 'grep -q "^ping-pong" /tmp/pp.out' || fail "bell1's responder did not finish: $(domu_run bell1 10 'cat /tmp/pp.out /tmp/pp.err')"
resp=$(domu_run bell1 10 'cat /tmp/pp.err /tmp/pp.out')
echo "inside bell1:"; echo "$resp"
summary=$(echo "$lead" | grep "^ping-pong DB1: $COUNT round trips with d$d1 over port [0-9]*, 0 lost, 0 out of order") \
  || fail "bell2's ping-pong summary is '$(echo "$lead" | tail -n 1)'"
echo "$resp" | grep -q "^ping-pong DB1: answered $COUNT pings from d$d2 over port $p2, 0 lost, 0 out of order" \
  || fail "bell1's ping-pong summary is '$(echo "$resp" | tail -n 1)'"
median=$(echo "$summary" | sed -n 's/.*median \([0-9.]*\) us.*/\1/p')
p99=$(echo "$summary" | sed -n 's/.*p99 \([0-9.]*\) us.*/\1/p')
mean=$(echo "$summary" | sed -n 's/.*mean \([0-9.]*\) us.*/\1/p')
spurious=$(echo "$summary" | sed -n 's/.* \([0-9]*\) spurious wakeups.*/\1/p')
wait_for 10 sh -c "[ \"\$(xc-evtchn status $d1 $p2)\" = 'unbound $d2' ]"
port_is after-ping-pong $p2 "unbound $d2"

# 5. bell2's DB1 released: what bell2 sees of the doorbell afterwards.
sshm bell-release2 release --domain bell2 --id DB1 --json || fail "xen-sshm release of bell2's DB1 failed: $(sshm_error bell-release2)"
out=$(domu_run bell2 30 'xen-sshm-guest info DB1; echo "exit $?"')
echo "inside bell2 after release: xen-sshm-guest info DB1"; echo "$out"
echo "$out" | grep -q "^xen-sshm-guest: no region DB1 in this domain's mirror: /local/domain/$d2/shared_mem/DB1 does not exist (ENOENT)" \
  || fail "bell2 after release: info says '$(echo "$out" | head -n 1)'"
port_is released $p2 "unbound $d2"
[ "$(xenstore-read /local/shared_mem/DB1/ports/$d2)" = "$p2" ] || fail "bell2's port is no longer recorded after its release"
sshm bell-ls2 ls --json || fail "xen-sshm ls --json failed: $(sshm_error bell-ls2)"
sshm_flat bell-ls2 | grep -qF "{\"id\":\"DB1\",\"owner\":$d1,\"borrower\":$d2,\"port\":$p2,\"kept\":true,\"live\":{\"state\":\"unbound\",\"remoteDom\":$d2}}" \
  || fail "xen-sshm ls --json does not show bell2's port kept and unbound: $(sshm_flat bell-ls2 | grep -o '"ports":.*')"
sshm bell-ls3 ls || fail "xen-sshm ls failed: $(sshm_error bell-ls3)"
out=$(domu_run bell2 30 "xen-sshm-guest notify DB1 --owner $d1 --port $p2; echo \"exit \$?\"")
echo "inside bell2 after release: xen-sshm-guest notify DB1 --owner $d1 --port $p2"; echo "$out"
echo "$out" | grep -qx 'exit 0' || fail "bell2 after release could not bind bell1's port $p2 by number: $(echo "$out" | head -n 1)"
port_is released-rebound $p2 "unbound $d2"
# Applied again, bell2 gets the same port back: nothing new allocated in bell1.
sshm bell-reapply2 apply /tmp/bell2.cfg --domain bell2 --allow-set-target --json || fail "xen-sshm apply bell2 again failed: $(sshm_error bell-reapply2)"
again=$(node -e 'const r = JSON.parse(require("fs").readFileSync(0, "utf8")); process.stdout.write(String(r.entries[0].port))' < /tmp/sshm-bell-reapply2.out)
[ "$again" = "$p2" ] || fail "bell2 applied again got port '$again', not its kept port $p2"
[ "$(xenstore-read /local/domain/$d2/shared_mem/DB1/doorbell)" = "$p2" ] || fail "bell2's mirror after the re-apply does not name port $p2"
sshm bell-release2b release --domain bell2 --id DB1 --json || fail "xen-sshm release of bell2's DB1 failed: $(sshm_error bell-release2b)"

# bell1 and bell3 stay for doorbell-baremetal, which cleans up; bell2 is done.
xl destroy bell2 || fail "xl destroy bell2 failed"
# Figures in seconds (result.json keeps them whole); the detail line holds at most 240 characters.
for f in median p99 mean; do eval "v=\$$f"; echo "XENTIME doorbell:rtt-$f $(awk -v u="$v" 'BEGIN { printf "%.7f", u / 1e6 }')"; done
case "$adopt" in *re-creating*) how="re-created (kernel $kernel lacks BIND_STATIC)" ;; *) how="BIND_STATIC" ;; esac
echo "$COUNT ping-pongs (port $p2 from xen-sshm apply): 0 lost, 0 out of order, $spurious spurious; rtt median $median us, p99 $p99 us;" \
  "owner port $how; bell2's port refused to bell3 (EINVAL); released: kept, bound by number, reused"
