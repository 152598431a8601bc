# Two running domUs share pages through the privcmd backend (no manager): probe1 owns 16 pages
# at 0x70000000, probe2 borrows them at 0x78000000 (after set_target), and bytes written through
# /dev/mem in one guest are read in the other, both ways. Broken variant (XENCHECK_BREAK=1): the
# borrower's window is mapped one page off (a wrong offset); the data check must then fail.
. /xen/lib.sh
shim=$(cat /xen/shim-status)
[ "$shim" = built ] || fail "the arm64 shim is $shim"
offset=0
[ "$XENCHECK_BREAK" = 1 ] && offset=1
node "$XEN_PKG/dist/test/xen/guest/shared-page.js" --owner probe1 --borrower probe2 --offset-pages $offset
