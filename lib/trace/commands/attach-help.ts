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

Cost: while attached, C xenstored formats and writes every message (4.17 and 4.20 write each payload
byte with its own write()). Measured by \`npm run bench:trace\` (bench/results/trace-attach.md):
  C xenstored 4.17, 2-core machine: with logging on it serves 0.28-0.30 of its requests per
  second with one request outstanding (READ 33,900 -> 10,200/s, mean latency 29 -> 97 us) and
  0.17 when requests are pipelined (72,400 -> 12,200/s); with xs-trace attach following the
  log, 0.19-0.22 and 0.15. A busy daemon runs 3-6 times slower while attached: attach briefly.

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
