/*
 * LD_PRELOAD stand-in for the hypervisor, so that Debian's C xenstored and OCaml oxenstored
 * (xen-utils-4.17, and xen-utils-4.20 of Debian 13 run from a private root) serve their Unix
 * socket on a machine without Xen (FACTS.md section 3). Built once per release, against that
 * release's headers: the domain-info structures differ between releases.
 *
 * What it replaces, and why:
 *  - libxenctrl: xc_interface_open/close and the domain-info calls. Domain 0 is reported
 *    alive, and so are the domids listed in XEN_SSHM_FAKE_DOMAINS (default: none).
 *  - libxengnttab: open/close succeed; a fake domain's ring page is a zeroed private page
 *    (an idle ring), so INTRODUCE works for fake domains and fails for others.
 *  - libxenevtchn: each handle's fd is a FIFO in the rundir (or a pipe), so the daemons' poll()
 *    loops work; only xs-ring-bridge writes to it, to wake the daemon for a guest's ring.
 *  - open/open64/openat/openat64 of /proc/xen/xsd_port (a pipe holding "1", no newline:
 *    oxenstored rejects one) and /proc/xen/xsd_kva (a 4096-byte memfd standing in for dom0's
 *    ring page; all zero means "nothing to read").
 *  - setrlimit: oxenstored raises RLIMIT_NOFILE at start-up, which a container refuses with
 *    EPERM and oxenstored then dies; pretend it worked.
 *  - bind/unlink/open of /var/run/xenstored/...: oxenstored has that directory compiled in
 *    and ignores XENSTORED_RUNDIR, so several daemons could not run at once. When
 *    XENSTORED_RUNDIR is set, those paths are redirected under it. C xenstored already puts
 *    its socket there, so the rewrite never touches it.
 *
 * Nothing here is product code: it is loaded only by test/harness/daemons.ts.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <dirent.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>

#define EXPORT __attribute__((visibility("default")))

/* The compiled-in run directory of oxenstored (and the default of C xenstored). */
#define DEFAULT_RUNDIR "/var/run/xenstored/"
#define XSD_PORT_PATH "/proc/xen/xsd_port"
#define XSD_KVA_PATH "/proc/xen/xsd_kva"
#define XSD_KVA_SIZE 4096

/* ------------------------------------------------------------------------------------------
 * Path redirection
 * ---------------------------------------------------------------------------------------- */

/*
 * If `path` is under /var/run/xenstored/ and XENSTORED_RUNDIR is set, write the redirected
 * path into buf and return buf; otherwise return path unchanged.
 */
/*
 * A daemon run from a private unpacked root (Debian 13's 4.20 on a Debian 12 machine) still
 * looks for its own files at the compiled-in /usr/lib/xen-X.Y/: oxenstored 4.20 loads its
 * domain-info plugin from /usr/lib/xen-4.20/ocaml/xsd_glue/xenctrl_plugin/. With
 * XEN_SSHM_PRELOAD_ROOT set, such paths are looked up under that root instead.
 */
#define XEN_LIBEXEC_PREFIX "/usr/lib/xen-"

static const char *redirect_root(const char *path, char *buf, size_t buflen)
{
    const char *root;

    if (path == NULL || strncmp(path, XEN_LIBEXEC_PREFIX, strlen(XEN_LIBEXEC_PREFIX)) != 0)
        return path;
    root = getenv("XEN_SSHM_PRELOAD_ROOT");
    if (root == NULL || root[0] == '\0')
        return path;
    if ((size_t)snprintf(buf, buflen, "%s%s", root, path) >= buflen)
        return path;
    return buf;
}

