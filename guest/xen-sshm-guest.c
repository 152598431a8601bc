/*
 * xen-sshm-guest: the guest side of a xen-sshm region, for Linux domUs.
 *
 * Reads this domain's mirror of a region (/local/domain/<self>/shared_mem/<ID>, written by
 * dom0's `xen-sshm apply`) over /dev/xen/xenbus, binds the region's doorbell (an event channel
 * dom0 allocated in the owner for one borrower) through /dev/xen/evtchn, maps the shared page
 * through /dev/mem, and waits, rings or plays ping-pong with the other side.
 *
 *   xen-sshm-guest info ID
 *   xen-sshm-guest wait ID [--count N] [--timeout SEC] [--drain]
 *   xen-sshm-guest notify ID [--count N]
 *   xen-sshm-guest ping-pong ID [--lead] [--count N] [--page K] [--timeout SEC]
 * Options: --peer DOMID (owner: which borrower's doorbell), --owner DOMID --port PORT (borrower:
 * bind this port instead of the mirror's), --xenstore SOCKET (xenstore over a Unix socket
 * instead of /dev/xen/xenbus: tests, and dom0 looking at a guest's mirror through a guest
 * connection). Exit status: 0 done, 1 failed (one line on stderr naming the errno), 2 usage.
 *
 * How the owner takes the port dom0 made for it: IOCTL_EVTCHN_BIND_STATIC where the kernel has
 * it (Linux 6.5 and later, e.g. Debian 13's 6.12); older kernels (Debian 12's 6.1) answer
 * ENOSYS, and the program re-creates the port at the same number through /dev/xen/privcmd
 * (see recreate_port() and guest/README.md).
 *
 * Build: cc -static -O2 -o xen-sshm-guest xen-sshm-guest.c (scripts/build-guest.sh builds it
 * for arm64 and x86_64). Needs Linux's uapi headers (linux-libc-dev) for <xen/evtchn.h>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "xen-sshm-doorbell.h"
#include "xen-sshm-vocabulary.h"

/* <xen/evtchn.h> (Linux uapi) uses domid_t without defining it. */
typedef uint16_t domid_t;
#include <xen/evtchn.h>

#ifndef IOCTL_EVTCHN_BIND_STATIC
/* Linux 6.5's uapi (drivers/xen/evtchn.c): adopt a port allocated for this domain elsewhere. */
struct ioctl_evtchn_bind {
	unsigned int port;
};
#define IOCTL_EVTCHN_BIND_STATIC _IOC(_IOC_NONE, 'E', 7, sizeof(struct ioctl_evtchn_bind))
#endif

/*
 * Linux's uapi <xen/privcmd.h> includes a kernel-only header, so its hypercall ioctl is
 * restated here (test/guest checks it against Xen's copy, <xen/sys/privcmd.h>).
 */
struct xsg_privcmd_hypercall {
	uint64_t op;
	uint64_t arg[5];
};
#define XSG_IOCTL_PRIVCMD_HYPERCALL _IOC(_IOC_NONE, 'P', 0, sizeof(struct xsg_privcmd_hypercall))

#define PROG "xen-sshm-guest"
#define XENBUS_DEVICE "/dev/xen/xenbus"
#define EVTCHN_DEVICE "/dev/xen/evtchn"
#define PRIVCMD_DEVICE "/dev/xen/privcmd"
#define MEM_DEVICE "/dev/mem"

/* ---- errors --------------------------------------------------------------------------------- */

static const struct {
	int no;
	const char *name;
} errno_names[] = {
	{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" }, { EINTR, "EINTR" },
	{ EIO, "EIO" }, { ENXIO, "ENXIO" }, { E2BIG, "E2BIG" }, { EBADF, "EBADF" },
	{ EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" },
	{ EBUSY, "EBUSY" }, { EEXIST, "EEXIST" }, { ENODEV, "ENODEV" }, { ENOTDIR, "ENOTDIR" },
	{ EISDIR, "EISDIR" }, { EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
	{ ENOTTY, "ENOTTY" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" }, { EROFS, "EROFS" },
	{ EPIPE, "EPIPE" }, { ERANGE, "ERANGE" }, { ENOSYS, "ENOSYS" }, { ENOTEMPTY, "ENOTEMPTY" },
	{ ELOOP, "ELOOP" }, { ENAMETOOLONG, "ENAMETOOLONG" }, { EOVERFLOW, "EOVERFLOW" },
	{ EPROTO, "EPROTO" }, { EBADMSG, "EBADMSG" }, { ENOTSOCK, "ENOTSOCK" },
	{ EMSGSIZE, "EMSGSIZE" }, { EOPNOTSUPP, "EOPNOTSUPP" }, { ECONNREFUSED, "ECONNREFUSED" },
	{ ECONNRESET, "ECONNRESET" }, { EISCONN, "EISCONN" }, { ENOTCONN, "ENOTCONN" },
	{ ETIMEDOUT, "ETIMEDOUT" },
};

static const char *errname(int e)
{
	static char other[24];

	if (e < 0)
		e = -e;
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].no == e)
			return errno_names[i].name;
	snprintf(other, sizeof(other), "errno %d", e);
	return other;
}

static void release_all(void);

/* Prints "xen-sshm-guest: MESSAGE" on one line, undoes what the program set up, exits. */
static void __attribute__((noreturn, format(printf, 2, 3))) die(int status, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	release_all();
	exit(status);
}

#define usage_error(...) die(2, __VA_ARGS__)

/* Progress for the person watching: stderr, so that stdout holds results only. */
static int g_quiet;
static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;

	if (g_quiet)
		return;
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
	g_signal = sig;
}

static void check_signal(const char *during)
{
	if (g_signal)
		die(1, "interrupted by signal %d while %s", (int)g_signal, during);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds left before `deadline_ns`, for poll(); 0 once passed. */
static int ms_left(uint64_t deadline_ns)
{
	uint64_t t = now_ns();

	if (t >= deadline_ns)
		return 0;
	uint64_t ms = (deadline_ns - t + 999999u) / 1000000u;
	return ms > 0x7fffffff ? 0x7fffffff : (int)ms;
}

/* ---- numbers in the mirror --------------------------------------------------------------- */

/* "0x" and 1 to 16 hex digits, as the manager writes addresses and sizes (formatHex). */
static int parse_hex64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len < 3 || len > 18 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return -1;
	for (size_t i = 2; i < len; i++) {
		char c = s[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return -1;
		v = (v << 4) | d;
	}
	*out = v;
	return 0;
}

/* 1 to 10 decimal digits, no sign, at most `max`. */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (len < 1 || len > 10)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > XEN_SSHM_MAX_ID_LENGTH)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strchr(XEN_SSHM_ID_CHARS, id[i]))
			return 0;
	return 1;
}

/* ---- xenstore: the wire protocol (xen/include/public/io/xs_wire.h) ---------------------------- */

struct xsd_sockmsg {
	uint32_t type, req_id, tx_id, len;
};
enum { XS_DIRECTORY = 1, XS_READ = 2, XS_WATCH_EVENT = 15, XS_ERROR = 16 };
#define XS_PAYLOAD_MAX 4096 /* XENSTORE_PAYLOAD_MAX */

struct xs {
	int fd;
	/*
	 * /dev/xen/xenbus: one whole message per write(), header and payload within the driver's
	 * 4096-byte buffer, and never a second request before the reply (FACTS.md 2 and 7).
	 */
	int device;
	const char *where; /* the device or socket, for messages */
	int timeout_s;     /* for each reply */
	uint32_t req_id;
	char home[48];     /* "/local/domain/<domid>/", or "" while the domid is unknown */
	long domid;        /* -1: unknown */
};

