/**
 * The backend contract without ava, for dom0 on real Xen (and the sim):
 *   node dist/test/hypervisor/run-contract.js --backend sim [--arch arm|x86] [--release 4.19] [--dir DIR]
 *   node dist/test/hypervisor/run-contract.js --backend privcmd --owner N --borrower M
 *        --owner-gfn 0x... --borrower-gfn 0x... [--large-pages N] [--missing N]
 *        --interdomain-port P [--interdomain-remote D] --guest-cmd 'CMD'
 * With privcmd, the guest's own view goes through --guest-cmd, run by `sh -c` with DOMID, GFN
 * (hex), MODE (read|write), LENGTH and, for write, DATA (hex) in its environment; a read prints
 * the bytes as hex. --interdomain-port names a port of the owner bound interdomain to domain
 * --interdomain-remote (default 0: e.g. its xenstore port, /local/domain/N/store/port).
 * Prints TAP-like lines; exits 1 if any check failed, 2 if the fixture could not be made.
 */
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { openPrivcmd, SIM_RELEASES, type SimRelease } from '../../lib/hypervisor';
import { defineBackendContract, type ContractFixture } from './contract';
import { makeSimFixture, SIM_LARGE_PAGES } from './sim-fixture';

const OPTIONS = {
  backend: { type: 'string', default: 'sim' },
  arch: { type: 'string', default: 'arm' },
  release: { type: 'string' },
  dir: { type: 'string' },
  owner: { type: 'string' },
  borrower: { type: 'string' },
  'owner-gfn': { type: 'string' },
  'borrower-gfn': { type: 'string' },
  'large-pages': { type: 'string' },
  missing: { type: 'string' },
  'interdomain-port': { type: 'string' },
  'interdomain-remote': { type: 'string' },
  'guest-cmd': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

function num(v: Values, key: keyof typeof OPTIONS, dflt?: number): number {
  const s = v[key] as string | undefined;
  if (s === undefined) {
    if (dflt === undefined) throw new Error(`--${key} is required`);
    return dflt;
  }
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${key} ${s}: not a number`);
  return n;
}

function privcmdFixture(v: Values): () => Promise<ContractFixture> {
  const cmd = v['guest-cmd'];
  if (!cmd) throw new Error('--guest-cmd is required with --backend privcmd');
  const port = num(v, 'interdomain-port');
  const remoteDom = num(v, 'interdomain-remote', 0);
  const guest = (env: Record<string, string>): string =>
    execFileSync('sh', ['-c', cmd], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return async () => {
    const hv = openPrivcmd();
    return {
      hv,
      owner: num(v, 'owner'),
      borrower: num(v, 'borrower'),
      missingDomid: num(v, 'missing', 0x7000),
      ownerGfnBase: num(v, 'owner-gfn'),
      borrowerGfnBase: num(v, 'borrower-gfn'),
      largePages: num(v, 'large-pages', SIM_LARGE_PAGES),
      async guestRead(domid, gfn, length) {
        const hex = guest({ DOMID: String(domid), GFN: gfn.toString(16), MODE: 'read', LENGTH: String(length) });
        return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
      },
      async guestWrite(domid, gfn, data) {
        guest({ DOMID: String(domid), GFN: gfn.toString(16), MODE: 'write', LENGTH: String(data.length), DATA: data.toString('hex') });
      },
      async interdomainPort() {
        return { port, remoteDom };
      },
      async dispose() {
        await hv.close();
      },
    };
  };
}

async function main(): Promise<number> {
  const { values: v } = parseArgs({ options: OPTIONS, strict: true, allowPositionals: false });
  let contract;
  if (v.backend === 'sim') {
    const arch = v.arch;
    if (arch !== 'arm' && arch !== 'x86') throw new Error(`--arch ${arch}: arm or x86`);
    const release = v.release;
    if (release !== undefined && !(SIM_RELEASES as readonly string[]).includes(release)) throw new Error(`--release ${release}: one of ${SIM_RELEASES.join(', ')}`);
    contract = defineBackendContract(`sim ${arch}${release ? ` ${release}` : ''}`, () => makeSimFixture(arch, v.dir, release as SimRelease | undefined));
  } else if (v.backend === 'privcmd') {
    contract = defineBackendContract('privcmd', privcmdFixture(v));
  } else {
    throw new Error(`--backend ${v.backend}: sim or privcmd`);
  }
  console.log(`1..${contract.checks.length}`);
  const results = await contract.run();
  const failed = results.filter((r) => !r.ok).length;
  console.log(`# ${results.length - failed} passed, ${failed} failed`);
  return failed === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  console.error(`run-contract: ${(e as Error).message}`);
  process.exit(2);
});
