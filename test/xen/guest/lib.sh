# Shell helpers for the dom0 check scripts (sourced; busybox sh). Every check script runs with:
#   XENCHECK_NAME   its name in /xen/checks.list
#   XENCHECK_BREAK  1 when the list asks for the deliberately broken variant (test of the test)
#   XEN_PKG         this package as installed in dom0 (/opt/xen-sshm)
# A check passes when it exits 0; its last output line is the detail shown by the runner, and
# lines starting with "XENTIME <label> <seconds>" are copied to the console as measurements.

export PATH=/xen/bin:/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export XEN_PKG=${XEN_PKG:-/opt/xen-sshm}

# Seconds since dom0's kernel started, with centiseconds.
now() { cut -d' ' -f1 /proc/uptime; }

# elapsed START -> seconds since START (a value of now), two decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

fail() { echo "$*"; exit 1; }

# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds or SECONDS pass.
# (Variables are prefixed: busybox sh functions share the caller's variables unless local.)
wait_for() {
  local _wf_limit=$1; shift
  local _wf_start; _wf_start=$(now)
  while ! "$@" >/dev/null 2>&1; do
    awk -v a="$_wf_start" -v b="$(now)" -v l="$_wf_limit" 'BEGIN { exit !(b - a > l) }' && return 1
    sleep 0.2
  done
  return 0
}

# domu_cfg NAME: write an xl config for a test domU (PVH, 128 MiB, the dom0 kernel, busybox
# initramfs whose /init reports through its console and xenstore) and print its path. Further
# arguments are extra xl config lines (e.g. 'static_shm = [...]').
domu_cfg() {
  local _dc_name=$1; shift
  local _dc_cfg=/tmp/$_dc_name.cfg
  {
    echo "name = \"$_dc_name\""
    echo 'type = "pvh"'
    echo 'memory = 128'
    echo 'vcpus = 1'
    echo 'kernel = "/xen/Image"'
    echo 'ramdisk = "/xen/domu.cpio.gz"'
    echo 'extra = "console=hvc0 rdinit=/init loglevel=4"'
    echo 'on_crash = "preserve"'
    for _dc_line in "$@"; do echo "$_dc_line"; done
  } > "$_dc_cfg"
  echo "$_dc_cfg"
}

domid_of() { xl domid "$1" 2>/dev/null; }

# domu_ready NAME: true once the domU's /init reported itself ready in xenstore.
domu_ready() {
  local _rd_d; _rd_d=$(domid_of "$1") || return 1
  case "$(xenstore-read /local/domain/$_rd_d/data/xencheck 2>/dev/null)" in ready*) return 0 ;; esac
  return 1
}

# domu_run NAME TIMEOUT CMD: run a shell command inside the domU through its agent (a xenstore
# request/reply channel under the domU's data/ directory, served by its /init). Prints the
# command's output (last 1500 bytes) and returns its exit status. Values go raw (-R) both ways:
# without it xenstore-read escapes newlines and xenstore-write expands backslashes.
domu_run() {
  local _dr_name=$1 _dr_limit=$2; shift 2
  local _dr_d; _dr_d=$(domid_of "$_dr_name") || { echo "no domain $_dr_name"; return 125; }
  local _dr_base=/local/domain/$_dr_d/data
  local _dr_seq; _dr_seq=$(xenstore-read $_dr_base/request-seq 2>/dev/null || echo 0)
  _dr_seq=$((_dr_seq + 1))
  xenstore-write -R $_dr_base/request "$*" || return 125
  xenstore-write $_dr_base/request-seq $_dr_seq || return 125
  if ! wait_for "$_dr_limit" sh -c "[ \"\$(xenstore-read $_dr_base/reply-seq 2>/dev/null)\" = $_dr_seq ]"; then
    echo "domU $_dr_name did not answer request $_dr_seq within ${_dr_limit}s"
    return 124
  fi
  xenstore-read -R $_dr_base/reply
  return "$(xenstore-read $_dr_base/reply-rc)"
}
