/*
 * The Linux privcmd ioctl ABI (include/uapi/xen/privcmd.h), restated here so the shim builds on
 * any Linux with a C compiler: the kernel's own copy includes <xen/interface/xen.h>, which is
 * not exported to user space, and Xen's copy (libxen-dev) is not on every machine. The layout
 * test (test/hypervisor/layout.test.ts) checks these against Xen's <xen/sys/privcmd.h>.
 */
#ifndef XEN_SSHM_PRIVCMD_ABI_H
#define XEN_SSHM_PRIVCMD_ABI_H

#include <stdint.h>
#include <linux/ioctl.h>

struct xs_privcmd_hypercall {
    uint64_t op;
    uint64_t arg[5];
};

struct xs_privcmd_mmapbatch_v2 {
    unsigned int num;      /* number of Xen pages to map */
    uint16_t dom;          /* domid_t: the domain owning the frames */
    uint64_t addr;         /* virtual address of a privcmd mapping of num pages */
    const uint64_t *arr;   /* xen_pfn_t[num]: the domain's gfns */
    int *err;              /* int[num]: per-page result, 0 or -errno */
};

#define XS_IOCTL_PRIVCMD_HYPERCALL \
    _IOC(_IOC_NONE, 'P', 0, sizeof(struct xs_privcmd_hypercall))
#define XS_IOCTL_PRIVCMD_MMAPBATCH_V2 \
    _IOC(_IOC_NONE, 'P', 4, sizeof(struct xs_privcmd_mmapbatch_v2))
#define XS_IOCTL_PRIVCMD_RESTRICT \
    _IOC(_IOC_NONE, 'P', 6, sizeof(uint16_t))

/* Xen's page size on both x86_64 and arm64 guests (XEN_PAGE_SIZE), whatever Linux uses. */
#define XS_XEN_PAGE_SIZE 4096u

#endif
