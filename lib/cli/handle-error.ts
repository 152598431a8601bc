/** One place that turns any thrown value into a message and an exit code. */
export function handleError(err: unknown, opts: { json?: boolean } = {}): never {
  const e = err as { message?: string; kind?: string; code?: string; toJSON?: () => unknown };
  if (opts.json) {
    const body = typeof e?.toJSON === 'function' ? e.toJSON() : { kind: e?.kind ?? 'error', code: e?.code, message: e?.message ?? String(err) };
    process.stdout.write(JSON.stringify({ ok: false, error: body }, null, 2) + '\n');
  } else {
    process.stderr.write(`xen-sshm: ${e?.message ?? String(err)}\n`);
  }
  process.exit(typeof (e as { exitCode?: number })?.exitCode === 'number' ? (e as { exitCode: number }).exitCode : 1);
}
