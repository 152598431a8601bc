# Our xenstore client over the real xenstored's Unix socket; destroys probe2 for @releaseDomain.
. /xen/lib.sh
node "$XEN_PKG/dist/test/xen/guest/xenstore-client.js" --path /var/run/xenstored/socket --destroy probe2
