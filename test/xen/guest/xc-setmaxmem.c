/*
 * xc-setmaxmem DOMID KIB: sets a domain's maximum memory (XEN_DOMCTL_max_mem) through Xen's own
 * libxenctrl, in dom0. Test-tier setup only: on Arm, Debian's xl 4.17 can do neither (a config
 * with maxmem > memory fails to build the domain, and `xl mem-max` aborts on a libxl_defbool
 * assertion), yet an owner needs headroom above its RAM for the pages a region populates.
 * Built by test/xen/run.ts with aarch64-linux-gnu-gcc against the arm64 libxenctrl fetched
 * into the cache. The prototypes are libxenctrl 4.17's (tools/include/xenctrl.h); declaring
 * them here avoids mixing the host's x86_64 headers into an arm64 build.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct xc_interface_core xc_interface;
xc_interface *xc_interface_open(void *logger, void *dombuild_logger, unsigned open_flags);
int xc_interface_close(xc_interface *xch);
int xc_domain_setmaxmem(xc_interface *xch, uint32_t domid, uint64_t max_memkb);

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: xc-setmaxmem DOMID KIB\n");
		return 2;
	}
	char *end;
	unsigned long domid = strtoul(argv[1], &end, 0);
	if (*end) { fprintf(stderr, "xc-setmaxmem: bad domid %s\n", argv[1]); return 2; }
	unsigned long long kib = strtoull(argv[2], &end, 0);
	if (*end) { fprintf(stderr, "xc-setmaxmem: bad size %s\n", argv[2]); return 2; }
	xc_interface *xch = xc_interface_open(NULL, NULL, 0);
	if (!xch) { fprintf(stderr, "xc-setmaxmem: xc_interface_open: %s\n", strerror(errno)); return 1; }
	int rc = xc_domain_setmaxmem(xch, (uint32_t)domid, kib);
	int err = errno;
	xc_interface_close(xch);
	if (rc) { fprintf(stderr, "xc-setmaxmem: d%lu to %llu KiB: %s\n", domid, kib, strerror(err)); return 1; }
	return 0;
}
