/*
 * xen-sshm-doorbell.h: a xen-sshm region and its doorbell, for bare-metal and RTOS guests.
 *
 * Header-only, freestanding (needs <stdint.h> alone): the Xen event-channel hypercalls a guest
 * needs to use the doorbell dom0 made for a shared region (bind_interdomain, send, unmask), and
 * a descriptor of the region as the guest's mirror describes it
 * (/local/domain/<self>/shared_mem/<ID>, written by dom0's `xen-sshm apply`; see
 * docs/doorbells.md). Part of the xen-sshm package (MIT).
 *
 *   struct xen_sshm_region r = XEN_SSHM_BORROWER("ID1", 0x50000000, 0x100000, 0, 1, 5);
 *   int rc = xen_sshm_doorbell_bind(&r);   // borrower: bind_interdomain(owner 1, port 5)
 *   ... write into the region ...
 *   rc = xen_sshm_doorbell_ring(&r);       // EVTCHNOP_send on the local port
 *
 * Who calls what (xen/common/event_channel.c):
 * - dom0 allocated, in the owner, a port that only one borrower may bind
 *   (EVTCHNOP_alloc_unbound {dom = owner, remote_dom = borrower}).
 * - A borrower binds it: EVTCHNOP_bind_interdomain {remote_dom = owner, remote_port}; Xen
 *   returns the borrower's local port and sets it pending once (for notifications sent
 *   before the bind). Xen refuses with -EINVAL a port made for another borrower, already
 *   bound, or closed.
 * - An owner already holds the port: it unmasks it and uses it.
 * Receiving is the guest's event upcall (its RTOS's event-channel demultiplexer, e.g. Zephyr's
 * drivers/xen/events.c): this header only binds, unmasks and sends.
 *
 * Hypercalls:
 * - arm64: `hvc #0xEA1` with the hypercall number in x16 and the arguments in x0-x4, the
 *   result in x0 (xen/include/public/arch-arm.h). Called at EL1: EL0 cannot issue HVC.
 * - x86_64 (HVM and PVH guests): by default `vmcall` on Intel and `vmmcall` on AMD and Hygon
 *   CPUs, chosen once from CPUID leaf 0, the number in rax and the arguments in rdi, rsi, rdx,
 *   r10, r8. That is what Linux does since Xen Security Advisory 466 (2024) dropped its use
 *   of the hypercall page: no page of Xen-written code to set up and keep executable, and the
 *   same instruction sequence whatever Xen version runs. A guest that prefers the hypercall
 *   page (and PV guests, which must use it) defines XEN_SSHM_HYPERCALL_PAGE to the page's
 *   symbol before including this file, after filling the page through the MSR named by CPUID
 *   leaf 0x40000002 as Xen's public/arch-x86/cpuid.h describes; each call then goes through
 *   the page's entry `32 * number`.
 * - Or the guest's own: define XEN_SSHM_HYPERCALL2(op, a1, a2) before including this file.
 * Results are Xen's: 0 or a negative errno (xen/include/public/errno.h; the values Linux uses
 * on both architectures, e.g. -22 EINVAL, -1 EPERM, -3 ESRCH).
 *
 * The structures below restate Xen's public ABI (xen/include/public/event_channel.h, xen.h)
 * under this header's own names; test/guest/header.test.ts checks every size, offset and
 * number against Xen's headers for x86_64 and arm64.
 */
#ifndef XEN_SSHM_DOORBELL_H
#define XEN_SSHM_DOORBELL_H

#include <stdint.h>

/* ---- Xen's public ABI (restated, checked by the tests) ------------------------------------ */

typedef uint16_t xen_sshm_domid_t;  /* domid_t */
typedef uint32_t xen_sshm_port_t;   /* evtchn_port_t */

#define XEN_SSHM_HYPERVISOR_event_channel_op 32 /* __HYPERVISOR_event_channel_op */
#define XEN_SSHM_EVTCHNOP_bind_interdomain 0
#define XEN_SSHM_EVTCHNOP_close 3
#define XEN_SSHM_EVTCHNOP_send 4
#define XEN_SSHM_EVTCHNOP_status 5
#define XEN_SSHM_EVTCHNOP_alloc_unbound 6
#define XEN_SSHM_EVTCHNOP_unmask 9
#define XEN_SSHM_DOMID_SELF 0x7FF0

/* EVTCHNSTAT_* of struct evtchn_status */
#define XEN_SSHM_EVTCHNSTAT_closed 0
#define XEN_SSHM_EVTCHNSTAT_unbound 1
#define XEN_SSHM_EVTCHNSTAT_interdomain 2
#define XEN_SSHM_EVTCHNSTAT_pirq 3
#define XEN_SSHM_EVTCHNSTAT_virq 4
#define XEN_SSHM_EVTCHNSTAT_ipi 5

struct xen_sshm_evtchn_bind_interdomain {  /* struct evtchn_bind_interdomain */
	xen_sshm_domid_t remote_dom;         /* IN */
	xen_sshm_port_t remote_port;         /* IN */
	xen_sshm_port_t local_port;          /* OUT */
};

