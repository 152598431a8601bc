/**
 * docs/manager.md's library examples are programs: each one is type-checked against the
 * sources (`xen-sshm` mapped to lib/index.ts), run against a fresh sandbox, and its output must
 * be the text block that follows it in the page.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot } from '../harness/daemons';
import { docExamples, runExample, typeCheckExamples } from '../helpers/doc-examples';

const ROOT = projectRoot();
const examples = docExamples(readFileSync(join(ROOT, 'docs', 'manager.md'), 'utf8'));

test('docs/manager.md has its three library examples', (t) => {
  t.is(examples.length, 3);
});

test('the examples type-check against the library', (t) => {
  t.deepEqual(typeCheckExamples(ROOT, examples), []);
});

for (const [i, ex] of examples.entries()) {
  test(`example ${i + 1} (${ex.title}) prints what the page says`, async (t) => {
    const sandbox = mkdtempSync(join(tmpdir(), 'xen-sshm-docsb-'));
    t.teardown(() => new Sandbox(sandbox).remove());
    const r = await runExample(ROOT, ex.code, sandbox, { XEN_SSHM_SANDBOX: join(sandbox, 'sb') });
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, ex.output);
    await new Sandbox(join(sandbox, 'sb')).remove();
    rmSync(sandbox, { recursive: true, force: true });
  });
}