struct xs_reply {
	uint32_t type;
	uint32_t len;
	char body[XS_PAYLOAD_MAX + 1]; /* NUL added after len bytes */
};

static void xs_open(struct xs *xs, const char *socket_path, int timeout_s)
{
	memset(xs, 0, sizeof(*xs));
	xs->timeout_s = timeout_s;
	xs->domid = -1;
	xs->req_id = 0x7873u; /* any start; ids only need to differ between requests */
	if (!socket_path) {
		xs->where = XENBUS_DEVICE;
		xs->device = 1;
		xs->fd = open(XENBUS_DEVICE, O_RDWR | O_CLOEXEC);
		if (xs->fd < 0)
			die(1, "cannot open %s: %s (not a Xen guest, or the kernel has no xenbus device)",
			    XENBUS_DEVICE, errname(errno));
		return;
	}
	struct sockaddr_un sa;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		usage_error("--xenstore %s: socket path longer than %zu bytes", socket_path, sizeof(sa.sun_path) - 1);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, socket_path);
	xs->where = socket_path;
	xs->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (xs->fd < 0)
		die(1, "socket: %s", errname(errno));
	if (connect(xs->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(1, "cannot connect to xenstored at %s: %s", socket_path, errname(errno));
}

static void xs_read_exact(struct xs *xs, void *buf, size_t n, const char *what)
{
	size_t got = 0;
	uint64_t deadline = now_ns() + (uint64_t)xs->timeout_s * 1000000000u;

	while (got < n) {
		struct pollfd p = { .fd = xs->fd, .events = POLLIN };
		int pr = poll(&p, 1, ms_left(deadline));
		if (pr < 0 && errno == EINTR) {
			check_signal("waiting for xenstored");
			continue;
		}
		if (pr < 0)
			die(1, "xenstore %s over %s: poll: %s", what, xs->where, errname(errno));
		if (pr == 0)
			die(1, "xenstore %s over %s: no reply within %d s (ETIMEDOUT)", what, xs->where, xs->timeout_s);
		ssize_t r = read(xs->fd, (char *)buf + got, n - got);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			die(1, "xenstore %s over %s: read: %s", what, xs->where, errname(errno));
		if (r == 0)
			die(1, "xenstore %s over %s: connection closed by xenstored after %zu of %zu bytes (ECONNRESET)",
			    what, xs->where, got, n);
		got += (size_t)r;
	}
}

/*
 * One request, one reply. Returns 0 with the reply in *r, or 1 when xenstored refused: its
 * errno name is then in r->body. Transport and protocol failures end the program.
 */
static int xs_request(struct xs *xs, uint32_t type, const char *path, struct xs_reply *r)
{
	static char msg[sizeof(struct xsd_sockmsg) + XS_PAYLOAD_MAX];
	size_t plen = strlen(path) + 1; /* the path's NUL is part of the payload */
	size_t max = xs->device ? XS_PAYLOAD_MAX - sizeof(struct xsd_sockmsg) : XS_PAYLOAD_MAX;
	const char *what = type == XS_READ ? "read" : "directory";
	char what_path[64 + 3072];

	snprintf(what_path, sizeof(what_path), "%s %s", what, path);
	if (plen > max)
		die(1, "xenstore %s: request of %zu bytes exceeds %zu (E2BIG)", what_path, plen, max);
	struct xsd_sockmsg h = { type, ++xs->req_id, 0, (uint32_t)plen };
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), path, plen);
	size_t total = sizeof(h) + plen, sent = 0;
	while (sent < total) {
		ssize_t w = write(xs->fd, msg + sent, total - sent);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die(1, "xenstore %s over %s: write: %s", what_path, xs->where, errname(errno));
		/* The device takes a message whole or not at all; a part would be a new message. */
		if (xs->device && (size_t)w != total)
			die(1, "xenstore %s over %s: the device took %zd of %zu bytes (EIO)", what_path, xs->where, w, total);
		sent += (size_t)w;
	}

	struct xsd_sockmsg rh;
	xs_read_exact(xs, &rh, sizeof(rh), what_path);
	if (rh.len > XS_PAYLOAD_MAX)
		die(1, "xenstore %s over %s: reply of %" PRIu32 " bytes exceeds the protocol's %d (protocol error)",
		    what_path, xs->where, rh.len, XS_PAYLOAD_MAX);
	xs_read_exact(xs, r->body, rh.len, what_path);
	r->body[rh.len] = '\0';
	r->type = rh.type;
	r->len = rh.len;
	if (rh.type == XS_WATCH_EVENT)
		die(1, "xenstore %s over %s: a watch event arrived, but this program sets no watch (protocol error)",
		    what_path, xs->where);
	if (rh.req_id != h.req_id)
		die(1, "xenstore %s over %s: reply for request %" PRIu32 ", expected %" PRIu32 " (protocol error)",
		    what_path, xs->where, rh.req_id, h.req_id);
	if (rh.type == XS_ERROR) {
		/* An errno name, NUL-terminated: EINVAL EACCES ENOENT ... (xs_wire.h xsd_errors). */
		size_t n = strnlen(r->body, rh.len);
		int ok = n > 0 && n + 1 == rh.len && n < 16;
		for (size_t i = 0; ok && i < n; i++)
			ok = (r->body[i] >= 'A' && r->body[i] <= 'Z') || (r->body[i] >= '0' && r->body[i] <= '9');
		if (!ok)
			die(1, "xenstore %s over %s: malformed error reply of %" PRIu32 " bytes (protocol error)",
			    what_path, xs->where, rh.len);
		return 1;
	}
	if (rh.type != type)
		die(1, "xenstore %s over %s: reply of type %" PRIu32 " to a request of type %" PRIu32 " (protocol error)",
		    what_path, xs->where, rh.type, type);
	return 0;
}

/* Full path of a key under this domain's home (relative when the domid is unknown). */
static void xs_path(const struct xs *xs, char *out, size_t cap, const char *rel)
{
	snprintf(out, cap, "%s%s", xs->home, rel);
}

/* Learns this domain's id from its own `domid` key (the toolstack writes it). */
static void xs_learn_domid(struct xs *xs)
{
	struct xs_reply r;
	uint64_t v;

	if (xs_request(xs, XS_READ, "domid", &r) != 0)
		return; /* then paths stay relative to the connection's home */
	if (parse_dec(r.body, r.len, XEN_SSHM_DOMID_FIRST_RESERVED - 1, &v) != 0)
		return;
	xs->domid = (long)v;
	snprintf(xs->home, sizeof(xs->home), "/local/domain/%ld/", xs->domid);
}

/* ---- the mirror (docs/doorbells.md; lib/store/records.ts writeMirror) ------------------------ */

#define MAX_DOORBELLS 1024

struct mirror {
	const char *id;
	int role;                /* XEN_SSHM_ROLE_* */
	uint64_t begin, size, offset;
	int writable;
	/* Borrower: `owner` and `doorbell` (0 when absent). */
	unsigned owner;
	unsigned doorbell;
	/* Owner: `doorbells/<borrower>` = port. */
	unsigned nbells;
	struct { unsigned borrower, port; } bells[MAX_DOORBELLS];
};

static char g_mirror_dir[128 + XEN_SSHM_MAX_ID_LENGTH];

/* xenstored refused a request on the mirror: the message, with what usually causes it. */
static void __attribute__((noreturn)) mirror_refused(const char *op, const char *path, const char *err)
{
	die(1, "xenstore %s %s: %s%s", op, path, err,
	    !strcmp(err, "EACCES") ? " (dom0 gives each domain read access to its own mirror only: perms n0 r<domid>)" : "");
}

