# `xen-sshm create` undoes a domain it cannot finish (after three-vm, vm1 owning ID1): vm4's
# config borrows ID1, but without --allow-set-target apply refuses after `xl create -p` made the
# domain. The command exits 1 naming the apply step and what it undid (release, xl destroy),
# and `xl list` shows no vm4; the records are as before.
. /xen/lib.sh
domid_of vm1 >/dev/null || fail "vm1 does not run: three-vm must run first"
xenstore-ls -f /local/shared_mem > /tmp/create-undo.before 2>&1
cfg=$(domu_cfg vm4 'static_shm = [ "id=ID1, begin=0x50000000, size=1M, role=borrower" ]')
sshm create-vm4 create "$cfg" --json && fail "xen-sshm create of vm4 succeeded without set_target consent"
flat=$(sshm_flat create-vm4)
echo "$flat" | grep -q '"step":"apply"' || fail "the error does not name the apply step: $(sshm_error create-vm4)"
echo "$flat" | grep -q '"code":"EPERM"' || fail "the error is not EPERM: $(sshm_error create-vm4)"
echo "$flat" | grep -q '"undone":\["releaseofd[0-9]*","xldestroy[0-9]*"\]' || fail "the error does not list release and xl destroy as undone: $flat"
xl list
xl list | awk '{ print $1 }' | grep -qx vm4 && fail "vm4 is still in xl list after the failed create"
domid_of vm4 >/dev/null && fail "xl domid vm4 still finds it"
xenstore-ls -f /local/shared_mem > /tmp/create-undo.after 2>&1
cmp -s /tmp/create-undo.before /tmp/create-undo.after || { diff /tmp/create-undo.before /tmp/create-undo.after; fail "the records changed"; }
echo "xen-sshm create vm4 (no set_target consent): exit 1 at step apply, undone (release, xl destroy) in $(time_of create-vm4:cli) s; vm4 gone from xl list, records unchanged"
