# Debian's node (18 on Debian 12, 20 on Debian 13) runs in dom0 and loads this package's code.
. /xen/lib.sh
start=$(now)
v=$(node -e 'process.stdout.write(process.version + " " + process.arch)' 2>&1) || fail "node failed: $v"
echo "XENTIME node-startup $(elapsed "$start")"
case "$v" in v$XEN_NODE_MAJOR.*" arm64") ;; *) fail "expected node v$XEN_NODE_MAJOR on arm64, got '$v'" ;; esac
name=$(cd "$XEN_PKG" && node -e 'process.stdout.write(require("./package.json").name)' 2>&1) \
  || fail "cannot read $XEN_PKG/package.json: $name"
[ "$name" = "xen-sshm" ] || fail "package copy in $XEN_PKG is '$name'"
[ -d "$XEN_PKG/dist" ] || fail "no $XEN_PKG/dist"
echo "node $v runs $name from $XEN_PKG"
