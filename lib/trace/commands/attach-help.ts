/**
 * What `xs-trace attach --help` says beyond the options: how it works, what the daemon pays
 * for it (bench:trace, bench/results/trace-attach.md), and what SIGKILL leaves.
 */
export const ATTACH_HELP = `
How it works: C xenstored (4.17, 4.20) is told over CONTROL to log every message into a file of
xs-trace's own (\`logfile FILE\`; 4.18+ also \`log +io +obj\`); xs-trace follows that file and
decodes it like the proxy does: replies paired by order, transactions started and ended,
watch events linked to their watch. 4.20 names each connection's domain (#3/d5); 4.17 only for
connections introduced while attached. oxenstored cannot be switched at run time: its access
log is followed as it is, and what that log lacks is printed when attaching.

Cost: while attached, C xenstored formats and writes every message (4.17 and 4.20 write each
payload byte with its own write()), and the attach competes for the same CPUs. Measured by
\`npm run bench:trace\` (bench/results/trace-attach.md: requests per second, mean and p99 latency
with logging off, logging to a file, attached; the states alternate, so machine load hits all
alike; 2-core machine, load 16 during the run):
  requests/s as a fraction of logging off; mean, p99 latency as multiples of it
                          logging to a file            attached (xs-trace following)
  C xenstored 4.17 (Debian 12):
    READ, 1 outstanding   0.35  x2.9  x5.3             0.19  x5.4   x43
    WRITE, 1 outstanding  0.28  x3.6   x11             0.20  x5.1   x39
    READ, 32 pipelined    0.12  x6.5   x13             0.12  x6.9   x14
  C xenstored 4.20 (Debian 13):
    READ, 1 outstanding   0.40  x2.5  x1.8             0.34  x3.0  x1.9
    WRITE, 1 outstanding  0.36  x2.8  x1.8             0.47  x2.2  x1.2
    READ, 32 pipelined    0.09  x7.6  x3.3             0.09  x8.8  x7.9
A busy daemon serves 2 to 10 times fewer requests while attached: attach briefly.

On exit (SIGINT, SIGTERM, SIGHUP, or the output closed) the daemon's logging is put back: its
previous file reopened, or logging off again. If xs-trace is killed with SIGKILL, the daemon
keeps logging into xs-trace's folder, growing without bound and serving more slowly, until
\`xs-trace detach\` puts its logging back (from the state the attach saved first) and removes
the folder.

Examples:
  xs-trace attach --domain 5 --json
  xs-trace attach --path /local/domain/5/device --type WRITE,RM
  xs-trace attach --stats --interval 10 --quiet
  xs-trace detach
`;
