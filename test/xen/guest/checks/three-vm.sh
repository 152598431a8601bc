# The proposal's three-VM scenario on real Xen, set up by `xen-sshm create` once per VM (the
# installed package, in dom0, under Debian's node 18): each is `xl create -p`, apply, `xl
# unpause` in one command. vm1 owns ID1 and ID2, vm2 borrows ID1, vm3 borrows ID2 (with
# set_target consent). The xl configs carry static_shm entries (xl itself ignores the key).
# Bytes written by vm1 at its address are read by vm2 (ID1) and vm3 (ID2) at theirs through
# /dev/mem, and the reverse; `xenstore-ls -f` shows the records. The domUs stay up for
# create-undo, guest-view, large-region and lifecycle.
#
# Broken variant (XENCHECK_BREAK=1, after the real one): vm2's ID1 mapping is released and
# applied again from a config whose window starts one page into the region (offset=0x1000, a
# wrong offset); the same data check must then fail, at ID1's page 0. vm2 keeps that mapping
# (lifecycle only needs its records, guest-view runs before).
. /xen/lib.sh
shim=$(cat /xen/shim-status)
[ "$shim" = built ] || fail "the arm64 shim is $shim"

# vm1's regions sit above the guests' 128 MiB of RAM (0x40000000-0x48000000), as in
# fixtures/config/three-vm/static_shm.
VM1_SHM='static_shm = [ "id=ID1, begin=0x50000000, size=1M, role=owner, prot=rw, cache_policy=ARM_normal", "id=ID2, begin=0x50100000, end=0x50200000, role=owner" ]'
VM2_SHM='static_shm = [ "id=ID1, begin=0x50000000, size=1M, role=borrower" ]'
VM3_SHM='static_shm = [ "id=ID2, begin=0x50000000, end=0x50100000" ]'
# Pages checked in each 1 MiB region: first, middle, last.
PAGES='0 128 255'

if [ "$XENCHECK_BREAK" = 1 ]; then
  for vm in vm1 vm2; do domid_of $vm >/dev/null || fail "$vm does not run: three-vm must run first"; done
  sshm break-release-vm2 release --domain vm2 --id ID1 --json \
    || fail "xen-sshm release --domain vm2 --id ID1 failed: $(sshm_error break-release-vm2)"
  sshm_flat break-release-vm2 | grep -q '"action":"released"' || fail "release of vm2's ID1 did not say released"
  # The wrong offset: vm2's window starts one page into ID1 (and is one page shorter, to fit).
  cfg=$(shm_cfg /tmp/vm2-wrong-offset.cfg vm2 'static_shm = [ "id=ID1, begin=0x50000000, size=0xff000, offset=0x1000, role=borrower" ]')
  sshm break-apply-vm2 apply "$cfg" --domain vm2 --json \
    || fail "xen-sshm apply of the wrong-offset config failed: $(sshm_error break-apply-vm2)"
  sshm_flat break-apply-vm2 | grep -q '"offset":"0x1000"' || fail "vm2's ID1 was not mapped at offset 0x1000"
  shm_cross ID1 vm1 0x50000000 vm2 0x50000000 $PAGES
  echo "vm2 read vm1's bytes through a window mapped at the wrong offset"
  exit 0
fi

# One command per VM, owners first. vm1's 2 MiB need more than xl's 1 MiB of slack above its
# RAM: --raise-maxmem; the borrowers consent to set_target.
start=$(now)
for vm in vm1 vm2 vm3; do
  case $vm in
    vm1) shm=$VM1_SHM; flags=--raise-maxmem ;;
    vm2) shm=$VM2_SHM; flags=--allow-set-target ;;
    vm3) shm=$VM3_SHM; flags=--allow-set-target ;;
  esac
  cfg=$(domu_cfg $vm "$shm")
  sshm create-$vm create "$cfg" $flags --json || fail "xen-sshm create $vm failed: $(sshm_error create-$vm)"
  sshm_flat create-$vm | grep -q '"toolstack":"xl"' && sshm_flat create-$vm | grep -q '"paused":false' \
    || fail "xen-sshm create $vm did not report an xl domain, unpaused"
