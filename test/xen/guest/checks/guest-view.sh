# A guest's view of static shared memory (after three-vm): inside vm2, Debian's xenstore-utils
# over /dev/xen/xenbus (a domU's only way to xenstore) read vm2's mirror
# /local/domain/<vm2>/shared_mem/ID1 (role, begin, size, offset, prot), matching dom0's record
# of vm2's mapping; and every attempt to change the region's records is refused with EACCES:
# writes and rm under /local/shared_mem/ID1 (dom0's alone: n0), a write to the mirror (n0 r<vm2>).
# Reading /local/shared_mem itself is refused too. dom0 then sees the records unchanged.
. /xen/lib.sh
d1=$(domid_of vm1) && d2=$(domid_of vm2) || fail "vm1 and vm2 do not run: three-vm must run first"
mirror=/local/domain/$d2/shared_mem/ID1

out=$(domu_run vm2 30 "xenstore-ls -f $mirror") || fail "vm2 cannot list its mirror with xenstore-ls: $out"
echo "inside vm2: xenstore-ls -f $mirror"
echo "$out"
echo "$out" > /tmp/guest-view.mirror
records_have /tmp/guest-view.mirror \
  "$mirror/role = \"borrower\"" \
  "$mirror/begin = \"0x50000000\"" \
  "$mirror/size = \"0x100000\"" \
  "$mirror/offset = \"0x0\"" \
  "$mirror/prot = \"rw\""
# The same through xenstore-read, with a path relative to the guest's home.
out=$(domu_run vm2 30 'xenstore-read shared_mem/ID1/begin shared_mem/ID1/size') || fail "vm2: xenstore-read of its mirror failed: $out"
[ "$out" = "$(printf '0x50000000\n0x100000')" ] || fail "vm2 reads begin/size of its mirror as '$(echo $out)'"
# What dom0 recorded for vm2's mapping agrees with the mirror.
range=$(xenstore-read /local/shared_mem/ID1/mappings/$d2)
[ "$range" = 0x50000000-0x50100000 ] || fail "dom0's record of vm2's ID1 mapping is '$range'"

# Changes from the guest: each must be refused by xenstored with EACCES.
attempts="write /local/shared_mem/ID1/owner $d2
write /local/shared_mem/ID1/mappings/$d2/state unmapping
write /local/shared_mem/ID1/mappings/$d2 0x40000000-0x40100000
rm /local/shared_mem/ID1
write /local/shared_mem/ID3 x
write $mirror/begin 0x40000000
rm $mirror
read /local/shared_mem/ID1/owner"
cmd=$(echo "$attempts" | sed 's/^/xenbus-req /; s/$/;/' | tr '\n' ' ')
out=$(domu_run vm2 60 "$cmd true") || fail "vm2's agent failed: $out"
echo "inside vm2, each refused:"
i=0
echo "$attempts" | while read -r a; do
  i=$((i + 1))
  got=$(echo "$out" | sed -n "${i}p")
  echo "  xenbus-req $a -> $got"
  [ "$got" = "ERROR EACCES" ] || { echo "vm2: xenbus-req $a answered '$got', expected ERROR EACCES" > /tmp/guest-view.bad; exit 1; }
done || fail "$(cat /tmp/guest-view.bad)"

# Nothing changed.
[ "$(xenstore-read /local/shared_mem/ID1/owner)" = "$d1" ] || fail "ID1's owner changed"
[ "$(xenstore-read /local/shared_mem/ID1/mappings/$d2/state)" = mapped ] || fail "vm2's ID1 state changed"
[ "$(xenstore-read $mirror/begin)" = 0x50000000 ] || fail "vm2's mirror changed"
xenstore-exists /local/shared_mem/ID3 2>/dev/null && fail "vm2 created /local/shared_mem/ID3"
echo "vm2 (d$d2) reads its mirror over /dev/xen/xenbus; its 8 attempts on the records (write, rm, create, mirror write, read) are refused with EACCES"
