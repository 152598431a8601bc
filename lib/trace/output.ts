/**
 * Where records go: filtered, formatted, written to a stream or a file. A failing output
 * (closed pipe, full disk) stops the printing, never the proxying.
 */
import * as fs from 'node:fs';
import { TraceFilter, isEmptyFilter, matches } from './filter';
import { formatHuman, formatJson } from './format';
import { TraceRecord } from './record';
import { fromSystemError } from './errors';

export interface WriterOptions {
  json?: boolean;
  color?: boolean;
  maxValue?: number;
  timeZone?: 'local' | 'utc';
  filter?: TraceFilter;
  /**
   * Batch output: records are queued and formatted and written together at most this many
   * milliseconds later (or once 256 are waiting). The proxy uses it so that formatting and
   * the write system call stay off the path of the next forwarded message. 0: write at once.
   */
  batchMs?: number;
  /** Called for each record that passes the filter (what --stats counts), printed or not. */
  onPassed?: (r: TraceRecord) => void;
  /** Count (onPassed) but print no record: --stats --quiet. */
  quiet?: boolean;
}

/** Records queued before a batch is written regardless of the timer. */
const BATCH_MAX = 256;

export type Sink = { kind: 'stream'; stream: NodeJS.WritableStream } | { kind: 'file'; path: string };

export class TraceWriter {
  /** Records written (after filtering). */
  written = 0;
  /** Records seen. */
  seen = 0;
  /** The first output error, if printing had to stop. */
  error?: Error;
  private readonly fd: number | null;
  private readonly stream: NodeJS.WritableStream | null;
  private readonly filter: TraceFilter | null;
  private queue: TraceRecord[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(sink: Sink, private readonly opts: WriterOptions = {}) {
    this.filter = opts.filter && !isEmptyFilter(opts.filter) ? opts.filter : null;
    if (sink.kind === 'file') {
      try {
        this.fd = fs.openSync(sink.path, 'w');
      } catch (e) {
        throw fromSystemError(e, 'cannot open trace output', sink.path);
      }
      this.stream = null;
    } else {
      this.fd = null;
      this.stream = sink.stream;
      this.stream.on('error', (e: Error) => {
        this.error ??= e;
      });
    }
  }

  format(r: TraceRecord): string {
    return this.opts.json
      ? formatJson(r, { maxValue: this.opts.maxValue })
      : formatHuman(r, { maxValue: this.opts.maxValue, color: this.opts.color, timeZone: this.opts.timeZone });
  }

  write(r: TraceRecord): void {
    this.seen++;
    if (this.error) return;
    if (!this.opts.batchMs) {
      this.emit([r]);
      return;
    }
    this.queue.push(r);
    if (this.queue.length >= BATCH_MAX) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.opts.batchMs);
  }

  /** Writes whatever is queued now. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const q = this.queue;
    this.queue = [];
    if (q.length > 0 && !this.error) this.emit(q);
  }

  private emit(records: TraceRecord[]): void {
    let text = '';
    for (const r of records) {
      if (this.filter && !matches(this.filter, r)) continue;
      this.opts.onPassed?.(r);
      if (this.opts.quiet) continue;
      text += this.format(r) + '\n';
      this.written++;
    }
    this.put(text);
  }

  /** Writes `text` (a stats table) after whatever is queued. */
  writeText(text: string): void {
    this.flush();
    this.put(text.endsWith('\n') ? text : text + '\n');
  }

  private put(text: string): void {
    if (text === '' || this.error) return;
    try {
      // A file is written synchronously so the trace is complete when the command exits.
      if (this.fd !== null) fs.writeSync(this.fd, text);
      else this.stream?.write(text);
    } catch (e) {
      this.error = e as Error;
    }
  }

  /** Flushes and closes a file sink; resolves once a stream sink has drained. */
  async close(): Promise<void> {
    this.flush();
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      return;
    }
    const s = this.stream;
    if (s && !this.error) await new Promise<void>((resolve) => s.write('', () => resolve()));
  }
}