static const char *redirect_path(const char *path, char *buf, size_t buflen)
{
    const char *rundir;
    size_t plen = strlen(DEFAULT_RUNDIR);

    if (path != NULL && strncmp(path, XEN_LIBEXEC_PREFIX, strlen(XEN_LIBEXEC_PREFIX)) == 0)
        return redirect_root(path, buf, buflen);
    if (path == NULL || strncmp(path, DEFAULT_RUNDIR, plen) != 0)
        return path;
    rundir = getenv("XENSTORED_RUNDIR");
    if (rundir == NULL || rundir[0] == '\0')
        return path;
    if ((size_t)snprintf(buf, buflen, "%s/%s", rundir, path + plen) >= buflen)
        return path; /* too long to redirect: let the real call decide */
    return buf;
}

/* ------------------------------------------------------------------------------------------
 * open() family: the two /proc/xen files and the run directory
 * ---------------------------------------------------------------------------------------- */

/* A pipe whose read end yields "1" then EOF: the event channel port of dom0's ring. */
static int fake_xsd_port(void)
{
    int fds[2];

    if (pipe(fds) < 0)
        return -1;
    if (write(fds[1], "1", 1) != 1) {
        int saved = errno;
        close(fds[0]);
        close(fds[1]);
        errno = saved;
        return -1;
    }
    close(fds[1]);
    return fds[0];
}