/* Reads one key of the mirror: 0 with the value, or 1 when it does not exist (ENOENT). */
static int mirror_key(struct xs *xs, const char *key, struct xs_reply *r, int required)
{
	char rel[512], full[3072];

	snprintf(rel, sizeof(rel), "%s/%s", g_mirror_dir, key);
	xs_path(xs, full, sizeof(full), rel);
	if (xs_request(xs, XS_READ, full, r) == 0)
		return 0;
	if (!strcmp(r->body, "ENOENT") && !required)
		return 1;
	if (!strcmp(r->body, "ENOENT"))
		die(1, "mirror key %s does not exist (ENOENT): the mirror is incomplete", full);
	mirror_refused("read", full, r->body);
}

static void mirror_bad(struct xs *xs, const char *key, const struct xs_reply *r, const char *expected)
{
	char rel[512], full[3072];
	char shown[64];
	size_t n = 0;

	for (uint32_t i = 0; i < r->len && n + 5 < sizeof(shown); i++) {
		unsigned char c = (unsigned char)r->body[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			shown[n++] = (char)c;
		else
			n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", c);
	}
	shown[n] = '\0';
	snprintf(rel, sizeof(rel), "%s/%s", g_mirror_dir, key);
	xs_path(xs, full, sizeof(full), rel);
	die(1, "mirror key %s is \"%s%s\", expected %s (EINVAL)", full, shown, r->len > 40 ? "..." : "", expected);
}

static uint64_t mirror_hex(struct xs *xs, const char *key)
{
	struct xs_reply r;
	uint64_t v;

	mirror_key(xs, key, &r, 1);
	if (parse_hex64(r.body, r.len, &v) != 0)
		mirror_bad(xs, key, &r, "a hex number (0x...)");
	return v;
}

static void read_mirror(struct xs *xs, const char *id, struct mirror *m)
{
	struct xs_reply r;
	char full[3072];
	uint64_t v;

	memset(m, 0, sizeof(*m));
	m->id = id;
	snprintf(g_mirror_dir, sizeof(g_mirror_dir), "shared_mem/%s", id);
	xs_path(xs, full, sizeof(full), g_mirror_dir);
	if (xs_request(xs, XS_DIRECTORY, full, &r) != 0) {
		if (!strcmp(r.body, "ENOENT"))
			die(1, "no region %s in this domain's mirror: %s does not exist (ENOENT): not applied to this domain, or released",
			    id, full);
		mirror_refused("directory", full, r.body);
	}

	mirror_key(xs, "role", &r, 1);
	if (r.len == strlen(XEN_SSHM_ROLE_OWNER_TEXT) && !memcmp(r.body, XEN_SSHM_ROLE_OWNER_TEXT, r.len))
		m->role = XEN_SSHM_ROLE_OWNER;
	else if (r.len == strlen(XEN_SSHM_ROLE_BORROWER_TEXT) && !memcmp(r.body, XEN_SSHM_ROLE_BORROWER_TEXT, r.len))
		m->role = XEN_SSHM_ROLE_BORROWER;
	else
		mirror_bad(xs, "role", &r, "owner or borrower");

	m->begin = mirror_hex(xs, "begin");
	m->size = mirror_hex(xs, "size");
	m->offset = mirror_hex(xs, "offset");
	if (m->begin % XEN_SSHM_PAGE_SIZE || m->size % XEN_SSHM_PAGE_SIZE || m->offset % XEN_SSHM_PAGE_SIZE ||
	    m->size == 0 || m->begin + m->size < m->begin)
		die(1, "mirror %s: begin 0x%" PRIx64 ", size 0x%" PRIx64 ", offset 0x%" PRIx64
		       " do not make a window of whole %u-byte pages (EINVAL)",
		    full, m->begin, m->size, m->offset, XEN_SSHM_PAGE_SIZE);

	mirror_key(xs, "prot", &r, 1);
	if (r.len == strlen(XEN_SSHM_PROT_RW_TEXT) && !memcmp(r.body, XEN_SSHM_PROT_RW_TEXT, r.len))
		m->writable = 1;
	else if (r.len == strlen(XEN_SSHM_PROT_R_TEXT) && !memcmp(r.body, XEN_SSHM_PROT_R_TEXT, r.len))
		m->writable = 0;
	else
		mirror_bad(xs, "prot", &r, "r or rw");

	if (m->role == XEN_SSHM_ROLE_BORROWER) {
		int no_owner = mirror_key(xs, "owner", &r, 0);
		if (!no_owner) {
			if (parse_dec(r.body, r.len, XEN_SSHM_DOMID_FIRST_RESERVED - 1, &v) != 0)
				mirror_bad(xs, "owner", &r, "a domid (decimal)");
			m->owner = (unsigned)v;
		}
		if (mirror_key(xs, "doorbell", &r, 0) == 0) {
			if (parse_dec(r.body, r.len, UINT32_MAX, &v) != 0 || v == 0)
				mirror_bad(xs, "doorbell", &r, "a port number (decimal, not 0)");
			if (no_owner)
				die(1, "mirror %s has a doorbell but no owner key (EINVAL)", full);
			m->doorbell = (unsigned)v;
		}
		return;
	}

	/* Owner: doorbells/<borrower domid> = "<port>". */
	char rel[512], bells[3072];
	snprintf(rel, sizeof(rel), "%s/doorbells", g_mirror_dir);
	xs_path(xs, bells, sizeof(bells), rel);
	if (xs_request(xs, XS_DIRECTORY, bells, &r) != 0) {
		if (!strcmp(r.body, "ENOENT"))
			return;
		mirror_refused("directory", bells, r.body);
	}
	/* The whole listing first (every entry a domid, each NUL-terminated), then the ports. */
	for (uint32_t at = 0; at < r.len;) {
		const char *name = r.body + at;
		size_t n = strnlen(name, r.len - at);
		if (at + n >= r.len)
			die(1, "xenstore directory %s: an entry without its NUL (protocol error)", bells);
		at += (uint32_t)n + 1;
		if (m->nbells == MAX_DOORBELLS)
			die(1, "mirror %s lists more than %d doorbells (E2BIG)", bells, MAX_DOORBELLS);
		if (parse_dec(name, n, XEN_SSHM_DOMID_FIRST_RESERVED - 1, &v) != 0)
			die(1, "mirror %s has an entry \"%.*s\" that is not a domid (EINVAL)", bells, (int)(n > 20 ? 20 : n), name);
		m->bells[m->nbells++].borrower = (unsigned)v;
	}
	for (unsigned i = 0; i < m->nbells; i++) {
		char key[64];
		snprintf(key, sizeof(key), "doorbells/%u", m->bells[i].borrower);
		mirror_key(xs, key, &r, 1);
		if (parse_dec(r.body, r.len, UINT32_MAX, &v) != 0 || v == 0)
			mirror_bad(xs, key, &r, "a port number (decimal, not 0)");
		m->bells[i].port = (unsigned)v;
	}
}

/* ---- hypercalls from user space: /dev/xen/privcmd -------------------------------------------- */

static int g_privcmd = -1;
/*
 * The hypercall's argument lives in one locked page: Xen copies it from the caller's virtual
 * address and cannot take a page fault on the way (libxencall's reason for its buffers).
 */
static union {
	struct xen_sshm_evtchn_status status;
	struct xen_sshm_evtchn_alloc_unbound alloc;
	struct xen_sshm_evtchn_close close;
	struct xen_sshm_evtchn_bind_interdomain bind;
	char page[4096];
} g_hbuf __attribute__((aligned(4096)));

/* 0, or -errno when /dev/xen/privcmd cannot be opened. */
static int privcmd_open(void)
{
	if (g_privcmd >= 0)
		return 0;
	g_privcmd = open(PRIVCMD_DEVICE, O_RDWR | O_CLOEXEC);
	if (g_privcmd < 0)
		return -errno;
	if (mlock(&g_hbuf, sizeof(g_hbuf)) < 0) {
		int e = errno;
		close(g_privcmd);
		g_privcmd = -1;
		return -e;
	}
	return 0;
}

/* HYPERVISOR_event_channel_op(cmd, &g_hbuf) as this domain: 0 or -errno (Xen's). */
static int evtchn_op(unsigned cmd)
{
	struct xsg_privcmd_hypercall h = { XEN_SSHM_HYPERVISOR_event_channel_op, { cmd, (uint64_t)(uintptr_t)&g_hbuf, 0, 0, 0 } };
	int rc = ioctl(g_privcmd, XSG_IOCTL_PRIVCMD_HYPERCALL, &h);

	return rc < 0 ? -errno : rc;
}

static int hc_status(unsigned dom, unsigned port, struct xen_sshm_evtchn_status *st)
{
	memset(&g_hbuf.status, 0, sizeof(g_hbuf.status));
	g_hbuf.status.dom = (xen_sshm_domid_t)dom;
	g_hbuf.status.port = port;
	int rc = evtchn_op(XEN_SSHM_EVTCHNOP_status);
	if (rc == 0)
		*st = g_hbuf.status;
	return rc;
}

/* A new unbound port in this domain that `remote` may bind: the port, or -errno. */
static int hc_alloc_unbound(unsigned remote)
{
	memset(&g_hbuf.alloc, 0, sizeof(g_hbuf.alloc));
	g_hbuf.alloc.dom = XEN_SSHM_DOMID_SELF;
	g_hbuf.alloc.remote_dom = (xen_sshm_domid_t)remote;
	int rc = evtchn_op(XEN_SSHM_EVTCHNOP_alloc_unbound);
	return rc < 0 ? rc : (int)g_hbuf.alloc.port;
}

static int hc_bind_interdomain(unsigned remote, unsigned remote_port)
{
	memset(&g_hbuf.bind, 0, sizeof(g_hbuf.bind));
	g_hbuf.bind.remote_dom = (xen_sshm_domid_t)remote;
	g_hbuf.bind.remote_port = remote_port;
	int rc = evtchn_op(XEN_SSHM_EVTCHNOP_bind_interdomain);
	return rc < 0 ? rc : (int)g_hbuf.bind.local_port;
}

static int hc_close(unsigned port)
{
	g_hbuf.close.port = port;
	return evtchn_op(XEN_SSHM_EVTCHNOP_close);
}

static const char *status_text(const struct xen_sshm_evtchn_status *st, char *buf, size_t cap)
{
	switch (st->status) {
	case XEN_SSHM_EVTCHNSTAT_closed: snprintf(buf, cap, "closed"); break;
	case XEN_SSHM_EVTCHNSTAT_unbound: snprintf(buf, cap, "unbound for d%u", st->u.unbound.dom); break;
	case XEN_SSHM_EVTCHNSTAT_interdomain:
		snprintf(buf, cap, "bound to port %u of d%u", st->u.interdomain.port, st->u.interdomain.dom);
		break;
	case XEN_SSHM_EVTCHNSTAT_pirq: snprintf(buf, cap, "a physical IRQ's"); break;
	case XEN_SSHM_EVTCHNSTAT_virq: snprintf(buf, cap, "a virtual IRQ's (virq %u)", st->u.virq); break;
	case XEN_SSHM_EVTCHNSTAT_ipi: snprintf(buf, cap, "an IPI's"); break;
	default: snprintf(buf, cap, "in state %u", st->status); break;
	}
	return buf;
}

/* ---- the doorbell: /dev/xen/evtchn ----------------------------------------------------------- */

/*
 * EPERM from Xen for an event channel between two domUs: the default XSM rules never give it
 * (bind_interdomain is XSM_HOOK, alloc_unbound for this domain XSM_TARGET with itself as
 * target, xen/include/xsm/dummy.h); SILO does, for any pair of unprivileged domains
 * (xen/xsm/silo.c: silo_evtchn_unbound, silo_evtchn_interdomain). Xen built with XSM picks
 * SILO by default on Arm (xen/common/Kconfig, XSM_SILO_DEFAULT): Debian's arm64 Xen does.
 */
#define XSM_HINT \
	"Xen's XSM forbids event channels between two unprivileged domains (SILO mode, the default of an Arm Xen built with XSM, as Debian's; or a FLASK policy): boot Xen with xsm=dummy, or allow it in the FLASK policy"

enum bind_how { BOUND_NONE, BOUND_INTERDOMAIN, BOUND_STATIC, BOUND_RECREATED };

struct doorbell {
	int fd;                 /* /dev/xen/evtchn */
	enum bind_how how;
	unsigned local_port;    /* this domain's end */
	unsigned peer;          /* the domain at the other end */
	unsigned remote_port;   /* borrower: the owner's port it bound */
	int lockfd;
};

static struct doorbell g_db = { -1, BOUND_NONE, 0, 0, 0, -1 };

#define MAX_HOLDS 4096

/*
 * Takes every free port below `port` (unbound ports for this domain itself), so that Xen's
 * next allocation in this domain, which picks the lowest free port (get_free_port(),
 * xen/common/event_channel.c), is `port` once it is freed. `port` must be in use now. Returns
 * how many were taken (in holds[]), or -errno.
 */
static int hold_ports_below(unsigned port, unsigned *holds)
{
	int n = 0;

	for (;;) {
		int p = hc_alloc_unbound(XEN_SSHM_DOMID_SELF);
		if (p < 0 || (unsigned)p == port || n == MAX_HOLDS) {
			if (p >= 0)
				hc_close((unsigned)p);
			for (int i = 0; i < n; i++)
				hc_close(holds[i]);
			return p < 0 ? p : (unsigned)p == port ? -EEXIST : -ENOSPC;
		}
		if ((unsigned)p > port) {
			hc_close((unsigned)p);
			return n;
		}
		holds[n++] = (unsigned)p;
	}
}

static void release_holds(const unsigned *holds, int n)
{
	for (int i = 0; i < n; i++)
		hc_close(holds[i]);
}

static void take_port_lock(unsigned port)
{
	char path[96];
	const char *dir = access("/run", W_OK) == 0 ? "/run" : "/tmp";

	snprintf(path, sizeof(path), "%s/xen-sshm-guest.port-%u.lock", dir, port);
	g_db.lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (g_db.lockfd < 0)
		die(1, "cannot open the lock %s: %s", path, errname(errno));
	if (flock(g_db.lockfd, LOCK_EX | LOCK_NB) < 0)
		die(1, "port %u is in use by another xen-sshm-guest in this domain (lock %s: %s)", port, path,
		    errname(errno));
}

static void open_evtchn(void)
{
	g_db.fd = open(EVTCHN_DEVICE, O_RDWR | O_CLOEXEC);
	if (g_db.fd < 0)
		die(1, "cannot open %s: %s (load the xen-evtchn module: modprobe xen-evtchn)", EVTCHN_DEVICE,
		    errname(errno));
}

/*
 * Why Xen refused a borrower's bind, when the borrower may ask (EVTCHNOP_status on another
 * domain's port needs privilege over it: xen-sshm's set_target on Arm gives a borrower that).
 */
static void explain_refusal(unsigned owner, unsigned port, long self, char *out, size_t cap)
{
	struct xen_sshm_evtchn_status st;
	char who[48];

	if (self >= 0)
		snprintf(who, sizeof(who), "this domain (d%ld)", self);
	else
		snprintf(who, sizeof(who), "this domain");
	int rc = privcmd_open();
	const char *asked = PRIVCMD_DEVICE;
	if (rc == 0) {
		rc = hc_status(owner, port, &st);
		asked = "EVTCHNOP_status";
	}
	if (rc != 0) {
		snprintf(out, cap, "port %u of d%u is not waiting for %s: made for another borrower, already bound, or closed (%s: %s)",
			 port, owner, who, asked, errname(rc));
		return;
	}
	if (st.status == XEN_SSHM_EVTCHNSTAT_unbound)
		snprintf(out, cap, "port %u of d%u was made for d%u, not for %s", port, owner, st.u.unbound.dom, who);
	else if (st.status == XEN_SSHM_EVTCHNSTAT_interdomain && (long)st.u.interdomain.dom == self)
		snprintf(out, cap, "port %u of d%u is already bound by %s (its port %u): another program holds it",
			 port, owner, who, st.u.interdomain.port);
	else if (st.status == XEN_SSHM_EVTCHNSTAT_interdomain)
		snprintf(out, cap, "port %u of d%u is already bound by d%u", port, owner, st.u.interdomain.dom);
	else if (st.status == XEN_SSHM_EVTCHNSTAT_closed)
		snprintf(out, cap, "port %u of d%u is closed", port, owner);
	else {
		char s[64];
		snprintf(out, cap, "port %u of d%u is %s, not a doorbell", port, owner, status_text(&st, s, sizeof(s)));
	}
}

/* Borrower: IOCTL_EVTCHN_BIND_INTERDOMAIN to the owner's port. */
static void bind_borrower(unsigned owner, unsigned port, long self)
{
	open_evtchn();
	struct ioctl_evtchn_bind_interdomain b = { owner, port };
	int rc = ioctl(g_db.fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &b);
	if (rc < 0) {
		int e = errno;
		char why[256];
		if (e == EINVAL) {
			explain_refusal(owner, port, self, why, sizeof(why));
			die(1, "Xen refused to bind port %u of d%u (EINVAL): %s", port, owner, why);
		}
		if (e == EPERM)
			die(1, "Xen refused to bind port %u of d%u (EPERM): %s", port, owner, XSM_HINT);
		if (e == EACCES)
			die(1, "cannot bind port %u of d%u (EACCES): this %s is restricted to another domain (IOCTL_EVTCHN_RESTRICT_DOMID)",
			    port, owner, EVTCHN_DEVICE);
		if (e == ESRCH)
			die(1, "cannot bind port %u of d%u (ESRCH): no domain d%u (the owner is gone)", port, owner, owner);
		die(1, "cannot bind port %u of d%u: %s", port, owner, errname(e));
	}
	g_db.how = BOUND_INTERDOMAIN;
	g_db.local_port = (unsigned)rc;
	g_db.peer = owner;
	g_db.remote_port = port;
	note("doorbell: bound port %u of d%u as local port %u (IOCTL_EVTCHN_BIND_INTERDOMAIN)", port, owner, g_db.local_port);
}

/*
 * Owner on a kernel without IOCTL_EVTCHN_BIND_STATIC: closes `port` and makes it again at the
 * same number through /dev/xen/evtchn, so that the kernel delivers its events to this program.
 * Unbound for the borrower: IOCTL_EVTCHN_BIND_UNBOUND_PORT; already bound by the borrower:
 * IOCTL_EVTCHN_BIND_INTERDOMAIN to the borrower's port (closing ours returned it to unbound,
 * remote kept; binding sets our end pending, covering a ring lost in between). The free ports
 * below are held meanwhile so that the lowest free port is `port`.
 */
static void recreate_port(unsigned port, unsigned borrower, const struct xen_sshm_evtchn_status *st)
{
	static unsigned holds[MAX_HOLDS];
	/*
	 * First ask whether Xen lets this domain make a port for the borrower at all (XSM SILO
	 * refuses it, EPERM): closing the port before knowing would lose it.
	 */
	int probe = hc_alloc_unbound(borrower);
	if (probe < 0)
		die(1, "cannot re-create port %u: Xen refuses this domain a port for d%u (EVTCHNOP_alloc_unbound: %s)%s%s; port %u left as dom0 made it",
		    port, borrower, errname(probe), probe == -EPERM ? ": " : "", probe == -EPERM ? XSM_HINT : "", port);
	hc_close((unsigned)probe);

	int n = hold_ports_below(port, holds);

	if (n < 0)
		die(1, "cannot re-create port %u: taking the free ports below it failed: %s", port, errname(n));
	int rc = hc_close(port);
	if (rc < 0) {
		release_holds(holds, n);
		die(1, "cannot re-create port %u: EVTCHNOP_close: %s", port, errname(rc));
	}
	int got = -1;
	const char *step = "IOCTL_EVTCHN_BIND_UNBOUND_PORT";
	if (st->status == XEN_SSHM_EVTCHNSTAT_interdomain) {
		struct ioctl_evtchn_bind_interdomain b = { st->u.interdomain.dom, st->u.interdomain.port };
		step = "IOCTL_EVTCHN_BIND_INTERDOMAIN";
		got = ioctl(g_db.fd, IOCTL_EVTCHN_BIND_INTERDOMAIN, &b);
		if (got < 0 && errno == EINVAL) /* the borrower closed its end meanwhile */
			got = -2;
	}
	if (st->status != XEN_SSHM_EVTCHNSTAT_interdomain || got == -2) {
		struct ioctl_evtchn_bind_unbound_port u = { borrower };
		step = "IOCTL_EVTCHN_BIND_UNBOUND_PORT";
		got = ioctl(g_db.fd, IOCTL_EVTCHN_BIND_UNBOUND_PORT, &u);
	}
	int e = errno;
	release_holds(holds, n);
	if (got < 0) {
		/* Put the port back as dom0 made it, if Xen still gives that number. */
		int back = hc_alloc_unbound(borrower);
		if (back >= 0 && (unsigned)back != port)
			hc_close((unsigned)back);
		die(1, "cannot re-create port %u through %s: %s after EVTCHNOP_close: %s%s%s%s%s", port, EVTCHN_DEVICE, step,
		    errname(e), e == EPERM ? " (" : "", e == EPERM ? XSM_HINT : "", e == EPERM ? ")" : "",
		    back >= 0 && (unsigned)back == port ? " (put back unbound for the borrower)" : " (the port is lost: re-apply the borrower in dom0)");
	}
	if ((unsigned)got != port) {
		struct ioctl_evtchn_unbind u = { (unsigned)got };
		ioctl(g_db.fd, IOCTL_EVTCHN_UNBIND, &u);
		die(1, "re-creating port %u gave port %d: another allocation took %u meanwhile (EBUSY; re-apply the borrower in dom0)",
		    port, got, port);
	}
}

/*
 * Owner: takes the port dom0 allocated in this domain for `borrower`. Checks its state first
 * where /dev/xen/privcmd allows (it must be unbound for, or bound to, that borrower).
 */
static void bind_owner(unsigned port, unsigned borrower)
{
	struct xen_sshm_evtchn_status st;
	char s[80];
	int have_status = 0;

	open_evtchn();
	take_port_lock(port);
	/*
	 * privcmd: absent (module not loaded), or present but refusing hypercalls: since XSA-482
	 * (Linux stable, 2026) a domU's privcmd allows none unless loaded with unrestricted=1.
	 */
	int pc = privcmd_open();
	if (pc == 0) {
		int rc = hc_status(XEN_SSHM_DOMID_SELF, port, &st);
		if (rc == -EPERM || rc == -EACCES)
			pc = rc;
		else if (rc < 0)
			die(1, "cannot look at port %u of this domain (EVTCHNOP_status): %s", port, errname(rc));
	}
	if (pc == 0) {
		int ok = (st.status == XEN_SSHM_EVTCHNSTAT_unbound && st.u.unbound.dom == borrower) ||
			 (st.status == XEN_SSHM_EVTCHNSTAT_interdomain && st.u.interdomain.dom == borrower);
		if (!ok)
			die(1, "port %u of this domain is %s, not the doorbell for d%u (EINVAL): the mirror is stale (re-apply in dom0)",
			    port, status_text(&st, s, sizeof(s)), borrower);
		have_status = 1;
	}

	struct ioctl_evtchn_bind sb = { port };
	if (ioctl(g_db.fd, IOCTL_EVTCHN_BIND_STATIC, &sb) == 0) {
		g_db.how = BOUND_STATIC;
		g_db.local_port = port;
		g_db.peer = borrower;
		note("doorbell: adopted port %u (for d%u) with IOCTL_EVTCHN_BIND_STATIC", port, borrower);
		return;
	}
	int e = errno;
	struct utsname u;
	uname(&u);
	if (e != ENOSYS && e != ENOTTY)
		die(1, "cannot adopt port %u with IOCTL_EVTCHN_BIND_STATIC: %s", port, errname(e));
	/* Linux before 6.5 (e.g. Debian 12's 6.1): re-create the port at its number. */
	if (!have_status)
		die(1, "cannot adopt port %u: Linux %s lacks IOCTL_EVTCHN_BIND_STATIC (%s; Linux 6.5 and later have it), and the fallback needs hypercalls through %s: %s%s",
		    port, u.release, errname(e), PRIVCMD_DEVICE, errname(pc),
		    pc == -EPERM || pc == -EACCES
			    ? " (since XSA-482 a domU's privcmd makes them only when loaded with unrestricted=1, e.g. boot option xen_privcmd.unrestricted=1, and the kernel is not locked down)"
			    : " (load the xen-privcmd module)");
	recreate_port(port, borrower, &st);
	g_db.how = BOUND_RECREATED;
	g_db.local_port = port;
	g_db.peer = borrower;
	note("doorbell: adopted port %u (for d%u) by re-creating it: Linux %s lacks IOCTL_EVTCHN_BIND_STATIC (%s)",
	     port, borrower, u.release, errname(e));
}

/*
 * Undoes the binding, leaving Xen's state as dom0 made it: a borrower's close returns the
 * owner's port to unbound (remote kept); an owner's statically bound port stays open; a
 * re-created port is closed by the kernel on unbind, so it is made once more at its number
 * through privcmd, unbound for the borrower or bound to the borrower's port as before.
 */
static void release_doorbell(void)
{
	if (g_db.fd < 0)
		return;
	if (g_db.how == BOUND_RECREATED) {
		static unsigned holds[MAX_HOLDS];
		struct xen_sshm_evtchn_status st;
		unsigned port = g_db.local_port;
		int have = hc_status(XEN_SSHM_DOMID_SELF, port, &st) == 0;
		int n = hold_ports_below(port, holds);
		struct ioctl_evtchn_unbind u = { port };
		ioctl(g_db.fd, IOCTL_EVTCHN_UNBIND, &u);
		/* The kernel closes the port as it unbinds; wait (1 s at most) to see it closed. */
		struct xen_sshm_evtchn_status now;
		for (int i = 0; i < 1000; i++) {
			if (hc_status(XEN_SSHM_DOMID_SELF, port, &now) != 0 || now.status == XEN_SSHM_EVTCHNSTAT_closed)
				break;
			usleep(1000);
		}
		int got = -1;
		if (have && st.status == XEN_SSHM_EVTCHNSTAT_interdomain)
			got = hc_bind_interdomain(st.u.interdomain.dom, st.u.interdomain.port);
		if (got < 0)
			got = hc_alloc_unbound(g_db.peer);
		if (n > 0)
			release_holds(holds, n);
		if (got >= 0 && (unsigned)got != port) {
			hc_close((unsigned)got);
			fprintf(stderr, PROG ": could not put port %u back (Xen gave %d): re-apply the borrower d%u in dom0\n",
				port, got, g_db.peer);
		} else if (got < 0) {
			fprintf(stderr, PROG ": could not put port %u back: %s: re-apply the borrower d%u in dom0\n", port,
				errname(got), g_db.peer);
		}
	}
	close(g_db.fd);
	g_db.fd = -1;
	g_db.how = BOUND_NONE;
}

static void release_all(void)
{
	release_doorbell();
}

static void ring(void)
{
	struct ioctl_evtchn_notify n = { g_db.local_port };

	if (ioctl(g_db.fd, IOCTL_EVTCHN_NOTIFY, &n) < 0)
		die(1, "cannot ring port %u: %s", g_db.local_port, errname(errno));
}

/*
 * Blocks in poll() until the doorbell rings or the deadline passes; 1 on an event (the port is
 * re-enabled before returning), 0 on timeout.
 */
static int wait_event(uint64_t deadline_ns)
{
	for (;;) {
		check_signal("waiting for the doorbell");
		struct pollfd p = { .fd = g_db.fd, .events = POLLIN };
		int pr = poll(&p, 1, ms_left(deadline_ns));
		if (pr < 0 && errno == EINTR) {
			check_signal("waiting for the doorbell");
			continue;
		}
		if (pr < 0)
			die(1, "poll %s: %s", EVTCHN_DEVICE, errname(errno));
		if (pr == 0)
			return 0;
		if (p.revents & POLLERR)
			die(1, "%s overflowed its event ring (EFBIG)", EVTCHN_DEVICE);
		uint32_t ports[64];
		ssize_t r = read(g_db.fd, ports, sizeof(ports));
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r < 0)
			die(1, "read %s: %s", EVTCHN_DEVICE, errname(errno));
		int mine = 0;
		for (ssize_t i = 0; i < r / 4; i++)
			if (ports[i] == g_db.local_port)
				mine = 1;
		/* The kernel masks a port once it fired; writing its number back re-enables it. */
		uint32_t again = g_db.local_port;
		if (mine && write(g_db.fd, &again, sizeof(again)) != (ssize_t)sizeof(again))
			die(1, "re-enabling port %u on %s: %s", g_db.local_port, EVTCHN_DEVICE, errname(errno));
		if (mine)
			return 1;
	}
}

