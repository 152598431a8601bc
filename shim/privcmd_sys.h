/*
 * Plain C syscall helpers of the shim. No Node-API types here: every function returns 0 (or a
 * non-negative result) on success and -errno on failure, so the glue (addon.cc) only converts.
 */
#ifndef XEN_SSHM_PRIVCMD_SYS_H
#define XEN_SSHM_PRIVCMD_SYS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* open(path, O_RDWR | O_CLOEXEC): an fd or -errno. */
int xs_open_device(const char *path);

/* close(fd): 0 or -errno. */
int xs_close(int fd);

/* The host's page size (sysconf(_SC_PAGESIZE)). */
size_t xs_page_size(void);

/*
 * IOCTL_PRIVCMD_HYPERCALL with call[0] = op and call[1..5] = the five arguments. Returns the
 * hypercall's result when >= 0, else -errno (Xen's -errno passes through privcmd unchanged).
 */
long xs_privcmd_hypercall(int fd, const uint64_t call[6]);

/*
 * A buffer Xen may read and write during a hypercall: mmap of /dev/xen/hypercall when
 * hypercall_fd >= 0, else anonymous pages locked in memory (mlock). len is rounded up to whole
 * pages by the kernel; *out receives the address. 0 or -errno.
 */
int xs_hypercall_buffer_alloc(int hypercall_fd, size_t len, void **out);

/* munmap(addr, len): 0 or -errno. */
int xs_unmap(void *addr, size_t len);

/* The length of the privcmd mapping that holds num Xen pages (whole host pages). */
size_t xs_mmapbatch_length(uint32_t num);

/*
 * Maps num frames of domain domid, named by its gfns, into this process: an mmap of the privcmd
 * fd, then IOCTL_PRIVCMD_MMAPBATCH_V2 filling errs[i] with 0 or -errno per page.
 * Returns 0 (*out mapped, errs all read by the caller), -ENOENT (*out mapped; some pages are
 * paged out, their errs are -ENOENT) or another -errno (nothing left mapped).
 */
int xs_privcmd_mmapbatch_v2(int fd, uint16_t domid, const uint64_t *gfns, int *errs,
                            uint32_t num, void **out);

/* IOCTL_PRIVCMD_RESTRICT: from now on this fd may only act on domid. 0 or -errno. */
int xs_privcmd_restrict(int fd, uint16_t domid);

#ifdef __cplusplus
}
#endif

#endif
