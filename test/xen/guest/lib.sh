# Shell helpers for the dom0 check scripts (sourced; busybox sh). Every check script runs with:
#   XENCHECK_NAME   its name in /xen/checks.list
#   XENCHECK_BREAK  1 when the list asks for the deliberately broken variant (test of the test)
#   XEN_PKG         the checks' own programs (this checkout's dist/, at /opt/xen-sshm)
#   XEN_SSHM_PKG    the package as installed from the packed tarball (npm install -g: the
#                   commands xen-sshm and xs-trace in /usr/local/bin)
# A check passes when it exits 0; its last output line is the detail shown by the runner, and
# lines starting with "XENTIME <label> <seconds>" are copied to the console as measurements.

# The release booted (XEN_RELEASE 4.17|4.20, XEN_NODE_MAJOR, XEN_LIBEXEC): written by the runner.
. /xen/release.env
export XEN_RELEASE XEN_NODE_MAJOR XEN_LIBEXEC XEN_DEBIAN
# --limit-factor: every wait below (wait_for, and domu_run through it) is scaled by it, as the
# runner scales each check's own limit.
export XEN_LIMIT_FACTOR=${XEN_LIMIT_FACTOR:-1}
# /usr/local/bin: the package installed from the packed tarball (xen-sshm, xs-trace).
export PATH=/xen/bin:/usr/local/bin:$XEN_LIBEXEC/bin:/usr/sbin:/usr/bin:/sbin:/bin
export XEN_PKG=${XEN_PKG:-/opt/xen-sshm}
export XEN_SSHM_PKG=${XEN_SSHM_PKG:-/usr/local/lib/node_modules/xen-sshm}

# Seconds since dom0's kernel started, with centiseconds.
now() { cut -d' ' -f1 /proc/uptime; }

# elapsed START -> seconds since START (a value of now), two decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

fail() { echo "$*"; exit 1; }

# wait_for SECONDS CMD...: retry CMD every 0.2 s until it succeeds or SECONDS x XEN_LIMIT_FACTOR
# pass. (Variables are prefixed: busybox sh functions share the caller's variables unless local.)
wait_for() {
  local _wf_limit; _wf_limit=$(awk -v l="$1" -v f="$XEN_LIMIT_FACTOR" 'BEGIN { print l * f }'); shift
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

# ---- static shared memory through the `xen-sshm` command (three-vm, guest-view, large-region,
# lifecycle) -----------------------------------------------------------------------------------

# sshm LABEL ARGS...: runs `xen-sshm ARGS` (the installed command, dom0's node 18) with the timing preload
# (sshm-timing.js: the manager's own time and its hypercalls', without node's start-up). Its
# stdout is kept in /tmp/sshm-LABEL.out, its stderr in /tmp/sshm-LABEL.err; both are printed,
# with "XENTIME LABEL:cli S" (the whole command's wall time). Returns xen-sshm's exit status.
sshm() {
  local _sm_label=$1; shift
  local _sm_start; _sm_start=$(now)
  XEN_TIMING_LABEL=$_sm_label node -r "$XEN_PKG/dist/test/xen/guest/sshm-timing.js" \
    /usr/local/bin/xen-sshm "$@" >/tmp/sshm-$_sm_label.out 2>/tmp/sshm-$_sm_label.err
  local _sm_rc=$?
  echo "XENTIME $_sm_label:cli $(elapsed "$_sm_start")" | tee -a /tmp/xentimes
  echo "\$ xen-sshm $* (exit $_sm_rc)"
  grep '^XENTIME ' /tmp/sshm-$_sm_label.err
  grep -v '^XENTIME ' /tmp/sshm-$_sm_label.err
  cat /tmp/sshm-$_sm_label.out
  return $_sm_rc
}

# sshm_flat LABEL: the --json output of `sshm LABEL ...` without blanks, for grepping
# '"action":"created"' and the like (presence only: field order is not relied upon).
sshm_flat() { tr -d ' \n' < /tmp/sshm-$1.out; }

# sshm_error LABEL: the error message of a failed `sshm LABEL ... --json` (or its stderr's tail).
sshm_error() {
  local _se; _se=$(sed -n 's/^ *"message": "\(.*\)",\{0,1\}$/\1/p' /tmp/sshm-$1.out | head -n 1)
  [ -n "$_se" ] || _se=$(grep -v '^XENTIME ' /tmp/sshm-$1.err | tail -n 2 | tr '\n' ' ')
  echo "$_se"
}

# xentime LABEL START: prints "XENTIME LABEL <seconds since START>" (a figure; time_of finds it).
xentime() { echo "XENTIME $1 $(elapsed "$2")" | tee -a /tmp/xentimes; }

# time_of LABEL: a figure printed by `sshm` (e.g. time_of apply-vm1:cli), or "?".
time_of() { grep -h "^XENTIME $1 " /tmp/sshm-*.err /tmp/xentimes 2>/dev/null | tail -n 1 | awk '{ print $3 }' | grep . || echo '?'; }

# shm_cfg FILE NAME 'static_shm = [...]': a test domU's xl config (domu_cfg) at FILE.
shm_cfg() {
  local _sc_file=$1 _sc_name=$2; shift 2
  local _sc_tmp; _sc_tmp=$(domu_cfg "$_sc_name" "$@")
  [ "$_sc_tmp" = "$_sc_file" ] || mv "$_sc_tmp" "$_sc_file"
  echo "$_sc_file"
}

# Bytes as text, non-printable ones as '.' (for failure messages): hex_text 414243 -> ABC.
hex_text() {
  echo "$1" | awk '{
    out = ""
    for (i = 1; i + 1 <= length($0); i += 2) {
      n = (index("0123456789abcdef", substr($0, i, 1)) - 1) * 16 + index("0123456789abcdef", substr($0, i + 1, 1)) - 1
      out = out ((n >= 32 && n < 127) ? sprintf("%c", n) : ".")
    }
    print out
  }'
}

