/**
 * The backend contract without ava, for dom0 on real Xen (and the sim):
 *   node dist/test/hypervisor/run-contract.js --backend sim [--arch arm|x86] [--dir DIR]
 *   node dist/test/hypervisor/run-contract.js --backend privcmd --owner N --borrower M
 *        --owner-gfn 0x... --borrower-gfn 0x... [--large-pages N] [--missing N]
 *        --guest-cmd 'CMD'
 * With privcmd, the guest's own view goes through --guest-cmd, run by `sh -c` with DOMID, GFN
 * (hex), MODE (read|write), LENGTH and, for write, DATA (hex) in its environment; a read prints
 * the bytes as hex. Prints TAP-like lines; exits 1 if any check failed.
 */
import { execFileSync } from 'node:child_process';
import { openPrivcmd, type XenArch } from '../../lib/hypervisor';
import { defineBackendContract, type ContractFixture } from './contract';
import { makeSimFixture, SIM_LARGE_PAGES } from './sim-fixture';

function args(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    if (!argv[i].startsWith('--')) throw new Error(`unexpected argument ${argv[i]}`);
    m.set(argv[i].slice(2), argv[i + 1] ?? '');
    i++;
  }
  return m;
}

function num(m: Map<string, string>, key: string, dflt?: number): number {
  const v = m.get(key);
  if (v === undefined) {
    if (dflt === undefined) throw new Error(`--${key} is required`);
    return dflt;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${key} ${v}: not a number`);
  return n;
}

function privcmdFixture(m: Map<string, string>): () => Promise<ContractFixture> {
  const cmd = m.get('guest-cmd');
  if (!cmd) throw new Error('--guest-cmd is required with --backend privcmd');
  const guest = (env: Record<string, string>): string =>
    execFileSync('sh', ['-c', cmd], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return async () => {
    const hv = openPrivcmd();
    return {
      hv,
      owner: num(m, 'owner'),
      borrower: num(m, 'borrower'),
      missingDomid: num(m, 'missing', 0x7000),
      ownerGfnBase: num(m, 'owner-gfn'),
      borrowerGfnBase: num(m, 'borrower-gfn'),
      largePages: num(m, 'large-pages', SIM_LARGE_PAGES),
      async guestRead(domid, gfn, length) {
        const hex = guest({ DOMID: String(domid), GFN: gfn.toString(16), MODE: 'read', LENGTH: String(length) });
        return Buffer.from(hex.replace(/\s+/g, ''), 'hex');
      },
      async guestWrite(domid, gfn, data) {
        guest({ DOMID: String(domid), GFN: gfn.toString(16), MODE: 'write', LENGTH: String(data.length), DATA: data.toString('hex') });
      },
      async dispose() {
        await hv.close();
      },
    };
  };
}

async function main(): Promise<number> {
  const m = args(process.argv.slice(2));
  const backend = m.get('backend') ?? 'sim';
  let contract;
  if (backend === 'sim') {
    const arch = (m.get('arch') ?? 'arm') as XenArch;
    if (arch !== 'arm' && arch !== 'x86') throw new Error(`--arch ${arch}: arm or x86`);
    contract = defineBackendContract(`sim ${arch}`, () => makeSimFixture(arch, m.get('dir')));
  } else if (backend === 'privcmd') {
    contract = defineBackendContract('privcmd', privcmdFixture(m));
  } else {
    throw new Error(`--backend ${backend}: sim or privcmd`);
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
