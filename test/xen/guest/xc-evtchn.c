/*
 * xc-evtchn: dom0's side of a doorbell for the real-Xen tier, through Xen's own libxenctrl,
 * until the manager allocates doorbells itself (docs/doorbells.md):
 *
 *   xc-evtchn alloc DOM REMOTE   EVTCHNOP_alloc_unbound {dom, remote_dom}: a port in DOM that only
 *                                REMOTE may bind; prints the port
 *   xc-evtchn status DOM PORT    EVTCHNOP_status: prints "closed", "unbound REMOTE",
 *                                "interdomain DOM PORT", or "other STATUS"
 * Errors print "xc-evtchn: ... ERRNO-NAME" and exit 1. Built by test/xen/run.ts with
 * aarch64-linux-gnu-gcc against the arm64 libxenctrl fetched into the cache, like
 * xc-setmaxmem.c. The prototypes are libxenctrl 4.17's (tools/include/xenctrl.h); the status
 * structure is the guest header's restatement of Xen's, checked by test/guest.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../../guest/xen-sshm-doorbell.h"

typedef struct xc_interface_core xc_interface;
xc_interface *xc_interface_open(void *logger, void *dombuild_logger, unsigned open_flags);
int xc_interface_close(xc_interface *xch);
int xc_evtchn_alloc_unbound(xc_interface *xch, uint32_t dom, uint32_t remote_dom);
int xc_evtchn_status(xc_interface *xch, struct xen_sshm_evtchn_status *status);

static const char *errname(int e)
{
	switch (e) {
	case EPERM: return "EPERM";
	case ESRCH: return "ESRCH";
	case EINVAL: return "EINVAL";
	case ENOSPC: return "ENOSPC";
	case EACCES: return "EACCES";
	case ENOMEM: return "ENOMEM";
	default: return strerror(e);
	}
}

static unsigned long number(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 0);
	if (!*s || *end) {
		fprintf(stderr, "xc-evtchn: bad %s %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "alloc") && strcmp(argv[1], "status"))) {
		fprintf(stderr, "usage: xc-evtchn alloc DOM REMOTE | status DOM PORT\n");
		return 2;
	}
	unsigned long dom = number(argv[2], "domid"), arg = number(argv[3], argv[1][0] == 'a' ? "domid" : "port");
	xc_interface *xch = xc_interface_open(NULL, NULL, 0);
	if (!xch) {
		fprintf(stderr, "xc-evtchn: xc_interface_open: %s\n", errname(errno));
		return 1;
	}
	int rc, err;
	if (argv[1][0] == 'a') {
		rc = xc_evtchn_alloc_unbound(xch, (uint32_t)dom, (uint32_t)arg);
		err = errno;
		xc_interface_close(xch);
		if (rc < 0) {
			fprintf(stderr, "xc-evtchn: alloc_unbound {dom %lu, remote_dom %lu}: %s\n", dom, arg, errname(err));
			return 1;
		}
		printf("%d\n", rc);
		return 0;
	}
	struct xen_sshm_evtchn_status st;
	memset(&st, 0, sizeof(st));
	st.dom = (xen_sshm_domid_t)dom;
	st.port = (xen_sshm_port_t)arg;
	rc = xc_evtchn_status(xch, &st);
	err = errno;
	xc_interface_close(xch);
	if (rc < 0) {
		fprintf(stderr, "xc-evtchn: status of port %lu of d%lu: %s\n", arg, dom, errname(err));
		return 1;
	}
	switch (st.status) {
	case XEN_SSHM_EVTCHNSTAT_closed: printf("closed\n"); break;
	case XEN_SSHM_EVTCHNSTAT_unbound: printf("unbound %u\n", st.u.unbound.dom); break;
	case XEN_SSHM_EVTCHNSTAT_interdomain: printf("interdomain %u %u\n", st.u.interdomain.dom, st.u.interdomain.port); break;
	default: printf("other %u\n", st.status); break;
	}
	return 0;
}
