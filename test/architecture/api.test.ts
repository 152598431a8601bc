/**
 * docs/api.md and the package's exports agree: every name `xen-sshm`, `xen-sshm/xenstore` and
 * `xen-sshm/hypervisor` export (values and types, read with the TypeScript compiler) has a row
 * in its section with its kind and a description, and the page lists nothing they do not
 * export. The page's examples are type-checked and run, and print what the page says.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../harness/daemons';
import { docExamples, runExample, typeCheckExamples } from '../helpers/doc-examples';
import { ENTRY_POINTS, exportedNames, type EntryPoint } from '../helpers/exports';

const ROOT = projectRoot();
const page = readFileSync(join(ROOT, 'docs', 'api.md'), 'utf8');

/** The rows of each entry point's section: name -> { kind, what }. */
function documented(markdown: string): Record<string, Map<string, { kind: string; what: string }>> {
  const out: Record<string, Map<string, { kind: string; what: string }>> = {};
  for (const section of markdown.split(/^## /m).slice(1)) {
    const entry = /^`([^`]+)`/.exec(section)?.[1];
    if (!entry) continue;
    const rows = new Map<string, { kind: string; what: string }>();
    for (const m of section.matchAll(/^\| `([^`]+)` \| (\w+) \| (.*) \|$/gm)) rows.set(m[1], { kind: m[2], what: m[3].trim() });
    out[entry] = rows;
  }
  return out;
}

const docs = documented(page);
const exported = exportedNames(ROOT);

for (const entry of Object.keys(ENTRY_POINTS) as EntryPoint[]) {
  test(`docs/api.md documents every export of ${entry}, and nothing else`, (t) => {
    const rows = docs[entry];
    t.truthy(rows, `a section for ${entry}`);
    const names = exported[entry].map((n) => n.name);
    t.true(names.length > 20, `${names.length} names`);
    t.deepEqual([...rows.keys()].filter((n) => !names.includes(n)), [], 'documented but not exported');
    t.deepEqual(names.filter((n) => !rows.has(n)), [], 'exported but not documented');
    for (const n of exported[entry]) {
      const row = rows.get(n.name);
      if (!row) continue;
      t.is(row.kind, n.kind, `${entry} ${n.name}: kind`);
      t.true(row.what.length > 3, `${entry} ${n.name}: described`);
    }
  });

  test(`every runtime export of ${entry} is among the documented values`, (t) => {
    // As a user of the package loads it (dist/), not only as the compiler sees the sources.
    const mod = require(join(ROOT, 'dist', ENTRY_POINTS[entry].replace(/\.ts$/, '.js'))) as Record<string, unknown>;
    const values = new Set(exported[entry].filter((n) => !['type', 'interface'].includes(n.kind)).map((n) => n.name));
    t.deepEqual(Object.keys(mod).filter((k) => k !== '__esModule' && !values.has(k)), []);
  });
}

test('the package root exports no test seam', (t) => {
  t.deepEqual(exported['xen-sshm'].map((n) => n.name).filter((n) => /crash|step(hook|info|kind)|^steps$|instrument/i.test(n)), []);
});

const examples = docExamples(page);

test('docs/api.md has its two examples, and they type-check against the sources', (t) => {
  t.is(examples.length, 2);
  t.deepEqual(typeCheckExamples(ROOT, examples), []);
});

for (const [i, ex] of examples.entries()) {
  test(`api example ${i + 1} (${ex.title}) prints what the page says`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-api-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const r = await runExample(ROOT, ex.code, dir);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, ex.output);
  });
}
