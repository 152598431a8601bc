/*
 * xs-ring-bridge RUNDIR DOMID SOCKET: plays a guest's side of the xenstore shared ring for a
 * daemon started by the harness under the preload library, and exposes it as a Unix socket.
 *
 * Whatever a client writes to SOCKET goes into the ring's request half, and what the daemon
 * writes into the response half comes back on the socket: a client of SOCKET talks to the real
 * C xenstored exactly as domain DOMID would from a guest (unprivileged, its own quotas and
 * home path). This is how the harness checks permission rules against the real daemon
 * without a hypervisor.
 *
 * The ring is the file RUNDIR/ring-DOMID (created by the preload at INTRODUCE); the daemon is
 * woken by writing a port number into the FIFO RUNDIR/evtchn, and wakes us through the FIFO
 * RUNDIR/notify-DOMID. One client at a time; a later client takes over the same ring.
 * Prints "ready" on stdout once SOCKET accepts connections. Test-only code.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

/* Any port other than the daemon's VIRQ_DOM_EXC one: "look at the rings". */
#define KICK_PORT 0xfffffffeu

static int die(const char *what)
{
    fprintf(stderr, "xs-ring-bridge: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void kick(int evtchn)
{
    uint32_t port = KICK_PORT;

    if (write(evtchn, &port, sizeof(port)) < 0 && errno != EAGAIN)
        die("write evtchn");
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Move responses to the client; returns -1 when the client is gone. */
static int pump_responses(volatile struct xenstore_domain_interface *intf, int client, int evtchn)
{
    for (;;) {
        XENSTORE_RING_IDX cons = intf->rsp_cons, prod = intf->rsp_prod;
        __sync_synchronize();
        if (prod == cons)
            return 0;
        uint32_t avail = prod - cons;
        uint32_t off = MASK_XENSTORE_IDX(cons);
        uint32_t chunk = XENSTORE_RING_SIZE - off;
        char buf[XENSTORE_RING_SIZE];

        if (chunk > avail)
            chunk = avail;
        memcpy(buf, (const char *)intf->rsp + off, chunk);
        __sync_synchronize();
        intf->rsp_cons = cons + chunk;
        kick(evtchn); /* the daemon may be waiting for room to write more */
        if (write_all(client, buf, chunk) < 0)
            return -1;
    }
}

/* Move what the client sent into the request ring; returns -1 on EOF. */
static int pump_requests(volatile struct xenstore_domain_interface *intf, int client, int evtchn)
{
    XENSTORE_RING_IDX cons = intf->req_cons, prod = intf->req_prod;
    __sync_synchronize();
    uint32_t space = XENSTORE_RING_SIZE - (prod - cons);
    uint32_t off = MASK_XENSTORE_IDX(prod);
    uint32_t chunk = XENSTORE_RING_SIZE - off;
    char buf[XENSTORE_RING_SIZE];
    ssize_t n;

    if (space == 0)
        return 0;
    if (chunk > space)
        chunk = space;
    n = read(client, buf, chunk);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EINTR || errno == EAGAIN) ? 0 : -1;
    memcpy((char *)intf->req + off, buf, (size_t)n);
    __sync_synchronize();
    intf->req_prod = prod + (uint32_t)n;
    kick(evtchn);
    return 0;
}

int main(int argc, char **argv)
{
    char path[PATH_MAX];
    struct sockaddr_un addr;
    volatile struct xenstore_domain_interface *intf;
    int ringfd = -1, notify, evtchn, listener;

    if (argc != 4) {
        fprintf(stderr, "usage: xs-ring-bridge RUNDIR DOMID SOCKET\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    snprintf(path, sizeof(path), "%s/ring-%s", argv[1], argv[2]);
    for (int i = 0; i < 500 && ringfd < 0; i++) {
        ringfd = open(path, O_RDWR | O_CLOEXEC);
        if (ringfd < 0) {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    if (ringfd < 0)
        die(path);
    intf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ringfd, 0);
    if (intf == MAP_FAILED)
        die("mmap ring");

    snprintf(path, sizeof(path), "%s/notify-%s", argv[1], argv[2]);
    if (mkfifo(path, 0600) < 0 && errno != EEXIST)
        die(path);
    notify = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (notify < 0)
        die(path);
    snprintf(path, sizeof(path), "%s/evtchn", argv[1]);
    evtchn = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (evtchn < 0)
        die(path);

    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listener < 0)
        die("socket");
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(argv[3]) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        die(argv[3]);
    }
    strcpy(addr.sun_path, argv[3]);
    unlink(argv[3]);
    if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 4) < 0)
        die(argv[3]);
    printf("ready\n");
    fflush(stdout);

    for (;;) {
        int client = accept(listener, NULL, NULL);
        if (client < 0) {
            if (errno == EINTR)
                continue;
            die("accept");
        }
        for (;;) {
            XENSTORE_RING_IDX used = intf->req_prod - intf->req_cons;
            struct pollfd pfd[2] = {
                { .fd = client, .events = used < XENSTORE_RING_SIZE ? POLLIN : 0 },
                { .fd = notify, .events = POLLIN },
            };
            char drain[64];

            /* The short timeout covers a kick that raced with our index reads. */
            if (poll(pfd, 2, 5) < 0 && errno != EINTR)
                die("poll");
            while (read(notify, drain, sizeof(drain)) > 0)
                ;
            if (pump_responses(intf, client, evtchn) < 0)
                break;
            if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) && pump_requests(intf, client, evtchn) < 0)
                break;
        }
        close(client);
    }
}