/* A zeroed, mmap-able page standing in for dom0's xenstore ring. */
static int fake_xsd_kva(void)
{
    int fd = memfd_create("xsd_kva", MFD_CLOEXEC);

    if (fd < 0)
        return -1;
    if (ftruncate(fd, XSD_KVA_SIZE) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Returns the fake fd, -1 with errno on failure, or -2 when `path` is not one of ours. */
static int fake_open(const char *path)
{
    if (path == NULL)
        return -2;
    if (strcmp(path, XSD_PORT_PATH) == 0)
        return fake_xsd_port();
    if (strcmp(path, XSD_KVA_PATH) == 0)
        return fake_xsd_kva();
    return -2;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

static mode_t mode_arg(int flags, va_list ap)
{
    /* The mode argument exists only when the call may create a file. */
    if (flags & (O_CREAT | O_TMPFILE))
        return (mode_t)va_arg(ap, int);
    return 0;
}

#define DEFINE_OPEN(name)                                                   \
    EXPORT int name(const char *path, int flags, ...)                       \
    {                                                                       \
        static open_fn real;                                                \
        char buf[PATH_MAX];                                                 \
        va_list ap;                                                         \
        mode_t mode;                                                        \
        int fd = fake_open(path);                                           \
        if (fd != -2)                                                       \
            return fd;                                                      \
        va_start(ap, flags);                                                \
        mode = mode_arg(flags, ap);                                         \
        va_end(ap);                                                         \
        if (real == NULL)                                                   \
            real = (open_fn)dlsym(RTLD_NEXT, #name);                        \
        if (real == NULL) {                                                 \
            errno = ENOSYS;                                                 \
            return -1;                                                      \
        }                                                                   \
        return real(redirect_path(path, buf, sizeof(buf)), flags, mode);    \
    }

#define DEFINE_OPENAT(name)                                                     \
    EXPORT int name(int dirfd, const char *path, int flags, ...)                \
    {                                                                           \
        static openat_fn real;                                                  \
        char buf[PATH_MAX];                                                     \
        va_list ap;                                                             \
        mode_t mode;                                                            \
        int fd = fake_open(path);                                               \
        if (fd != -2)                                                           \
            return fd;                                                          \
        va_start(ap, flags);                                                    \
        mode = mode_arg(flags, ap);                                             \
        va_end(ap);                                                             \
        if (real == NULL)                                                       \
            real = (openat_fn)dlsym(RTLD_NEXT, #name);                          \
        if (real == NULL) {                                                     \
            errno = ENOSYS;                                                     \
            return -1;                                                          \
        }                                                                       \
        return real(dirfd, redirect_path(path, buf, sizeof(buf)), flags, mode); \
    }

/* glibc's fcntl.h may map open to open64 under _FILE_OFFSET_BITS=64; we build without it. */
DEFINE_OPEN(open)
DEFINE_OPEN(open64)
DEFINE_OPENAT(openat)
DEFINE_OPENAT(openat64)

/* ------------------------------------------------------------------------------------------
 * bind/unlink: oxenstored's compiled-in socket path
 * ---------------------------------------------------------------------------------------- */

EXPORT int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    struct sockaddr_un moved;
    char buf[sizeof(moved.sun_path)];

    if (real == NULL)
        real = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (addr != NULL && addr->sa_family == AF_UNIX && addrlen > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)addr;
        char path[sizeof(un->sun_path) + 1];
        size_t n = addrlen - offsetof(struct sockaddr_un, sun_path);
        const char *to;

        if (n > sizeof(un->sun_path))
            n = sizeof(un->sun_path);
        memcpy(path, un->sun_path, n);
        path[n] = '\0';
        to = redirect_path(path, buf, sizeof(buf));
        if (to != path) {
            memset(&moved, 0, sizeof(moved));
            moved.sun_family = AF_UNIX;
            memcpy(moved.sun_path, to, strlen(to) + 1);
            return real(sockfd, (const struct sockaddr *)&moved, sizeof(moved));
        }
    }
    return real(sockfd, addr, addrlen);
}

EXPORT int unlink(const char *path)
{
    static int (*real)(const char *);
    char buf[PATH_MAX];

    if (real == NULL)
        real = (int (*)(const char *))dlsym(RTLD_NEXT, "unlink");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(redirect_path(path, buf, sizeof(buf)));
}

/* ------------------------------------------------------------------------------------------
 * opendir/stat/access/realpath/dlopen: oxenstored 4.20's plugin under a private root
 * ---------------------------------------------------------------------------------------- */

EXPORT DIR *opendir(const char *path)
{
    static DIR *(*real)(const char *);
    char buf[PATH_MAX];

    if (real == NULL)
        real = (DIR * (*)(const char *)) dlsym(RTLD_NEXT, "opendir");
    if (real == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    return real(redirect_root(path, buf, sizeof(buf)));
}

#define DEFINE_STAT(name, type)                                              \
    EXPORT int name(const char *path, type *st)                              \
    {                                                                        \
        static int (*real)(const char *, type *);                            \
        char buf[PATH_MAX];                                                  \
        if (real == NULL)                                                    \
            real = (int (*)(const char *, type *))dlsym(RTLD_NEXT, #name);   \
        if (real == NULL) {                                                  \
            errno = ENOSYS;                                                  \
            return -1;                                                       \
        }                                                                    \
        return real(redirect_root(path, buf, sizeof(buf)), st);              \
    }

DEFINE_STAT(stat, struct stat)
DEFINE_STAT(stat64, struct stat64)

EXPORT int access(const char *path, int mode)
{
    static int (*real)(const char *, int);
    char buf[PATH_MAX];

    if (real == NULL)
        real = (int (*)(const char *, int))dlsym(RTLD_NEXT, "access");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(redirect_root(path, buf, sizeof(buf)), mode);
}

EXPORT char *realpath(const char *path, char *resolved)
{
    static char *(*real)(const char *, char *);
    char buf[PATH_MAX];

    if (real == NULL)
        real = (char *(*)(const char *, char *))dlsym(RTLD_NEXT, "realpath");
    if (real == NULL) {
        errno = ENOSYS;
        return NULL;
    }
    return real(redirect_root(path, buf, sizeof(buf)), resolved);
}

/*
 * Run through its root's loader, a daemon's /proc/self/exe is the loader, and oxenstored writes
 * that into /tool/xenstored (Sys.executable_name). With XEN_SSHM_EXE set (the daemon's path as
 * installed, e.g. /usr/lib/xen-4.20/bin/oxenstored), that is what /proc/self/exe reads.
 */
EXPORT ssize_t readlink(const char *path, char *buf, size_t size)
{
    static ssize_t (*real)(const char *, char *, size_t);
    const char *exe = getenv("XEN_SSHM_EXE");

    if (exe != NULL && exe[0] != '\0' && strcmp(path, "/proc/self/exe") == 0) {
        size_t n = strlen(exe);

        if (n > size)
            n = size;
        memcpy(buf, exe, n);
        return (ssize_t)n;
    }
    if (real == NULL)
        real = (ssize_t (*)(const char *, char *, size_t))dlsym(RTLD_NEXT, "readlink");
    if (real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    return real(path, buf, size);
}

EXPORT void *dlopen(const char *path, int flags)
{
    static void *(*real)(const char *, int);
    char buf[PATH_MAX];

    if (real == NULL)
        real = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
    if (real == NULL)
        return NULL;
    return real(redirect_root(path, buf, sizeof(buf)), flags);
}

/* ------------------------------------------------------------------------------------------
 * setrlimit: a container refuses to raise the hard file limit; oxenstored treats that as fatal
 * ---------------------------------------------------------------------------------------- */

EXPORT int setrlimit(__rlimit_resource_t resource, const struct rlimit *rlim)
{
    static int (*real)(__rlimit_resource_t, const struct rlimit *);

    if (real == NULL)
        real = (int (*)(__rlimit_resource_t, const struct rlimit *))dlsym(RTLD_NEXT, "setrlimit");
    if (real != NULL && real(resource, rlim) == 0)
        return 0;
    /* Keep whatever limit we have: the daemons work within the container's default. */
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * libxenctrl
 * ---------------------------------------------------------------------------------------- */

/* Any non-NULL pointer will do: the daemons only pass it back to us. */
static char fake_xc_handle;

EXPORT xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                       unsigned open_flags)
{
    (void)logger;
    (void)dombuild_logger;
    (void)open_flags;
    return (xc_interface *)&fake_xc_handle;
}

EXPORT int xc_interface_close(xc_interface *xch)
{
    (void)xch;
    return 0;
}

/*
 * Which domains "exist" in this fake hypervisor: domain 0 always, plus the domids listed in
 * XEN_SSHM_FAKE_DOMAINS ("1-8,12"), so tests can INTRODUCE guests and give them permissions.
 * Without the variable only domain 0 exists. Read once: the daemons never change it.
 */
#define MAX_FAKE_DOMID 0x7ff0 /* DOMID_FIRST_RESERVED */
static unsigned char fake_domains[MAX_FAKE_DOMID];
static int fake_domains_parsed;

static void parse_fake_domains(void)
{
    const char *p = getenv("XEN_SSHM_FAKE_DOMAINS");

    fake_domains_parsed = 1;
    fake_domains[0] = 1;
    while (p != NULL && *p != '\0') {
        char *end;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;

        if (end == p)
            break;
        if (*end == '-') {
            p = end + 1;
            hi = strtoul(p, &end, 10);
            if (end == p)
                break;
        }
        for (unsigned long d = lo; d <= hi && d < MAX_FAKE_DOMID; d++)
            fake_domains[d] = 1;
        p = (*end == ',') ? end + 1 : end;
        if (*end != ',')
            break;
    }
}

static int domain_exists(uint32_t domid)
{
    if (!fake_domains_parsed)
        parse_fake_domains();
    return domid < MAX_FAKE_DOMID && fake_domains[domid];
}

#ifndef XEN_SSHM_XENCTRL_GETINFO_SINGLE
/*
 * Xen 4.17's libxenctrl (Debian 12): C xenstored asks through xc_domain_getinfo. It was removed
 * in 4.18 for xc_domain_getinfo_single (below); the build says which headers it compiles
 * against (CMakeLists.txt checks for the symbol, test/harness/release-root.ts passes the macro).
 * Like the hypercall: information on existing domains from first_domid upwards, all running.
 */
EXPORT int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms, xc_dominfo_t *info)
{
    unsigned int n = 0;

    (void)xch;
    if (info == NULL)
        return 0;
    for (uint32_t d = first_domid; d < MAX_FAKE_DOMID && n < max_doms; d++) {
        if (!domain_exists(d))
            continue;
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domid = d;
        info[n].running = 1;
        n++;
    }
    return (int)n;
}
#else
/*
 * Xen 4.18 and later (4.20 of Debian 13): one domain, 0 when it exists (info filled, running),
 * else -1 with ESRCH as the hypercall answers for a missing domain.
 */
EXPORT int xc_domain_getinfo_single(xc_interface *xch, uint32_t domid, xc_domaininfo_t *info)
{
    (void)xch;
    if (!domain_exists(domid)) {
        errno = ESRCH;
        return -1;
    }
    if (info != NULL) {
        memset(info, 0, sizeof(*info));
        info->domain = (domid_t)domid;
        info->flags = XEN_DOMINF_running;
    }
    return 0;
}
#endif

EXPORT int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                                 xc_domaininfo_t *info)
{
    unsigned int n = 0;

    (void)xch;
    if (info == NULL)
        return 0;
    for (uint32_t d = first_domain; d < MAX_FAKE_DOMID && n < max_domains; d++) {
        if (!domain_exists(d))
            continue;
        memset(&info[n], 0, sizeof(info[n]));
        info[n].domain = (domid_t)d;
        info[n].flags = XEN_DOMINF_running;
        n++;
    }
    return (int)n;
}

/* ------------------------------------------------------------------------------------------
 * libxengnttab: no guests, so no ring page can be mapped
 * ---------------------------------------------------------------------------------------- */

static char fake_gnttab_handle;

EXPORT xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger;
    (void)open_flags;
    return (xengnttab_handle *)&fake_gnttab_handle;
}

EXPORT int xengnttab_close(xengnttab_handle *xgt)
{
    (void)xgt;
    return 0;
}

EXPORT int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
    (void)xgt;
    (void)nr_grants;
    return 0;
}

/*
 * A guest's xenstore ring page, for a fake existing domain (failure for any other). With
 * XENSTORED_RUNDIR set it is the shared file $XENSTORED_RUNDIR/ring-<domid>, zeroed at each
 * INTRODUCE, so xs-ring-bridge can play the guest's side of the ring; else a private page
 * (an idle ring).
 */
EXPORT void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    const char *rundir = getenv("XENSTORED_RUNDIR");
    void *page;

    (void)xgt;
    (void)ref;
    if (domid == 0 || !domain_exists(domid)) {
        errno = ESRCH;
        return NULL;
    }
    if (rundir != NULL && rundir[0] != '\0') {
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/ring-%u", rundir, domid);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
            return NULL;
        if (ftruncate(fd, XSD_KVA_SIZE) < 0) {
            close(fd);
            return NULL;
        }
        page = mmap(NULL, XSD_KVA_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
    } else {
        page = mmap(NULL, XSD_KVA_SIZE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    return page == MAP_FAILED ? NULL : page;
}

EXPORT int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    if (start_address != NULL)
        munmap(start_address, (size_t)count * XSD_KVA_SIZE);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * libxenevtchn: a pipe per handle, never written, so poll() works and nothing is pending
 * ---------------------------------------------------------------------------------------- */

/*
 * With XENSTORED_RUNDIR set, the first handle's fd is the FIFO $XENSTORED_RUNDIR/evtchn
 * (opened read-write, so it never reports EOF): xs-ring-bridge writes a 4-byte port number to
 * it to wake the daemon, and xenevtchn_pending() reads it back. Notifications the daemon sends
 * to a guest go to the FIFO $XENSTORED_RUNDIR/notify-<domid>. Without XENSTORED_RUNDIR a plain
 * pipe that nobody writes stands in.
 */
#define MAX_PORTS 4096

struct xenevtchn_handle {
    int rfd;
    int wfd;
    evtchn_port_t next_port;
    uint32_t port_domid[MAX_PORTS];
    int notify_fd[MAX_PORTS];
};

static int evtchn_handles;

static int open_fifo(const char *path)
{
    if (mkfifo(path, 0600) < 0 && errno != EEXIST)
        return -1;
    return open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

static xenevtchn_handle *new_evtchn(void)
{
    xenevtchn_handle *h = calloc(1, sizeof(*h));
    const char *rundir = getenv("XENSTORED_RUNDIR");
    int fds[2];

    if (h == NULL)
        return NULL;
    h->next_port = 1;
    for (int i = 0; i < MAX_PORTS; i++)
        h->notify_fd[i] = -1;
    if (rundir != NULL && rundir[0] != '\0') {
        char path[PATH_MAX];

        if (evtchn_handles == 0)
            snprintf(path, sizeof(path), "%s/evtchn", rundir);
        else
            snprintf(path, sizeof(path), "%s/evtchn-%d", rundir, evtchn_handles);
        evtchn_handles++;
        h->rfd = open_fifo(path);
        h->wfd = -1;
        if (h->rfd < 0) {
            free(h);
            return NULL;
        }
        return h;
    }
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(h);
        return NULL;
    }
    h->rfd = fds[0];
    h->wfd = fds[1];
    return h;
}

EXPORT xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger, unsigned open_flags)
{
    (void)logger;
    (void)open_flags;
    return new_evtchn();
}

/* Used on live update to re-adopt an inherited fd: hand out a fresh channel instead. */
EXPORT xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger, int fd, unsigned open_flags)
{
    (void)logger;
    (void)fd;
    (void)open_flags;
    return new_evtchn();
}

EXPORT int xenevtchn_close(xenevtchn_handle *xce)
{
    if (xce == NULL)
        return 0;
    close(xce->rfd);
    if (xce->wfd >= 0)
        close(xce->wfd);
    for (int i = 0; i < MAX_PORTS; i++)
        if (xce->notify_fd[i] >= 0)
            close(xce->notify_fd[i]);
    free(xce);
    return 0;
}

EXPORT int xenevtchn_fd(xenevtchn_handle *xce)
{
    return xce->rfd;
}

/* The daemon kicks a guest: one byte into that guest's notify FIFO, if a bridge listens. */
EXPORT int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    const char *rundir = getenv("XENSTORED_RUNDIR");
    char path[PATH_MAX];

    if (port >= MAX_PORTS || xce->port_domid[port] == 0 || rundir == NULL || rundir[0] == '\0')
        return 0;
    if (xce->notify_fd[port] < 0) {
        snprintf(path, sizeof(path), "%s/notify-%u", rundir, xce->port_domid[port]);
        xce->notify_fd[port] = open_fifo(path);
    }
    if (xce->notify_fd[port] >= 0 && write(xce->notify_fd[port], "!", 1) < 0) {
        /* A full FIFO already says "look at the ring". */
    }
    return 0;
}

EXPORT xenevtchn_port_or_error_t xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
    (void)virq;
    return (xenevtchn_port_or_error_t)xce->next_port++;
}

EXPORT xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                            evtchn_port_t remote_port)
{
    evtchn_port_t port = xce->next_port++;

    (void)remote_port;
    if (port < MAX_PORTS)
        xce->port_domid[port] = domid;
    return (xenevtchn_port_or_error_t)port;
}

/* Only called when the fd polled readable: a bridge wrote a port number. */
EXPORT xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
    uint32_t port;

    if (read(xce->rfd, &port, sizeof(port)) != (ssize_t)sizeof(port)) {
        errno = EAGAIN;
        return -1;
    }
    return (xenevtchn_port_or_error_t)port;
}

EXPORT int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    (void)port;
    return 0;
}

EXPORT int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    if (port < MAX_PORTS) {
        xce->port_domid[port] = 0;
        if (xce->notify_fd[port] >= 0) {
            close(xce->notify_fd[port]);
            xce->notify_fd[port] = -1;
        }
    }
    return 0;
}
