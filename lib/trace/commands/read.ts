/**
 * `xs-trace read FILE`: a C xenstored trace file (`xenstored -T FILE`) shown like live traffic.
 * Request and transaction ids are not in that file (shown as -), and its times have whole
 * seconds only, so latencies are not shown.
 */
import * as fs from 'node:fs';
import { fromSystemError } from '../errors';
import { readTraceFile } from '../tracefile';
import { CommonOptions, writerFrom } from './options';

export interface ReadOptions extends CommonOptions {
  log?: boolean;
}

export async function readCommand(file: string, o: ReadOptions): Promise<number> {
  let content: Buffer;
  try {
    content = fs.readFileSync(file);
  } catch (e) {
    throw fromSystemError(e, 'cannot read trace file', file);
  }
  const writer = writerFrom(o, process.stdout);
  const { records } = readTraceFile(content, { timeZone: o.utc ? 'utc' : 'local', logLines: o.log ?? false });
  for (const r of records) writer.write(r);
  await writer.close();
  return 0;
}