struct xen_sshm_evtchn_send {              /* struct evtchn_send */
	xen_sshm_port_t port;
};

struct xen_sshm_evtchn_unmask {            /* struct evtchn_unmask */
	xen_sshm_port_t port;
};

struct xen_sshm_evtchn_close {             /* struct evtchn_close */
	xen_sshm_port_t port;
};

struct xen_sshm_evtchn_alloc_unbound {     /* struct evtchn_alloc_unbound */
	xen_sshm_domid_t dom, remote_dom;    /* IN */
	xen_sshm_port_t port;                /* OUT */
};

struct xen_sshm_evtchn_status {            /* struct evtchn_status */
	xen_sshm_domid_t dom;                /* IN */
	xen_sshm_port_t port;                /* IN */
	uint32_t status;                     /* OUT: XEN_SSHM_EVTCHNSTAT_* */
	uint32_t vcpu;                       /* OUT */
	union {
		struct { xen_sshm_domid_t dom; } unbound;
		struct { xen_sshm_domid_t dom; xen_sshm_port_t port; } interdomain;
		uint32_t pirq;
		uint32_t virq;
	} u;
};

/* ---- hypercalls ----------------------------------------------------------------------------- */

#if defined(XEN_SSHM_HYPERCALL2)
/*
 * The guest brings its own hypercall (an RTOS that already has HYPERVISOR_event_channel_op,
 * or a test): XEN_SSHM_HYPERCALL2(op, a1, a2) returns a long.
 */
static inline long xen_sshm_hypercall2(unsigned long op, unsigned long a1, unsigned long a2)
{
	return XEN_SSHM_HYPERCALL2(op, a1, a2);
}

#elif defined(__aarch64__)

static inline long xen_sshm_hypercall2(unsigned long op, unsigned long a1, unsigned long a2)
{
	register unsigned long x16 __asm__("x16") = op;
	register unsigned long x0 __asm__("x0") = a1;
	register unsigned long x1 __asm__("x1") = a2;
	/* A debug Xen overwrites the argument registers it used (x0, x1) and x16: outputs too. */
	__asm__ __volatile__("hvc #0xEA1"
			     : "+r"(x0), "+r"(x1), "+r"(x16)
			     :
			     : "x2", "x3", "x4", "memory");
	return (long)x0;
}

#elif defined(__x86_64__)

#ifdef XEN_SSHM_HYPERCALL_PAGE
extern char XEN_SSHM_HYPERCALL_PAGE[];
#else
/* 1: vmmcall (AMD, Hygon), 0: vmcall (Intel and the rest), -1: not looked up yet. */
static int xen_sshm_x86_amd = -1;