# shm_cross TAG WRITER WADDR READER RADDR PAGE...: WRITER stores "TAG page K STAMP" at
# WADDR + K pages (guest physical, busybox devmem) for each PAGE, then READER must read each at
# RADDR + K pages. Two agent round trips; the first page that differs fails the check with
#   READER reads "TEXT" at ADDR (TAG page K), expected "TAG page K STAMP" written by WRITER at ADDR
shm_cross() {
  local _x_tag=$1 _x_w=$2 _x_wa=$3 _x_r=$4 _x_ra=$5; shift 5
  local _x_stamp _x_wcmd='' _x_rcmd='' _x_k _x_text _x_hex _x_out _x_i _x_got
  _x_stamp="$(now | tr -d .)$$"
  for _x_k in "$@"; do
    _x_text="$_x_tag page $_x_k $_x_stamp"
    _x_hex=$(printf '%s' "$_x_text" | od -An -v -tx1 | tr -d ' \n')
    _x_wcmd="$_x_wcmd xen-memwrite $(printf '0x%x' $((_x_wa + _x_k * 4096))) $_x_hex &&"
    # One line per page, in order, even when a read fails (a page not mapped: SIGBUS).
    _x_rcmd="$_x_rcmd ( xen-memread $(printf '0x%x' $((_x_ra + _x_k * 4096))) ${#_x_text} ) 2>/dev/null || echo ERR;"
  done
  _x_out=$(domu_run "$_x_w" 60 "$_x_wcmd true") || fail "$_x_w could not write $_x_tag at $_x_wa: $_x_out"
  _x_out=$(domu_run "$_x_r" 60 "$_x_rcmd true") || fail "$_x_r could not read $_x_tag at $_x_ra: $_x_out"
  _x_i=0
  for _x_k in "$@"; do
    _x_i=$((_x_i + 1))
    _x_text="$_x_tag page $_x_k $_x_stamp"
    _x_got=$(echo "$_x_out" | sed -n "${_x_i}p")
    [ "$_x_got" = "$(printf '%s' "$_x_text" | od -An -v -tx1 | tr -d ' \n')" ] && continue
    echo "$_x_r's answer: $_x_out"
    [ "$_x_got" = ERR ] && fail "$_x_r cannot read $(printf '0x%x' $((_x_ra + _x_k * 4096))) ($_x_tag page $_x_k): devmem failed (nothing mapped there?)"
    fail "$_x_r reads \"$(hex_text "$_x_got")\" at $(printf '0x%x' $((_x_ra + _x_k * 4096))) ($_x_tag page $_x_k), expected \"$_x_text\" written by $_x_w at $(printf '0x%x' $((_x_wa + _x_k * 4096)))"
  done
  echo "$_x_tag: pages $* written by $_x_w at $_x_wa read by $_x_r at $_x_ra"
}

# shm_check TAG OWNER OADDR BORROWER BADDR PAGE...: shm_cross both ways (owner to borrower, then
# the borrower's own bytes back to the owner).
shm_check() {
  local _y_tag=$1 _y_o=$2 _y_oa=$3 _y_b=$4 _y_ba=$5; shift 5
  shm_cross "$_y_tag" "$_y_o" "$_y_oa" "$_y_b" "$_y_ba" "$@" || exit 1
  shm_cross "$_y_tag" "$_y_b" "$_y_ba" "$_y_o" "$_y_oa" "$@" || exit 1
}

# records_have FILE LINE...: every LINE is a line of FILE (xenstore-ls -f output); fails naming
# the first missing one.
records_have() {
  local _rh_file=$1; shift
  local _rh_l
  for _rh_l in "$@"; do
    grep -qxF "$_rh_l" "$_rh_file" || { cat "$_rh_file"; fail "no record line '$_rh_l' in xenstore-ls -f"; }
  done
}
