/*
 * Syscalls of the shim, in plain C: open/close of the Xen devices, hypercall-safe buffers,
 * the privcmd ioctls and munmap. They return -errno and know nothing of Xen's semantics: struct
 * layouts, hypercall numbers and error meaning live in TypeScript (lib/hypervisor).
 */
#define _GNU_SOURCE
#include "privcmd_sys.h"
#include "privcmd_abi.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int xs_open_device(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int xs_close(int fd)
{
    return close(fd) < 0 ? -errno : 0;
}

size_t xs_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096u;
}

long xs_privcmd_hypercall(int fd, const uint64_t call[6])
{
    struct xs_privcmd_hypercall h;
    int i;
    long rc;

    h.op = call[0];
    for (i = 0; i < 5; i++)
        h.arg[i] = call[i + 1];
    rc = ioctl(fd, XS_IOCTL_PRIVCMD_HYPERCALL, &h);
    return rc < 0 ? -errno : rc;
}

int xs_hypercall_buffer_alloc(int hypercall_fd, size_t len, void **out)
{
    void *p;

    if (hypercall_fd >= 0) {
        /* Linux's /dev/xen/hypercall hands out pages that are safe for Xen to access. */
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, hypercall_fd, 0);
        if (p == MAP_FAILED)
            return -errno;
    } else {
        /*
         * Without that device (older kernels), do what libxencall does: private anonymous pages,
         * not inherited by a fork (a copy-on-write page would move under Xen), and locked so
         * that Xen never meets a page that is swapped out.
         */
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        if (madvise(p, len, MADV_DONTFORK) < 0 || mlock(p, len) < 0) {
            int e = errno;
            munmap(p, len);
            return -e;
        }
    }
    *out = p;
    return 0;
}

int xs_unmap(void *addr, size_t len)
{
    return munmap(addr, len) < 0 ? -errno : 0;
}

size_t xs_mmapbatch_length(uint32_t num)
{
    size_t ps = xs_page_size();
    size_t bytes = (size_t)num * XS_XEN_PAGE_SIZE;

    /* privcmd wants the mapping to be exactly the host pages that hold num Xen pages. */
    return (bytes + ps - 1) / ps * ps;
}

int xs_privcmd_mmapbatch_v2(int fd, uint16_t domid, const uint64_t *gfns, int *errs,
                            uint32_t num, void **out)
{
    struct xs_privcmd_mmapbatch_v2 m;
    size_t len = xs_mmapbatch_length(num);
    void *addr;

    if (num == 0)
        return -EINVAL;
    addr = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED)
        return -errno;

    m.num = num;
    m.dom = domid;
    m.addr = (uint64_t)(uintptr_t)addr;
    m.arr = gfns;
    m.err = errs;
    if (ioctl(fd, XS_IOCTL_PRIVCMD_MMAPBATCH_V2, &m) < 0) {
        int e = errno;
        /* ENOENT: the mapping stands, some pages are paged out and say so in errs. */
        if (e != ENOENT) {
            munmap(addr, len);
            return -e;
        }
        *out = addr;
        return -ENOENT;
    }
    *out = addr;
    return 0;
}

int xs_privcmd_restrict(int fd, uint16_t domid)
{
    return ioctl(fd, XS_IOCTL_PRIVCMD_RESTRICT, &domid) < 0 ? -errno : 0;
}
