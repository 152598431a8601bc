/**
 * `xen-sshm demo`: the command's options; the demo itself (./demo.ts) is loaded when it runs.
 */
import type { Command } from 'commander';
import { optionsOf, printJSON } from '../options';
import type { DemoOptions } from './demo';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .summary("play the proposal's three-VM example on a sandbox (no Xen needed)")
    .description(
      "Create vm1, vm2 and vm3 on a sandbox, apply the proposal's example, show the xenstore records and the shared bytes, then destroy vm2 and show the cleanup. " +
        'Uses a fresh temporary sandbox unless --sandbox-dir (or --sandbox: the default one) names one, which is kept.',
    )
    .option('--keep', 'keep the temporary sandbox folder, to explore it afterwards with --sandbox-dir')
    .action(async (_o: unknown, self: Command) => {
      const opts = optionsOf<DemoOptions>(self);
      if (opts.sandbox && opts.sandboxDir === undefined) {
        const { defaultSandboxDir } = (require('../../sandbox/sandbox') as typeof import('../../sandbox/sandbox'));
        opts.sandboxDir = defaultSandboxDir();
      }
      const { runDemo } = (require('./demo') as typeof import('./demo'));
      // `xen-sshm demo | head` closes stdout early: the demo still cleans its sandbox up.
      let closed = false;
      const onError = (e: NodeJS.ErrnoException): void => {
        if (e.code === 'EPIPE') closed = true;
        else throw e;
      };
      process.stdout.on('error', onError);
      try {
        const result = await runDemo(opts, opts.json ? () => undefined : (s) => void (closed || process.stdout.write(s)));
        if (opts.json) printJSON({ ok: true, ...result });
      } finally {
        process.stdout.off('error', onError);
      }
    });
}