static inline int xen_sshm_x86_is_amd(void)
{
	if (xen_sshm_x86_amd < 0) {
		uint32_t eax = 0, ebx, ecx, edx;
		__asm__ __volatile__("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
		/* "AuthenticAMD" and "HygonGenuine", as EBX EDX ECX. */
		xen_sshm_x86_amd = (ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u) ||
				   (ebx == 0x6f677948u && edx == 0x6e65476eu && ecx == 0x656e6975u);
	}
	return xen_sshm_x86_amd;
}
#endif

static inline long xen_sshm_hypercall2(unsigned long op, unsigned long a1, unsigned long a2)
{
	long ret = (long)op;
	unsigned long di = a1, si = a2;
	/*
	 * A debug Xen overwrites the argument registers a hypercall does not use (rdx, r10, r8),
	 * as Linux's __HYPERCALL_CLOBBER2 assumes; rcx and r11 go for the PV path (syscall).
	 */
#ifdef XEN_SSHM_HYPERCALL_PAGE
	__asm__ __volatile__("call *%[entry]"
			     : "+a"(ret), "+D"(di), "+S"(si)
			     : [entry] "r"(XEN_SSHM_HYPERCALL_PAGE + 32 * op)
			     : "rdx", "r10", "r8", "rcx", "r11", "memory");
#else
	if (xen_sshm_x86_is_amd())
		__asm__ __volatile__("vmmcall"
				     : "+a"(ret), "+D"(di), "+S"(si)
				     :
				     : "rdx", "r10", "r8", "rcx", "r11", "memory");
	else
		__asm__ __volatile__("vmcall"
				     : "+a"(ret), "+D"(di), "+S"(si)
				     :
				     : "rdx", "r10", "r8", "rcx", "r11", "memory");
#endif
	return ret;
}

#else
#error "xen-sshm-doorbell.h: hypercalls for arm64 (__aarch64__) and x86_64 (__x86_64__) only"
#endif

/*
 * Xen reads and writes a hypercall's argument through its own cacheable mapping of the
 * guest's memory. A guest running with its data cache off (MMU off: device memory) defines
 * XEN_SSHM_ARG_SYNC(ptr, bytes) to clean and invalidate those bytes (arm64: DC CIVAC, then
 * DSB) before and after each call; with caches on there is nothing to do.
 */
#ifndef XEN_SSHM_ARG_SYNC
#define XEN_SSHM_ARG_SYNC(ptr, bytes) ((void)(ptr), (void)(bytes))
#endif

/* HYPERVISOR_event_channel_op(cmd, arg) with an argument of `bytes`: 0 or a negative Xen errno. */
static inline int xen_sshm_evtchn_op(unsigned int cmd, void *arg, unsigned long bytes)
{
	int rc;

	XEN_SSHM_ARG_SYNC(arg, bytes);
	rc = (int)xen_sshm_hypercall2(XEN_SSHM_HYPERVISOR_event_channel_op, cmd, (unsigned long)arg);
	XEN_SSHM_ARG_SYNC(arg, bytes);
	return rc;
}

/* Binds the owner's port `remote_port` of domain `remote_dom`; the local port in *local_port. */
static inline int xen_sshm_bind_interdomain(xen_sshm_domid_t remote_dom, xen_sshm_port_t remote_port,
					    xen_sshm_port_t *local_port)
{
	struct xen_sshm_evtchn_bind_interdomain op = { 0, 0, 0 };
	int rc;

	op.remote_dom = remote_dom;
	op.remote_port = remote_port;
	rc = xen_sshm_evtchn_op(XEN_SSHM_EVTCHNOP_bind_interdomain, &op, sizeof(op));
	if (rc == 0 && local_port)
		*local_port = op.local_port;
	return rc;
}

/* Rings the other end of a bound local port. */
static inline int xen_sshm_send(xen_sshm_port_t port)
{
	struct xen_sshm_evtchn_send op;

	op.port = port;
	return xen_sshm_evtchn_op(XEN_SSHM_EVTCHNOP_send, &op, sizeof(op));
}

/* Unmasks a local port; Xen delivers at once an event that is pending on it. */
static inline int xen_sshm_unmask(xen_sshm_port_t port)
{
	struct xen_sshm_evtchn_unmask op;

	op.port = port;
	return xen_sshm_evtchn_op(XEN_SSHM_EVTCHNOP_unmask, &op, sizeof(op));
}

/* ---- a region and its doorbell ---------------------------------------------------------------- */

#define XEN_SSHM_ROLE_OWNER 1
#define XEN_SSHM_ROLE_BORROWER 2

/*
 * One region as this guest sees it: its mirror's keys (docs/doorbells.md), filled in by the
 * guest's own xenstore client or from build-time constants.
 */
struct xen_sshm_region {
	const char *id;            /* the region's ID (the mirror's folder name) */
	uint64_t gpa;              /* `begin`: guest-physical address of this guest's window */
	uint64_t size;             /* `size`: bytes of the window */
	uint64_t offset;           /* `offset`: where the window starts in the region */
	uint8_t role;              /* `role`: XEN_SSHM_ROLE_OWNER or XEN_SSHM_ROLE_BORROWER */
	uint8_t writable;          /* `prot`: 1 for "rw", 0 for "r" */
	xen_sshm_domid_t owner;    /* borrower: `owner`, the owner's domid; owner: unused */
	xen_sshm_domid_t peer;     /* owner: the borrower this doorbell rings (`doorbells/<peer>`) */
	/*
	 * The doorbell dom0 made, 0 for none. Borrower: `doorbell`, the owner's port to bind.
	 * Owner: `doorbells/<peer>`, its own port for that borrower.
	 */
	xen_sshm_port_t doorbell;
	xen_sshm_port_t local_port; /* this guest's end once bound (0 before) */
};

#define XEN_SSHM_BORROWER(id_, gpa_, size_, offset_, owner_, doorbell_) \
	{ (id_), (gpa_), (size_), (offset_), XEN_SSHM_ROLE_BORROWER, 1, (owner_), 0, (doorbell_), 0 }
#define XEN_SSHM_OWNER(id_, gpa_, size_, peer_, doorbell_) \
	{ (id_), (gpa_), (size_), 0, XEN_SSHM_ROLE_OWNER, 1, 0, (peer_), (doorbell_), 0 }

/* -22 (EINVAL) for a region without a doorbell or with an unknown role. */
#define XEN_SSHM_ERR_INVAL (-22)

/*
 * Makes the doorbell usable: a borrower binds the owner's port, an owner takes the port dom0
 * made in it; then the local port is unmasked. 0 or a negative Xen errno.
 */
static inline int xen_sshm_doorbell_bind(struct xen_sshm_region *r)
{
	int rc;

	if (r->doorbell == 0)
		return XEN_SSHM_ERR_INVAL;
	if (r->role == XEN_SSHM_ROLE_BORROWER) {
		rc = xen_sshm_bind_interdomain(r->owner, r->doorbell, &r->local_port);
		if (rc)
			return rc;
	} else if (r->role == XEN_SSHM_ROLE_OWNER) {
		r->local_port = r->doorbell;
	} else {
		return XEN_SSHM_ERR_INVAL;
	}
	return xen_sshm_unmask(r->local_port);
}

/* Rings the other side. -22 (EINVAL) before xen_sshm_doorbell_bind. */
static inline int xen_sshm_doorbell_ring(const struct xen_sshm_region *r)
{
	if (r->local_port == 0)
		return XEN_SSHM_ERR_INVAL;
	return xen_sshm_send(r->local_port);
}

#endif /* XEN_SSHM_DOORBELL_H */
