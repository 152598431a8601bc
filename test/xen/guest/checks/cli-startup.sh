# The command line's start-up in dom0 under QEMU (issue 15, point 5), the same figures as
# `npm run bench:cli` on the host: the wall time of `node -e 0`, `xenstore-ls` (C), and the
# installed `xen-sshm --version` and `xen-sshm check` of the three-VM configs, in interleaved
# rounds; each figure is the mean of the rounds (XENTIME cli-startup:NAME), the detail gives
# the ratios to `node -e 0`.
. /xen/lib.sh
ROUNDS=${CLI_STARTUP_ROUNDS:-2}
dir=/tmp/cli-startup
mkdir -p $dir
# Copies of fixtures/config/three-vm/static_shared_mem (the configs bench:cli checks).
printf '%s\n' 'name = "vm1"' 'type = "pvh"' 'memory = 128' 'static_shared_mem = ["0x50000000-0x50100000 = ID1", "0x50100000-0x50200000 = ID2"]' > $dir/vm1.cfg
printf '%s\n' 'name = "vm2"' 'type = "pvh"' 'memory = 128' 'static_shared_mem = ["0x50000000-0x50100000 = ID1"]' > $dir/vm2.cfg
printf '%s\n' 'name = "vm3"' 'type = "pvh"' 'memory = 128' 'static_shared_mem = ["0x50000000+1M = ID2"]' > $dir/vm3.cfg

# timed NAME CMD...: runs CMD (output dropped; it must succeed) and adds its wall time to NAME.
timed() {
  local _t_name=$1; shift
  local _t_start; _t_start=$(now)
  "$@" >/dev/null 2>&1 || fail "$* failed"
  echo "$_t_name $(elapsed "$_t_start")" >> $dir/times
}
rm -f $dir/times
i=0
while [ $i -lt "$ROUNDS" ]; do
  timed node node -e 0
  timed xenstore-ls xenstore-ls /local/domain/0
  timed version xen-sshm --version
  timed check xen-sshm check $dir/vm1.cfg $dir/vm2.cfg $dir/vm3.cfg
  i=$((i + 1))
done
awk '{ s[$1] += $2; n[$1]++ } END {
  for (k in s) printf "XENTIME cli-startup:%s %.2f\n", k, s[k] / n[k]
  a = s["node"] / n["node"]
  printf "mean of %d rounds: node -e 0 %.2f s, xenstore-ls %.2f s, xen-sshm --version %.2f s (%.2fx node), xen-sshm check (three VMs) %.2f s (%.2fx node)\n",
    n["node"], a, s["xenstore-ls"] / n["xenstore-ls"], s["version"] / n["version"], s["version"] / n["version"] / a, s["check"] / n["check"], s["check"] / n["check"] / a
}' $dir/times
