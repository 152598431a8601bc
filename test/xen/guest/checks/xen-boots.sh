# Xen booted and the toolstack reaches it: xl info reports the release booted (4.17, 4.20) on arm64.
. /xen/lib.sh
info=$(xl info 2>&1) || fail "xl info failed: $(echo "$info" | tail -n 1)"
major=$(echo "$info" | awk -F': ' '/^xen_major/ { print $2 }')
minor=$(echo "$info" | awk -F': ' '/^xen_minor/ { print $2 }')
extra=$(echo "$info" | awk -F': ' '/^xen_extra/ { print $2 }')
caps=$(echo "$info" | awk -F': ' '/^xen_caps/ { print $2 }')
free=$(echo "$info" | awk -F': ' '/^free_memory/ { print $2 }')
[ "$major.$minor" = "$XEN_RELEASE" ] || fail "expected Xen $XEN_RELEASE, xl info says '$major.$minor'"
case "$caps" in *aarch64*) ;; *) fail "expected an aarch64 host, xen_caps '$caps'" ;; esac
echo "Xen $major.$minor$extra ($caps), ${free} MiB free"
