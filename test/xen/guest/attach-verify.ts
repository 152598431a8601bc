/**
 * Runs in dom0 on real Xen (node 18), for checks/xs-trace-attach.sh: reads what
 * `xs-trace attach --domain N --json` printed while guest N worked, and checks that it is the
 * guest's traffic over its ring, decoded and paired:
 *   node dist/test/xen/guest/attach-verify.js FILE DOMID VALUE
 * - every record belongs to a connection of domain DOMID (the --domain filter, and the daemon
 *   having named the connection);
 * - the guest's WRITE of data/xs-trace-probe = VALUE and its READ of it are there, each paired
 *   with its reply (OK, and VALUE);
 * - every reply is paired with a request of the file, and nothing is left unexplained.
 * Prints one summary line; exits 1 with the reason otherwise.
 */
import * as fs from 'node:fs';

interface Rec {
  seq: number;
  kind: string;
  conn: number;
  connDomid?: number;
  type?: string;
  op?: string;
  path?: string;
  value?: string;
  result?: string;
  error?: string;
  requestSeq?: number;
  warnings: Array<{ code: string; message: string }>;
}

function main(): void {
  const [file, domidText, value] = process.argv.slice(2);
  if (!file || !domidText || value === undefined) throw new Error('usage: attach-verify FILE DOMID VALUE');
  const domid = Number(domidText);
  const recs = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Rec);
  if (recs.length === 0) throw new Error(`${file} is empty: the attach showed nothing of domain ${domid}`);
  const other = recs.filter((r) => r.connDomid !== domid);
  if (other.length > 0) throw new Error(`${other.length} records not of domain ${domid}, first: ${JSON.stringify(other[0])}`);
  const bySeq = new Map(recs.map((r) => [r.seq, r]));
  const requests = recs.filter((r) => r.kind === 'request');
  const replies = recs.filter((r) => r.kind === 'reply');
  const unpaired = replies.filter((r) => r.requestSeq === undefined || bySeq.get(r.requestSeq)?.kind !== 'request');
  if (unpaired.length > 0) throw new Error(`${unpaired.length} replies not paired with a request, first: ${JSON.stringify(unpaired[0])}`);
  const reply = (q: Rec) => replies.find((r) => r.requestSeq === q.seq);
  const write = requests.find((r) => r.type === 'WRITE' && /(^|\/)data\/xs-trace-probe$/.test(r.path ?? '') && r.value === value);
  if (!write) throw new Error(`no WRITE data/xs-trace-probe = "${value}" from domain ${domid} among ${requests.length} requests`);
  const wr = reply(write);
  if (!wr || wr.result !== 'OK') throw new Error(`the WRITE is not paired with an OK reply: ${JSON.stringify(wr)}`);
  const read = requests.find((r) => r.type === 'READ' && r.seq > write.seq && /(^|\/)data\/xs-trace-probe$/.test(r.path ?? ''));
  if (!read) throw new Error('no READ of data/xs-trace-probe after the WRITE');
  const rr = reply(read);
  if (!rr || rr.value !== value) throw new Error(`the READ is not paired with a reply holding the value: ${JSON.stringify(rr)}`);
  const warned = recs.filter((r) => r.warnings.some((w) => w.code !== 'unanswered-request'));
  if (warned.length > 0) throw new Error(`unexpected warnings: ${JSON.stringify(warned[0])}`);
  const conns = new Set(recs.map((r) => r.conn));
  const types = [...new Set(requests.map((r) => r.type))].sort().join(' ');
  console.log(
    `xs-trace attach --domain ${domid}: ${requests.length} requests (${types}) and ${replies.length} replies of domain ${domid} on ${conns.size} connection(s), ` +
      `every reply paired; its WRITE ${write.path} = "${value}" (reply OK) and READ (reply "${rr.value}") among them`,
  );
}

try {
  main();
} catch (e) {
  console.log(`FAILED: ${(e as Error).message}`);
  process.exit(1);
}
