# A large region through `xen-sshm apply` on real Xen, timed (after three-vm): vm1 owns BIG,
# 64 MiB (16,384 pages: apply = populate), vm2 borrows it at another address (apply = map;
# set_target to vm1 is already recorded, so no new consent). Bytes cross at the first and last
# page both ways; then `release --force` of the owner releases both (unmap, then free) and the
# records are gone.
# Figures (XENTIME, also in the detail): each command's wall time (node's start-up under QEMU
# included) and the manager's own, and the hypercalls' time per page (sshm-timing.js).
. /xen/lib.sh
domid_of vm1 >/dev/null && domid_of vm2 >/dev/null || fail "vm1 and vm2 do not run: three-vm must run first"
PAGES=16384
cfg1=$(shm_cfg /tmp/vm1-big.cfg vm1 'static_shm = [ "id=BIG, begin=0x58000000, size=64M, role=owner" ]')
cfg2=$(shm_cfg /tmp/vm2-big.cfg vm2 'static_shm = [ "id=BIG, begin=0x60000000, size=64M, role=borrower" ]')

sshm big-owner apply "$cfg1" --domain vm1 --raise-maxmem --json || fail "xen-sshm apply of BIG to vm1 failed: $(sshm_error big-owner)"
sshm_flat big-owner | grep -q '"action":"created"' && sshm_flat big-owner | grep -q "\"pages\":$PAGES" || fail "apply of BIG to vm1 did not create $PAGES pages"
sshm big-borrower apply "$cfg2" --domain vm2 --json || fail "xen-sshm apply of BIG to vm2 failed: $(sshm_error big-borrower)"
sshm_flat big-borrower | grep -q '"action":"mapped"' && sshm_flat big-borrower | grep -q "\"pages\":$PAGES" || fail "apply of BIG to vm2 did not map $PAGES pages"
sshm_flat big-borrower | grep -q '"setTarget":"recorded"' || fail "vm2's set_target to vm1 was not taken from the records"

shm_check BIG vm1 0x58000000 vm2 0x60000000 0 $((PAGES - 1))

# One release of the owner with --force: the borrower's mapping first (unmap), then the region (free).
sshm big-release release --domain vm1 --id BIG --force --json || fail "xen-sshm release --force of vm1's BIG failed: $(sshm_error big-release)"
[ "$(sshm_flat big-release | grep -o '"action":"released"' | wc -l)" = 2 ] || fail "release --force of BIG did not release both vm2's mapping and vm1's region"
xenstore-exists /local/shared_mem/BIG 2>/dev/null && fail "BIG is still recorded after its release: $(xenstore-ls -f /local/shared_mem/BIG | head -n 5)"
xenstore-exists /local/shared_mem/ID1/mappings/$(domid_of vm2) 2>/dev/null || fail "release of BIG took vm2's ID1 mapping too"

us() { awk -v s="$1" 'BEGIN { if (s == "?") print "?"; else printf "%.1f", s * 1e6 }'; }
echo "64 MiB ($PAGES pages): owner apply $(time_of big-owner:cli) s (manager $(time_of big-owner:apply) s, populate $(time_of big-owner:populate) s =" \
  "$(us "$(time_of big-owner:populate-per-page)") us/page), borrower apply $(time_of big-borrower:cli) s (manager $(time_of big-borrower:apply) s, map" \
  "$(time_of big-borrower:map) s = $(us "$(time_of big-borrower:map-per-page)") us/page); release --force $(time_of big-release:cli) s (unmap $(us "$(time_of big-release:unmap-per-page)"), free $(us "$(time_of big-release:free-per-page)") us/page)"
