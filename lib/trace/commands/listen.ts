/**
 * `xs-trace --listen PATH [--upstream PATH]`: the proxy for any number of clients, each
 * connection numbered, until SIGINT or SIGTERM. The trace goes to stdout (or --output).
 */
import { TraceProxy } from '../proxy';
import { CommonOptions, LIVE_BATCH_MS, outputFrom } from './options';
import { resolveUpstream } from './upstream';

export interface ListenOptions extends CommonOptions {
  listen: string;
  upstream?: string;
}

export async function listen(o: ListenOptions, ready?: (proxy: TraceProxy) => void): Promise<number> {
  const upstream = resolveUpstream(o.upstream, process.env);
  const writer = outputFrom(o, process.stdout, LIVE_BATCH_MS, { latency: true, bytes: true }, true);
  const proxy = await TraceProxy.listen({ listenPath: o.listen, upstreamPath: upstream, onRecord: (r) => writer.write(r), decodeDelayMs: LIVE_BATCH_MS });
  process.stderr.write(`xs-trace: listening on ${o.listen}, forwarding to ${upstream}\n`);
  ready?.(proxy);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await proxy.close();
  await writer.close();
  return 0;
}
