/**
 * `xs-trace read FILE`: a daemon's log shown like live traffic: C xenstored's trace file
 * (`xenstored -T FILE`, or a `logfile`), either format (4.17, 4.18+), or oxenstored's access
 * log, told apart by its first line. Read in pieces, so a file of any size is shown in bounded
 * memory. Request and transaction ids are not in these files (shown as -), and their times
 * have whole seconds (C) or milliseconds (OCaml) only, so latencies are not shown.
 */
import * as fs from 'node:fs';
import { AccessLogParser } from '../access-log';
import { fromSystemError } from '../errors';
import { TraceRecord } from '../record';
import { CLogParser } from '../tracefile';
import { CommonOptions, outputFrom } from './options';

export interface ReadOptions extends CommonOptions {
  log?: boolean;
}

/** Read size: small enough that the records of one piece (a line each, at worst) stay few. */
const CHUNK = 64 * 1024;

/** oxenstored's access log starts its lines with `[YYYYMMDDTHH:MM:SS.mmmZ]`. */
function isAccessLog(head: Buffer): boolean {
  const first = head.toString('latin1').split('\n').find((l) => l.trim() !== '') ?? '';
  return /^\[\d{8}T\d\d:\d\d:\d\d\.\d{3}Z\] /.test(first);
}

export async function readCommand(file: string, o: ReadOptions): Promise<number> {
  // Options are checked before the file is looked at (a usage error is a usage error).
  const caps = { latency: false, bytes: true };
  const output = outputFrom(o, process.stdout, 0, caps, false);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd);
      throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
    }
  } catch (e) {
    await output.close();
    throw fromSystemError(e, 'cannot read trace file', file);
  }
  const buf = Buffer.allocUnsafe(CHUNK);
  let pos = 0;
  const next = (): Buffer => {
    const n = fs.readSync(fd, buf, 0, CHUNK, pos);
    pos += n;
    return Buffer.from(buf.subarray(0, n));
  };
  let first: Buffer;
  try {
    first = next();
  } catch (e) {
    fs.closeSync(fd);
    await output.close();
    throw fromSystemError(e, 'cannot read trace file', file);
  }
  const oxen = isAccessLog(first);
  const parser = oxen ? new AccessLogParser() : new CLogParser({ timeZone: o.utc ? 'utc' : 'local', logLines: o.log ?? false });
  caps.bytes = !oxen;
  const emit = (rs: TraceRecord[]): void => {
    for (const r of rs) output.write(r);
  };
  try {
    for (let chunk = first; chunk.length > 0; chunk = next()) emit(parser.push(chunk));
    emit(parser.end());
  } catch (e) {
    throw fromSystemError(e, 'cannot read trace file', file);
  } finally {
    fs.closeSync(fd);
    await output.close();
  }
  return 0;
}
