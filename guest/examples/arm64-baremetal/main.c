/*
 * A bare-metal arm64 Xen guest using xen-sshm-doorbell.h: it borrows a region (mapped by dom0's
 * `xen-sshm apply` at BEGIN) and rings the owner's doorbell. It runs with the MMU and the data
 * cache off, so every access is to device memory (aligned, uncached: what the Linux owner sees
 * through /dev/mem) and hypercall arguments are cleaned and invalidated around each call.
 *
 * The owner tells it what to bind through the region's page 1 before it starts (a mailbox of
 * 64-bit words, little-endian):
 *   [0] magic 0x4d425358 ("XSBM")   [1] the owner's domid   [2] the port made for this guest
 *   [3] a port made for another borrower (0: none): bound first, Xen must refuse it
 * and the guest answers in the same page:
 *   [4] state: 1 started, 2 tried the other port, 3 bound, 4 rang, 0xbad no mailbox,
 *       0xe00 + the exception class on a synchronous exception (then [9] the faulting address)
 *   [5] result of binding the other port   [6] result of binding its own   [7] its local port
 *   [8] result of ringing
 * then shuts its domain down (SCHEDOP_shutdown, poweroff).
 */
#include <stdint.h>

#ifndef BEGIN
#define BEGIN 0x50000000ul
#endif
#define MAILBOX (BEGIN + 0x1000)
#define MAGIC 0x4d425358u

static void dcache_civac(const volatile void *p, unsigned long bytes)
{
	uint64_t ctr;
	__asm__ __volatile__("mrs %0, ctr_el0" : "=r"(ctr));
	unsigned long line = 4ul << ((ctr >> 16) & 0xf); /* DminLine: log2 of words */
	unsigned long a = (unsigned long)p & ~(line - 1), end = (unsigned long)p + bytes;
	for (; a < end; a += line)
		__asm__ __volatile__("dc civac, %0" : : "r"(a) : "memory");
	__asm__ __volatile__("dsb sy" : : : "memory");
}

#define XEN_SSHM_ARG_SYNC(ptr, bytes) dcache_civac((ptr), (bytes))
#include "../../xen-sshm-doorbell.h"

#define HYPERVISOR_sched_op 29
#define SCHEDOP_shutdown 2
#define SHUTDOWN_poweroff 0

static void __attribute__((noreturn)) power_off(void)
{
	struct { uint32_t reason; } arg = { SHUTDOWN_poweroff };
	for (;;) {
		dcache_civac(&arg, sizeof(arg));
		xen_sshm_hypercall2(HYPERVISOR_sched_op, SCHEDOP_shutdown, (unsigned long)&arg);
	}
}

void guest_main(void);
void guest_exception(uint64_t esr, uint64_t far);

/* From the vector table (start.S): record what happened, power off rather than spin. */
void guest_exception(uint64_t esr, uint64_t far)
{
	volatile uint64_t *mb = (volatile uint64_t *)MAILBOX;

	mb[9] = far;
	mb[4] = 0xe00 + (esr >> 26);
	power_off();
}

void guest_main(void)
{
	volatile uint64_t *mb = (volatile uint64_t *)MAILBOX;

	mb[4] = 1;
	if ((uint32_t)mb[0] != MAGIC) {
		mb[4] = 0xbad;
		power_off();
	}
	xen_sshm_domid_t owner = (xen_sshm_domid_t)mb[1];
	if (mb[3]) {
		struct xen_sshm_region other = XEN_SSHM_BORROWER("DB1", BEGIN, 0x10000, 0, owner, (xen_sshm_port_t)mb[3]);
		mb[5] = (uint64_t)(int64_t)xen_sshm_doorbell_bind(&other);
	}
	mb[4] = 2;
	struct xen_sshm_region r = XEN_SSHM_BORROWER("DB1", BEGIN, 0x10000, 0, owner, (xen_sshm_port_t)mb[2]);
	int rc = xen_sshm_doorbell_bind(&r);
	mb[6] = (uint64_t)(int64_t)rc;
	mb[7] = r.local_port;
	mb[4] = 3;
	if (rc == 0) {
		mb[8] = (uint64_t)(int64_t)xen_sshm_doorbell_ring(&r);
		mb[4] = 4;
	}
	power_off();
}
