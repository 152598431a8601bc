# xs-trace attach in dom0 (issue 17): `xs-trace attach --domain N --json` shows guest N's
# xenstore traffic over its ring, decoded and paired, while the guest works; afterwards the
# daemon's logging is off again, checked through CONTROL (memreport answers an error while
# xenstored has no log open, OK while it logs) and in /proc.
# C xenstored 4.17 names a connection by domain only when it logs the connection being made
# (the INTRODUCE of `xl create`), so the attach starts before the guest exists, with the domid
# Xen will give it: the one after a paused probe domain's (Xen hands out domids in order).
. /xen/lib.sh
out=$(xenstore-control memreport 2>&1) && fail "xenstored already logs before the attach (CONTROL memreport: $out)"

cfg=$(domu_cfg xsprobe)
out=$(xl create -p "$cfg" 2>&1) || fail "xl create -p xsprobe failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
k=$(domid_of xsprobe) || fail "no domid for xsprobe"
xl destroy xsprobe || fail "xl destroy xsprobe failed"
n=$((k + 1))

start=$(now)
# node itself in the background, not the xst function: a backgrounded function is a subshell,
# and $! would be that subshell (SIGTERM would end it and leave the attach running).
node "$XEN_PKG/dist/lib/cli/xs-trace.js" attach --domain $n --json -o /tmp/attach.jsonl 2>/tmp/attach.err &
apid=$!
wait_for 60 grep -q 'this log does not show' /tmp/attach.err || { cat /tmp/attach.err; fail "xs-trace attach did not attach within 60 s"; }
xentime xs-trace-attach:start "$start"
cat /tmp/attach.err
xenstore-control memreport >/dev/null 2>&1 || fail "while attached, CONTROL memreport fails: xenstored does not log"

cfg=$(domu_cfg tracee)
out=$(xl create "$cfg" 2>&1) || { kill $apid; fail "xl create tracee failed: $(echo "$out" | tail -n 2 | tr '\n' ' ')"; }
[ "$(domid_of tracee)" = "$n" ] || { kill $apid; fail "tracee got domid $(domid_of tracee), not $n as the probe domain predicted"; }
wait_for 90 domu_ready tracee || { kill $apid; fail "tracee did not report ready within 90 s"; }
value="hello from $n $(now | tr -d .)"
out=$(domu_run tracee 30 "xenstore-write data/xs-trace-probe '$value' && xenstore-read data/xs-trace-probe") || { kill $apid; fail "tracee's agent: $out"; }
[ "$out" = "$value" ] || { kill $apid; fail "tracee read back '$out'"; }

kill -TERM $apid
wait $apid
rc=$?
cat /tmp/attach.err
[ $rc = 0 ] || fail "xs-trace attach exited $rc: $(tail -n 2 /tmp/attach.err | tr '\n' ' ')"
grep -q "logging is back to: logging off" /tmp/attach.err || fail "xs-trace attach did not say the daemon's logging is off again"
summary=$(node "$XEN_PKG/dist/test/xen/guest/attach-verify.js" /tmp/attach.jsonl $n "$value") || { head -c 3000 /tmp/attach.jsonl; fail "$summary"; }

out=$(xenstore-control memreport 2>&1) && fail "after the attach xenstored still logs (CONTROL memreport: $out)"
xpid=$(cat /run/xenstored.pid)
ls -l /proc/$xpid/fd 2>/dev/null | grep -q xs-trace-attach && fail "xenstored still has a file of the attach folder open"
ls -d /tmp/xs-trace-attach-* >/dev/null 2>&1 && fail "the attach folder was not removed"
xl destroy tracee
echo "$summary; logging off again (CONTROL memreport refused, no log open)"
