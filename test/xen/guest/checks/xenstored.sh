# xenstored answers: xenstore-ls lists dom0's own directory, written by xen-init-dom0.
. /xen/lib.sh
out=$(xenstore-ls /local/domain/0 2>&1) || fail "xenstore-ls failed: $out"
name=$(xenstore-read /local/domain/0/name 2>&1) || fail "xenstore-read name failed: $name"
[ "$name" = "Domain-0" ] || fail "dom0 name is '$name', expected Domain-0"
n=$(xenstore-ls -f / | wc -l)
echo "xenstored answers: $n nodes, dom0 named $name"