/* ---- options ---------------------------------------------------------------------------------- */

struct opts {
	const char *command;
	const char *id;
	const char *xenstore;
	long peer, owner, port;
	long count;
	long page;
	long timeout_s;
	int lead, drain;
};

static long parse_opt_num(const char *opt, const char *v, long min, long max)
{
	uint64_t n;

	if (!v)
		usage_error("%s needs a value", opt);
	if (parse_dec(v, strlen(v), (uint64_t)max, &n) != 0 || (long)n < min)
		usage_error("%s %s: expected a whole number from %ld to %ld", opt, v, min, max);
	return (long)n;
}

static const char USAGE[] =
	"usage: " PROG " COMMAND ID [options]\n"
	"  info ID                       print this domain's mirror of region ID and its doorbell\n"
	"  wait ID [--count N] [--timeout SEC] [--drain]\n"
	"                                bind the doorbell and block until it rings N times\n"
	"  notify ID [--count N]         bind the doorbell and ring it N times\n"
	"  ping-pong ID [--lead] [--count N] [--page K] [--timeout SEC]\n"
	"                                N round trips through the region's page K: start the\n"
	"                                responder first, then the side with --lead\n"
	"options:\n"
	"  --peer DOMID       owner: the borrower whose doorbell to use (needed when several)\n"
	"  --owner DOMID --port PORT\n"
	"                     borrower: bind this port of that domain instead of the mirror's\n"
	"                     (wait and notify then read no mirror at all)\n"
	"  --timeout SEC      how long to wait for xenstored, the doorbell, the other side (30)\n"
	"  --xenstore SOCKET  xenstore over a Unix socket instead of " XENBUS_DEVICE "\n"
	"  --quiet            no progress lines on stderr\n"
	"exit status: 0 done, 1 failed, 2 usage\n";

