#!/bin/busybox sh
# dom0 /init of the real-Xen tier: bring up the Xen toolstack daemons the way Debian's
# xencommons would (FACTS.md section 6), then run the checks listed in /xen/checks.list and
# print one machine-readable line per check on the serial console (parsed by test/xen/run.ts):
#   XENCHECK <name> PASS|FAIL <detail>     the result
#   XENLOG <name> | <line>                 the check's output, printed when it failed
#   XENTIME <label> <seconds>              dom0 uptime figures for the measurements
#   XENDONE                                all checks ran (a run without it is truncated)
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
# XEN_RELEASE, XEN_NODE_MAJOR, XEN_LIBEXEC (/usr/lib/xen-4.17 or -4.20): written by the runner.
. /xen/release.env
export XEN_RELEASE XEN_NODE_MAJOR XEN_LIBEXEC XEN_DEBIAN
export PATH=/xen/bin:$XEN_LIBEXEC/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /var/run/xenstored /var/run/xen /var/log/xen/console /var/lib/xen /var/lib/xenstored /tmp

. /xen/lib.sh
echo "XENTIME dom0-init $(now)"

for m in xen-privcmd xenfs xen-evtchn xen-gntdev xen-gntalloc; do
  insmod /lib/modules/xen/$m.ko || echo "XENBOOT insmod $m failed"
done
mount -t xenfs xenfs /proc/xen || echo "XENBOOT mount xenfs failed"

# C xenstored, as xencommons starts it; it daemonises once its socket is up.
xenstored --pid-file /run/xenstored.pid || echo "XENBOOT xenstored failed to start"
i=0
until xenstore-read /local/domain/0/domid >/dev/null 2>&1 || xenstore-ls / >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 100 ] && { echo "XENBOOT xenstored does not answer"; break; }
  sleep 0.1
done
echo "XENTIME xenstored $(now)"
xen-init-dom0 >/tmp/xen-init-dom0.log 2>&1 || { echo "XENBOOT xen-init-dom0 failed"; cat /tmp/xen-init-dom0.log; }
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console \
  || echo "XENBOOT xenconsoled failed to start"
echo "XENTIME dom0-ready $(now)"
echo "XENREADY"

/xen/run-checks.sh /xen/checks.list

echo "XENTIME dom0-done $(now)"
echo "XENDONE"
sync
poweroff -f
# Not reached when Xen powers the machine off; if it is, QEMU's timeout ends the run.
sleep 3600
