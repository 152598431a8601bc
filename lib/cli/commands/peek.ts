/**
 * `xen-sshm peek ID [--offset N] [--length N]`: dom0 maps the owner's frames of a region and
 * prints them as `hexdump -C` would. Dom0 is always a possible peer (on x86 the only one).
 */
import type { Command } from 'commander';
import { optionsOf, parseBytes, printJSON, withCommonOptions, withContext } from '../options';

interface PeekOptions {
  offset?: string;
  length?: string;
}

export function registerPeek(program: Command): void {
  withCommonOptions(
    program
      .command('peek')
      .summary("hex dump a region's bytes, mapped into dom0")
      .description("Map a region's frames from its owner into this dom0 process and print them as a hex dump.")
      .argument('<id>', 'region ID')
      .option('--offset <bytes>', 'byte offset in the region (K, M, G allowed)', '0')
      .option('--length <bytes>', 'bytes to show (default 256; "all" for the whole region)', '256'),
  )
    .addHelpText('after', '\nExamples:\n  xen-sshm peek ID1\n  xen-sshm peek ID1 --offset 4K --length 64 --json\n')
    .action(async (id: string, _o: unknown, self: Command) => {
      const opts = optionsOf<PeekOptions>(self);
      const offset = parseBytes(opts.offset ?? '0', '--offset');
      const wanted = opts.length === 'all' ? null : parseBytes(opts.length ?? '256', '--length');
      await withContext(opts, async (ctx) => {
        const { openRegion, hexdump } = (require('../../manager') as typeof import('../../manager'));
        const region = await ctx.manager.region(id);
        let length = wanted ?? region.size - offset;
        // Shown up to the region's end rather than refused: the default is only a preview.
        if (offset < region.size && offset + length > region.size) length = region.size - offset;
        const h = await openRegion(ctx.manager, id, { offset, length });
        try {
          if (opts.json) {
            printJSON({ ok: true, id, owner: h.owner, offset, length: h.length, hex: h.buffer.toString('hex') });
          } else {
            process.stdout.write(`${id} (owner d${h.owner}), bytes ${offset}..${offset + BigInt(h.length)}:\n`);
            process.stdout.write(hexdump(h.buffer, Number(offset)).map((l) => l + '\n').join(''));
          }
        } finally {
          h.close();
        }
      });
    });
}