static void parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->peer = o->owner = o->port = -1;
	o->count = -1;
	o->page = 0;
	o->timeout_s = 30;
	int positional = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(USAGE, stdout);
			exit(0);
		} else if (!strcmp(a, "--peer")) {
			o->peer = parse_opt_num(a, v, 0, XEN_SSHM_DOMID_FIRST_RESERVED - 1); i++;
		} else if (!strcmp(a, "--owner")) {
			o->owner = parse_opt_num(a, v, 0, XEN_SSHM_DOMID_FIRST_RESERVED - 1); i++;
		} else if (!strcmp(a, "--port")) {
			o->port = parse_opt_num(a, v, 1, 0x7fffffff); i++;
		} else if (!strcmp(a, "--count")) {
			o->count = parse_opt_num(a, v, 1, 10000000); i++;
		} else if (!strcmp(a, "--page")) {
			o->page = parse_opt_num(a, v, 0, 0x7fffffff); i++;
		} else if (!strcmp(a, "--timeout")) {
			o->timeout_s = parse_opt_num(a, v, 1, 86400); i++;
		} else if (!strcmp(a, "--xenstore")) {
			if (!v)
				usage_error("--xenstore needs a value");
			o->xenstore = v; i++;
		} else if (!strcmp(a, "--lead")) {
			o->lead = 1;
		} else if (!strcmp(a, "--drain")) {
			o->drain = 1;
		} else if (!strcmp(a, "--quiet")) {
			g_quiet = 1;
		} else if (a[0] == '-' && a[1] != '\0') {
			usage_error("unknown option %s (see --help)", a);
		} else if (positional == 0) {
			o->command = a; positional++;
		} else if (positional == 1) {
			o->id = a; positional++;
		} else {
			usage_error("unexpected argument %s (see --help)", a);
		}
	}
	if (!o->command)
		usage_error("no command: info, wait, notify or ping-pong (see --help)");
	if (strcmp(o->command, "info") && strcmp(o->command, "wait") && strcmp(o->command, "notify") &&
	    strcmp(o->command, "ping-pong"))
		usage_error("unknown command %s: info, wait, notify or ping-pong (see --help)", o->command);
	if (!o->id)
		usage_error("%s needs a region ID (see --help)", o->command);
	if (!valid_id(o->id))
		usage_error("%.200s is not a region ID (1 to %d letters, digits or _)", o->id, XEN_SSHM_MAX_ID_LENGTH);
	if ((o->owner >= 0) != (o->port >= 0))
		usage_error("--owner and --port go together");
	if (o->count < 0)
		o->count = strcmp(o->command, "ping-pong") ? 1 : 1000;
	int is_info = !strcmp(o->command, "info");
	if (is_info && (o->peer >= 0 || o->owner >= 0 || o->lead || o->drain))
		usage_error("info takes no doorbell options");
	if (o->lead && strcmp(o->command, "ping-pong"))
		usage_error("--lead is for ping-pong");
	if (o->drain && strcmp(o->command, "wait"))
		usage_error("--drain is for wait");
}

