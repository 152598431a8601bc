/**
 * Runs in dom0 on real Xen: the release xen_version reports selects the hypervisor layer's rules
 * (lib/hypervisor/releases.ts), and real Xen behaves as those rules say where dom0 can see it:
 *   - the domctl interface version: the release table's value is the one Xen accepts, and one
 *     below it is refused (EACCES);
 *   - getdomaininfo of a missing domain below a live one: the next domain up (<= 4.17) or ESRCH
 *     (>= 4.18, commit 31c6554974), issued raw, and null through the layer either way;
 *   - borrowerSupport of a domU: on Arm supported with a target, whatever the release.
 *   node dist/test/xen/guest/hv-release.js --missing N --domu M   (N < M, N not a domain)
 */
import { parseArgs } from 'node:util';
import { openPrivcmd, rulesFor } from '../../../lib/hypervisor';
import { DomctlCmd, Hypercall } from '../../../lib/hypervisor/abi';
import { readGetDomainInfo, writeDomctlHeader, XEN_DOMCTL } from '../../../lib/hypervisor/layout';
import { PrivcmdTransport } from '../../../lib/hypervisor/privcmd';
import { errnoName, errnoOf } from '../../../lib/hypervisor/errors';

const { values } = parseArgs({ options: { missing: { type: 'string' }, domu: { type: 'string' } }, strict: true });
const missing = Number(values.missing);
const domu = Number(values.domu);

function check(ok: boolean, what: string): string {
  if (!ok) throw new Error(what);
  return what;
}

async function main(): Promise<void> {
  if (!(Number.isInteger(missing) && Number.isInteger(domu) && missing < domu)) throw new Error('--missing N --domu M with N < M');
  const hv = openPrivcmd();
  const raw = new PrivcmdTransport();
  const said: string[] = [];
  try {
    const v = await hv.xenVersion();
    const rules = rulesFor(v.arch, v);
    said.push(`Xen ${v.version} ${v.arch} selects the ${rules.release} rules`);
    const found = await hv.domctlInterfaceVersion();
    said.push(check(found === rules.domctlInterfaceVersion, `domctl interface 0x${found.toString(16)} = the ${rules.release} table's 0x${(rules.domctlInterfaceVersion ?? 0).toString(16)}`));
    // Raw domctls with a version of our choice.
    const buf = raw.allocBuffer(XEN_DOMCTL.size);
    const getinfo = (version: number, domain: number): { rc: number; domain: number } => {
      writeDomctlHeader(buf.view, 0, { cmd: DomctlCmd.getdomaininfo, interfaceVersion: version, domain });
      const rc = raw.hypercall(Hypercall.domctl, [buf.address]);
      return { rc, domain: rc === 0 ? readGetDomainInfo(buf.view, 0).domain : -1 };
    };
    const older = getinfo(found - 1, 0);
    said.push(check(older.rc === -errnoOf('EACCES'), `interface 0x${(found - 1).toString(16)} refused (${older.rc < 0 ? errnoName(-older.rc) : older.rc})`));
    const r = getinfo(found, missing);
    if (rules.getdomaininfoExact) {
      said.push(check(r.rc === -errnoOf('ESRCH'), `getdomaininfo(d${missing}) = ${r.rc < 0 ? errnoName(-r.rc) : `d${r.domain}`}: ESRCH, as from 4.18`));
    } else {
      said.push(check(r.rc === 0 && r.domain > missing, `getdomaininfo(d${missing}) answers d${r.domain}, the next domain up, as until 4.17`));
    }
    said.push(check((await hv.domainInfo(missing)) === null, `domainInfo(d${missing}) = null`));
    const s = await hv.borrowerSupport(domu);
    said.push(check(s.supported === rules.translatedDomUBorrowers && (!s.supported || s.needsTarget), `borrowerSupport(d${domu}): ${s.supported ? 'supported, needs a target' : s.reason}`));
    raw.freeBuffer(buf);
    console.log(said.join('; '));
  } finally {
    raw.close();
    await hv.close();
  }
}

main().catch((e: unknown) => {
  console.log(`FAILED: ${(e as Error).message}`);
  process.exit(1);
});
