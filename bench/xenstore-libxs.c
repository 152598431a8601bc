/*
 * libxenstore side of `npm run bench:xenstore`: sequential READ and WRITE latency of Xen's own
 * C client library, against the daemon named by XENSTORED_PATH. Built by bench/xenstore.ts at
 * run time (cc -O2 ... -lxenstore). Prints one JSON object with every sample in nanoseconds.
 *
 *   xenstore-libxs <path> <reads> <writes> [<warm-up reads>]
 *
 * The node must exist (the bench writes it first). With 0 warm-up reads the first request of
 * the process is the first one timed: the "cold" figures; the default is 200, as the Node side
 * warms up before its steady-state rounds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xenstore.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void print_samples(const char *name, const long long *s, int n)
{
    printf("\"%s\":[", name);
    for (int i = 0; i < n; i++)
        printf("%s%lld", i ? "," : "", s[i]);
    printf("]");
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s PATH READS WRITES [WARMUP]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    int reads = atoi(argv[2]), writes = atoi(argv[3]);
    int warmup = argc == 5 ? atoi(argv[4]) : 200;
    struct xs_handle *h = xs_open(0);
    if (!h) {
        perror("xs_open");
        return 1;
    }
    const char *value = "benchmark-value-0123456789";
    long long *rs = calloc(reads ? reads : 1, sizeof(*rs)), *ws = calloc(writes ? writes : 1, sizeof(*ws));
    for (int i = 0; i < warmup; i++) {
        unsigned int len;
        free(xs_read(h, XBT_NULL, path, &len));
    }
    for (int i = 0; i < reads; i++) {
        unsigned int len;
        long long t0 = now_ns();
        void *v = xs_read(h, XBT_NULL, path, &len);
        rs[i] = now_ns() - t0;
        if (!v) {
            perror("xs_read");
            return 1;
        }
        free(v);
    }
    for (int i = 0; i < writes; i++) {
        long long t0 = now_ns();
        bool ok = xs_write(h, XBT_NULL, path, value, strlen(value));
        ws[i] = now_ns() - t0;
        if (!ok) {
            perror("xs_write");
            return 1;
        }
    }
    printf("{");
    print_samples("read", rs, reads);
    printf(",");
    print_samples("write", ws, writes);
    printf("}\n");
    xs_close(h);
    return 0;
}