/* ---- commands ---------------------------------------------------------------------------------- */

static void print_info(const struct xs *xs, const struct mirror *m)
{
	printf("id %s\n", m->id);
	if (xs->domid >= 0)
		printf("domid %ld\n", xs->domid);
	printf("role %s\n", m->role == XEN_SSHM_ROLE_OWNER ? XEN_SSHM_ROLE_OWNER_TEXT : XEN_SSHM_ROLE_BORROWER_TEXT);
	printf("begin 0x%" PRIx64 "\nsize 0x%" PRIx64 "\noffset 0x%" PRIx64 "\nprot %s\n", m->begin, m->size, m->offset,
	       m->writable ? XEN_SSHM_PROT_RW_TEXT : XEN_SSHM_PROT_R_TEXT);
	if (m->role == XEN_SSHM_ROLE_BORROWER) {
		if (m->owner || m->doorbell)
			printf("owner %u\n", m->owner);
		if (m->doorbell)
			printf("doorbell %u\n", m->doorbell);
		else
			printf("doorbell none\n");
		return;
	}
	printf("doorbells");
	if (m->nbells == 0)
		printf(" none");
	for (unsigned i = 0; i < m->nbells; i++)
		printf(" %u=%u", m->bells[i].borrower, m->bells[i].port);
	printf("\n");
}

