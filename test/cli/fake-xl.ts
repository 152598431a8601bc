/**
 * A stand-in for Xen's `xl`, for testing `xen-sshm create` and `destroy` on the real-host path
 * (the QEMU tier runs them with the real xl). It plays xl's domain operations on a simulated
 * host and the xenstored of XENSTORED_PATH, with the sandbox's toolstack functions (the same
 * records libxl writes), prints what xl prints, and exits as xl does (1 on failure).
 *
 * Test control, all from the environment the test gives xen-sshm (which passes it on):
 *   FAKE_XL_SIM   the simulated host's folder (the one xen-sshm gets with --sim)
 *   FAKE_XL_LOG   each call is appended there as a JSON line: its arguments
 *   FAKE_XL_FAIL  a subcommand (create, unpause, destroy) that fails with an xl-like message
 *
 * Installed by the tests as an executable script `xl` whose first line runs this file.
 */
import { appendFileSync } from 'node:fs';
import { connect } from '../../xenstore-wire';
import { readXlConfig } from '../../lib/config/xl-reader';
import { SimHypervisor } from '../../lib/hypervisor/sim';
import { listDomains } from '../../lib/manager/domains';
import { createDomain, destroyDomain, domainSpecFromConfig } from '../../lib/sandbox/toolstack';

async function main(args: string[]): Promise<number> {
  if (process.env.FAKE_XL_LOG) appendFileSync(process.env.FAKE_XL_LOG, JSON.stringify(args) + '\n');
  const [sub, ...rest] = args;
  if (process.env.FAKE_XL_FAIL === sub) {
    process.stderr.write(`libxl: error: libxl_${sub}.c:42: injected failure of xl ${sub}\n`);
    return 1;
  }
  const xs = await connect();
  const hv = new SimHypervisor({ dir: process.env.FAKE_XL_SIM!, allowOnXenHost: true });
  try {
    const domains = await listDomains(xs);
    switch (sub) {
      case 'create': {
        if (rest[0] !== '-p') throw new Error('the fake xl only creates paused (-p)');
        process.stderr.write(`Parsing config from ${rest[1]}\n`);
        await createDomain(xs, hv, domainSpecFromConfig(await readXlConfig(rest[1])));
        return 0;
      }
      case 'domid': {
        const d = domains.find((x) => x.name === rest[0]);
        if (!d) {
          process.stderr.write(`Can't get domid of domain name '${rest[0]}', maybe this domain does not exist.\n`);
          return 1;
        }
        process.stdout.write(`${d.domid}\n`);
        return 0;
      }
      case 'domname': {
        const d = domains.find((x) => x.domid === Number(rest[0]));
        if (!d) {
          process.stderr.write(`Can't get domain name of domain id '${rest[0]}', maybe this domain does not exist.\n`);
          return 1;
        }
        process.stdout.write(`${d.name}\n`);
        return 0;
      }
      case 'unpause':
        return domains.some((x) => x.domid === Number(rest[0])) ? 0 : 1;
      case 'destroy':
        await destroyDomain(xs, hv, Number(rest[0]));
        return 0;
      case 'list':
        process.stdout.write('Name                                        ID   Mem VCPUs\tState\tTime(s)\n');
        for (const d of domains) process.stdout.write(`${(d.name ?? '').padEnd(40)} ${String(d.domid).padStart(5)}   128     1     --p---       0.0\n`);
        return 0;
      default:
        process.stderr.write(`the fake xl does not know ${sub}\n`);
        return 1;
    }
  } finally {
    await xs.close();
    await hv.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`fake xl: ${(e as Error).message}\n`);
    process.exitCode = 1;
  },
);
