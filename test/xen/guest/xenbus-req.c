/*
 * xenbus-req: one xenstore request from inside a domU over /dev/xen/xenbus, printing the
 * daemon's error name when it refuses. xenstore-utils print only "could not write path" and
 * lose errno; the guest-view checks need to see EACCES itself. Test-tier tool, built statically
 * for arm64 by test/xen/run.ts (aarch64-linux-gnu-gcc) and put in the domU image.
 *
 *   xenbus-req read PATH          prints the value; exit 0
 *   xenbus-req write PATH VALUE   prints OK; exit 0
 *   xenbus-req rm PATH            prints OK; exit 0
 * A refusal prints "ERROR <NAME>" (e.g. ERROR EACCES) and exits 1; other failures exit 2.
 * Wire format: xen/include/public/io/xs_wire.h (struct xsd_sockmsg; XS_READ 2, XS_WRITE 11,
 * XS_RM 13, XS_ERROR 16); /dev/xen/xenbus takes one whole message per write (FACTS.md 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct xsd_sockmsg { uint32_t type, req_id, tx_id, len; };
enum { XS_READ = 2, XS_WRITE = 11, XS_RM = 13, XS_ERROR = 16 };

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR) continue;
		if (r <= 0) return -1;
		got += (size_t)r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char msg[sizeof(struct xsd_sockmsg) + 4096], reply[4096 + 1];
	struct xsd_sockmsg h = { 0, 0x5eed, 0, 0 };
	size_t plen, vlen = 0;
	const char *value = "";

	if (argc < 3) goto usage;
	if (!strcmp(argv[1], "read") && argc == 3) h.type = XS_READ;
	else if (!strcmp(argv[1], "rm") && argc == 3) h.type = XS_RM;
	else if (!strcmp(argv[1], "write") && argc == 4) { h.type = XS_WRITE; value = argv[3]; vlen = strlen(value); }
	else goto usage;
	plen = strlen(argv[2]) + 1; /* the path's NUL is part of the payload */
	if (plen + vlen > 4080) { fprintf(stderr, "xenbus-req: request too large\n"); return 2; }
	h.len = (uint32_t)(plen + vlen);
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), argv[2], plen);
	memcpy(msg + sizeof(h) + plen, value, vlen);

	int fd = open("/dev/xen/xenbus", O_RDWR);
	if (fd < 0) { perror("xenbus-req: /dev/xen/xenbus"); return 2; }
	if (write(fd, msg, sizeof(h) + h.len) != (ssize_t)(sizeof(h) + h.len)) { perror("xenbus-req: write"); return 2; }
	struct xsd_sockmsg r;
	if (read_full(fd, &r, sizeof(r)) || r.len > 4096 || read_full(fd, reply, r.len)) {
		fprintf(stderr, "xenbus-req: short reply\n");
		return 2;
	}
	reply[r.len] = '\0';
	close(fd);
	if (r.type == XS_ERROR) { printf("ERROR %s\n", reply); return 1; }
	if (r.type != h.type) { fprintf(stderr, "xenbus-req: reply type %u to request %u\n", r.type, h.type); return 2; }
	if (h.type == XS_READ) printf("%s\n", reply);
	else printf("OK\n");
	return 0;
usage:
	fprintf(stderr, "usage: xenbus-req read PATH | write PATH VALUE | rm PATH\n");
	return 2;
}