/* Binds the doorbell this domain has in region `m` (or the one named by --owner/--port). */
static void bind_doorbell(const struct opts *o, const struct xs *xs, const struct mirror *m)
{
	char mdir[3072];

	xs_path(xs, mdir, sizeof(mdir), g_mirror_dir);
	if (m->role == XEN_SSHM_ROLE_BORROWER) {
		if (o->peer >= 0)
			usage_error("--peer is for the owner; this domain borrows %s", m->id);
		if (o->owner >= 0) {
			bind_borrower((unsigned)o->owner, (unsigned)o->port, xs->domid);
			return;
		}
		if (!m->doorbell)
			die(1, "region %s has no doorbell for this domain: %s/doorbell does not exist (ENOENT): the owner's region has doorbell=no, or this borrower declined it",
			    m->id, mdir);
		bind_borrower(m->owner, m->doorbell, xs->domid);
		return;
	}
	if (o->owner >= 0)
		usage_error("--owner and --port are for a borrower; this domain owns %s", m->id);
	if (m->nbells == 0)
		die(1, "region %s has no doorbell: %s/doorbells does not exist (ENOENT): the region has doorbell=no, or no borrower has one yet",
		    m->id, mdir);
	unsigned port = 0, peer = 0;
	if (o->peer >= 0) {
		for (unsigned i = 0; i < m->nbells; i++)
			if (m->bells[i].borrower == (unsigned)o->peer) {
				port = m->bells[i].port;
				peer = m->bells[i].borrower;
			}
		if (!port)
			die(1, "region %s has no doorbell for d%ld: %s/doorbells/%ld does not exist (ENOENT)", m->id, o->peer,
			    mdir, o->peer);
	} else if (m->nbells == 1) {
		port = m->bells[0].port;
		peer = m->bells[0].borrower;
	} else {
		char list[256];
		size_t n = 0;
		for (unsigned i = 0; i < m->nbells && n + 16 < sizeof(list); i++)
			n += (size_t)snprintf(list + n, sizeof(list) - n, "%sd%u", i ? ", " : "", m->bells[i].borrower);
		usage_error("region %s has doorbells for %u borrowers (%s): choose one with --peer DOMID", m->id, m->nbells, list);
	}
	bind_owner(port, peer);
}

static int cmd_wait(const struct opts *o)
{
	uint64_t t0 = now_ns();
	long got = 0;

	if (o->drain) {
		/* Events already pending when bound (Xen sets a fresh binding pending): not rings. */
		while (wait_event(now_ns()))
			note("wait: drained an event pending at bind");
	}
	while (got < o->count) {
		if (!wait_event(now_ns() + (uint64_t)o->timeout_s * 1000000000u))
			die(1, "wait: %ld of %ld notifications on port %u within %ld s (ETIMEDOUT)", got, o->count,
			    g_db.local_port, o->timeout_s);
		got++;
	}
	printf("wait: %ld notification%s on port %u (from d%u) after %.3f s\n", got, got == 1 ? "" : "s",
	       g_db.local_port, g_db.peer, (double)(now_ns() - t0) / 1e9);
	return 0;
}

