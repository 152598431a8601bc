#!/bin/busybox sh
# domU /init of the real-Xen tier. Reports itself on its console (read by dom0 through
# xenconsoled's log) and in xenstore (data/xencheck), then serves an agent: dom0 writes a shell
# command to data/request and bumps data/request-seq; the reply goes to data/reply,
# data/reply-rc and data/reply-seq. Everything here goes through /dev/xen/xenbus, the guest's
# only way to xenstore.
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /tmp

i=0
until [ -e /dev/xen/xenbus ]; do
  i=$((i + 1)); [ $i -gt 50 ] && { echo "XENDOMU no /dev/xen/xenbus"; break; }
  sleep 0.1
done
domid=$(xenstore-read domid) || { echo "XENDOMU xenstore-read fails:"; LD_DEBUG=libs xenstore-read domid 2>&1 | tail -n 20; ls -la /usr/lib/aarch64-linux-gnu; }
name=$(xenstore-read name)
echo "XENDOMU $name ready domid=$domid kernel=$(uname -r)"
xenstore-write data/xencheck "ready $name $domid"

base=/local/domain/$domid/data
done_seq=0
xenstore-watch $base/request-seq | while read -r _; do
  seq=$(xenstore-read $base/request-seq 2>/dev/null) || continue
  [ "$seq" = "$done_seq" ] && continue
  done_seq=$seq
  xenstore-read -R $base/request > /tmp/request.sh 2>/dev/null || continue
  sh /tmp/request.sh > /tmp/reply 2>&1
  rc=$?
  xenstore-write -R $base/reply "$(tail -c 1500 /tmp/reply)" $base/reply-rc $rc
  xenstore-write $base/reply-seq "$seq"
done
echo "XENDOMU $name agent stopped"
sleep 86400
