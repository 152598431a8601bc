# The package in dom0 is what a user installs: `npm install -g` of the packed tarball for
# linux-arm64 (done on the host with npm's --os/--cpu: dom0 has no npm), in an image with no
# compiler. The commands are on PATH, nothing was built, and the addon that loads is the
# shipped prebuilt one (installed.js says which file, and checks it against the package's
# manifest), with a xen_version hypercall through it.
. /xen/lib.sh
status=$(cat /xen/shim-status)
[ "$status" = built ] || fail "the package was not packed: $status"
for tool in cc gcc g++ c++ make cmake; do
  command -v "$tool" >/dev/null 2>&1 && fail "dom0 has a build tool: $tool ($(command -v "$tool"))"
done
[ -x /usr/local/bin/xen-sshm ] && [ -x /usr/local/bin/xs-trace ] || fail "xen-sshm and xs-trace are not in /usr/local/bin"
[ -e "$XEN_SSHM_PKG/build" ] && fail "the installed package has a build/ folder: something was compiled"
start=$(now)
v=$(xen-sshm --version 2>&1) || fail "xen-sshm --version failed: $v"
xentime installed:version "$start"
want=$(node -e 'process.stdout.write(require(process.argv[1] + "/package.json").version)' "$XEN_SSHM_PKG")
[ "$v" = "$want" ] || fail "xen-sshm --version says '$v', the installed package.json '$want'"
node "$XEN_PKG/dist/test/xen/guest/installed.js" "$XEN_SSHM_PKG"