static int cmd_notify(const struct opts *o)
{
	for (long i = 0; i < o->count; i++) {
		check_signal("ringing");
		ring();
	}
	printf("notify: rang port %u (to d%u) %ld time%s\n", g_db.local_port, g_db.peer, o->count, o->count == 1 ? "" : "s");
	return 0;
}

/* Both sides' words on the ping-pong page: session (high 32 bits) and sequence (low). */
#define SLOT_OWNER 0
#define SLOT_BORROWER 8 /* 64-bit words: byte 64 */

static volatile uint64_t *map_page(const struct mirror *m, long page)
{
	uint64_t region_off = (uint64_t)page * XEN_SSHM_PAGE_SIZE;

	if (region_off < m->offset || region_off >= m->offset + m->size)
		die(1, "page %ld of region %s is outside this domain's window (region pages %" PRIu64 " to %" PRIu64 "; EINVAL)",
		    page, m->id, m->offset / XEN_SSHM_PAGE_SIZE, (m->offset + m->size) / XEN_SSHM_PAGE_SIZE - 1);
	uint64_t gpa = m->begin + (region_off - m->offset);
	int fd = open(MEM_DEVICE, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		die(1, "cannot open %s: %s (needs root, and a kernel that allows it)", MEM_DEVICE, errname(errno));
	/* mmap, never read(): arm64 refuses read() of /dev/mem outside the guest's RAM. */
	void *p = mmap(NULL, XEN_SSHM_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)gpa);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		die(1, "cannot map 0x%" PRIx64 " (region %s page %ld) through %s: %s", gpa, m->id, page, MEM_DEVICE, errname(e));
	return (volatile uint64_t *)p;
}

/*
 * Stores become visible to the other domain before the doorbell rings. The page is mapped as
 * device memory on arm64 (outside the kernel's RAM), so aligned 64-bit loads and stores only.
 */
static void publish(volatile uint64_t *slot, uint64_t v)
{
	*slot = v;
#if defined(__aarch64__)
	__asm__ __volatile__("dsb sy" ::: "memory");
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static uint64_t observe(volatile uint64_t *slot)
{
	uint64_t v = *slot;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define WORD(session, seq) (((uint64_t)(session) << 32) | (uint32_t)(seq))

static int cmd_ping_pong(const struct opts *o, const struct mirror *m)
{
	volatile uint64_t *page = map_page(m, o->page);
	int owner = m->role == XEN_SSHM_ROLE_OWNER;
	volatile uint64_t *mine = page + (owner ? SLOT_OWNER : SLOT_BORROWER);
	volatile uint64_t *theirs = page + (owner ? SLOT_BORROWER : SLOT_OWNER);
	uint64_t timeout_ns = (uint64_t)o->timeout_s * 1000000000u;
	long n = o->count, spurious = 0;
	uint64_t *rtt = NULL;

	if (o->lead) {
		rtt = calloc((size_t)n, sizeof(*rtt));
		if (!rtt)
			die(1, "ping-pong: no memory for %ld round-trip times (ENOMEM)", n);
	}
	uint32_t session;
	if (!o->lead) {
		/* The responder names the session: a fresh nonzero number, announced with sequence 0. */
		session = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
		publish(mine, WORD(session, 0));
		ring();
		note("ping-pong: responder ready (session %08x) on page %ld of %s", session, o->page, m->id);
	} else {
		uint64_t deadline = now_ns() + timeout_ns;
		for (;;) {
			uint64_t v = observe(theirs);
			if ((uint32_t)v == 0 && (v >> 32) != 0) {
				session = (uint32_t)(v >> 32);
				break;
			}
			if (!wait_event(deadline))
				die(1, "ping-pong: no responder on page %ld of %s within %ld s: start the other side first (its word reads 0x%016" PRIx64 "; ETIMEDOUT)",
				    o->page, m->id, o->timeout_s, v);
		}
		note("ping-pong: leading session %08x with d%u, %ld round trips", session, g_db.peer, n);
	}

	uint64_t t_start = now_ns();
	for (long i = 1; i <= n; i++) {
		uint64_t t0 = now_ns();
		if (o->lead) {
			publish(mine, WORD(session, i));
			ring();
		}
		/* Wait for the other side's word to carry sequence i of this session. */
		uint64_t deadline = now_ns() + timeout_ns;
		for (;;) {
			uint64_t v = observe(theirs);
			uint32_t s = (uint32_t)(v >> 32), q = (uint32_t)v;
			if (v == WORD(session, i))
				break;
			int stale = s == session ? (long)q == i - 1 : (!o->lead && i == 1);
			if (!stale)
				die(1, "ping-pong: out of order at round %ld: d%u's word holds session %08x sequence %" PRIu32 ", expected session %08x sequence %ld",
				    i, g_db.peer, s, q, session, i);
			if (!wait_event(deadline))
				die(1, "ping-pong: lost notification at round %ld: no %s %ld from d%u within %ld s (ETIMEDOUT)",
				    i, o->lead ? "pong" : "ping", i, g_db.peer, o->timeout_s);
			if (observe(theirs) != WORD(session, i))
				spurious++;
		}
		if (o->lead) {
			rtt[i - 1] = now_ns() - t0;
		} else {
			publish(mine, WORD(session, i));
			ring();
		}
	}
	double total = (double)(now_ns() - t_start) / 1e9;

	if (!o->lead) {
		printf("ping-pong %s: answered %ld pings from d%u over port %u, 0 lost, 0 out of order, %ld spurious wakeups, %.3f s\n",
		       m->id, n, g_db.peer, g_db.local_port, spurious, total);
		return 0;
	}
	uint64_t sum = 0;
	for (long i = 0; i < n; i++)
		sum += rtt[i];
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp_u64);
	/* Nearest rank: the smallest time that at least p% of the round trips did not exceed. */
	long i50 = (n * 50 + 99) / 100 - 1, i99 = (n * 99 + 99) / 100 - 1;
	printf("ping-pong %s: %ld round trips with d%u over port %u, 0 lost, 0 out of order, %ld spurious wakeups; "
	       "round trip median %.1f us, p99 %.1f us, mean %.1f us, min %.1f us, max %.1f us; %.3f s\n",
	       m->id, n, g_db.peer, g_db.local_port, spurious, (double)rtt[i50] / 1e3, (double)rtt[i99] / 1e3,
	       (double)sum / (double)n / 1e3, (double)rtt[0] / 1e3, (double)rtt[n - 1] / 1e3, total);
	free(rtt);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct xs xs;
	static struct mirror m;

	parse_args(argc, argv, &o);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR, and we clean up */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	xs_open(&xs, o.xenstore, (int)o.timeout_s);
	xs_learn_domid(&xs);
	/* wait and notify with --owner/--port need no region: the doorbell is named outright. */
	int raw = o.owner >= 0 && strcmp(o.command, "ping-pong");
	if (!raw)
		read_mirror(&xs, o.id, &m);
	close(xs.fd);

	if (!strcmp(o.command, "info")) {
		print_info(&xs, &m);
		return 0;
	}
	if (raw)
		bind_borrower((unsigned)o.owner, (unsigned)o.port, xs.domid);
	else
		bind_doorbell(&o, &xs, &m);
	int rc;
	if (!strcmp(o.command, "wait"))
		rc = cmd_wait(&o);
	else if (!strcmp(o.command, "notify"))
		rc = cmd_notify(&o);
	else
		rc = cmd_ping_pong(&o, &m);
	fflush(stdout);
	release_all();
	return rc;
}