done
xentime three-vm:create "$start"
d1=$(domid_of vm1); d2=$(domid_of vm2); d3=$(domid_of vm3)
echo "created and unpaused: vm1 d$d1, vm2 d$d2, vm3 d$d3"
[ "$(sshm_flat create-vm1 | grep -o '"action":"created"' | wc -l)" = 2 ] || fail "create vm1 did not create ID1 and ID2"
sshm_flat create-vm1 | grep -q '"maxMemRaised":{' || fail "create vm1 --raise-maxmem did not raise vm1's max memory"
for vm in vm2 vm3; do
  sshm_flat create-$vm | grep -q '"action":"mapped"' || fail "create $vm did not map its region"
  sshm_flat create-$vm | grep -q '"setTarget":"done"' || fail "create $vm did not make set_target($vm -> vm1)"
done

start=$(now)
for vm in vm1 vm2 vm3; do
  state=$(xl list "$vm" | awk -v n="$vm" '$1 == n { print $5 }')
  case "$state" in *p*) fail "$vm is still paused after xen-sshm create (state '$state')" ;; esac
  if ! wait_for 120 domu_ready $vm; then
    tail -n 25 /var/log/xen/console/guest-$vm.log
    fail "$vm did not report ready within 120 s after xen-sshm create (its console log is above)"
  fi
done
xentime three-vm:boot "$start"

# The records, as xenstore-ls -f prints them.
xenstore-ls -f /local/shared_mem > /tmp/three-vm.records 2>&1 || { cat /tmp/three-vm.records; fail "xenstore-ls -f /local/shared_mem failed"; }
cat /tmp/three-vm.records
records_have /tmp/three-vm.records \
  "/local/shared_mem/ID1/owner = \"$d1\"" \
  '/local/shared_mem/ID1/size = "0x100000"' \
  '/local/shared_mem/ID1/state = "ready"' \
  "/local/shared_mem/ID1/mappings/$d1 = \"0x50000000-0x50100000\"" \
  "/local/shared_mem/ID1/mappings/$d1/state = \"mapped\"" \
  "/local/shared_mem/ID1/mappings/$d2 = \"0x50000000-0x50100000\"" \
  "/local/shared_mem/ID1/mappings/$d2/offset = \"0x0\"" \
  "/local/shared_mem/ID1/mappings/$d2/state = \"mapped\"" \
  "/local/shared_mem/ID2/owner = \"$d1\"" \
  '/local/shared_mem/ID2/size = "0x100000"' \
  '/local/shared_mem/ID2/state = "ready"' \
  "/local/shared_mem/ID2/mappings/$d1 = \"0x50100000-0x50200000\"" \
  "/local/shared_mem/ID2/mappings/$d1/state = \"mapped\"" \
  "/local/shared_mem/ID2/mappings/$d3 = \"0x50000000-0x50100000\"" \
  "/local/shared_mem/ID2/mappings/$d3/state = \"mapped\""
grep -q '/lock = ' /tmp/three-vm.records && fail "a lock was left in the records: $(grep '/lock = ' /tmp/three-vm.records | head -n 1)"
for d in $d2 $d3; do
  t=$(xenstore-read /local/domain/$d/target 2>&1)
  [ "$t" = "$d1" ] || fail "/local/domain/$d/target is '$t', expected $d1 (set_target recorded)"
done

# The data: vm1 <-> vm2 through ID1 (same address), vm1 <-> vm3 through ID2 (vm1 has it at
# 0x50100000, vm3 at 0x50000000).
start=$(now)
shm_check ID1 vm1 0x50000000 vm2 0x50000000 $PAGES
shm_check ID2 vm1 0x50100000 vm3 0x50000000 $PAGES
xentime three-vm:data "$start"
echo "vm1 (d$d1) owns ID1+ID2, vm2 (d$d2) borrows ID1, vm3 (d$d3) ID2, each made by one xen-sshm create" \
  "(vm1 $(time_of create-vm1:cli) s, vm2 $(time_of create-vm2:cli) s, vm3 $(time_of create-vm3:cli) s); pages $PAGES cross both ways; records in xenstore"
