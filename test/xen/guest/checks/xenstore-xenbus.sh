# Our xenstore client over /dev/xen/xenbus (the kernel's driver); destroys probe1 for @releaseDomain.
. /xen/lib.sh
node "$XEN_PKG/dist/test/xen/guest/xenstore-client.js" --path /dev/xen/xenbus --destroy probe1
