/**
 * The public API of xen-sshm/xenstore is a deliberate list: xenstore-wire/index.ts names every
 * export, and docs/xenstore-client.md ("Public API") documents each one with its kind. This
 * test reads both (the index through the TypeScript compiler, so type-only exports count) and
 * the built package entry (the runtime names), and fails when any two disagree.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();

/** Documented names and kinds, from the table under "## Public API". */
function documented(): Map<string, string> {
  const page = readFileSync(join(ROOT, 'docs', 'xenstore-client.md'), 'utf8');
  const section = page.split(/^## Public API$/m)[1]?.split(/^## /m)[0] ?? '';
  const rows = [...section.matchAll(/^\| `([A-Za-z_][A-Za-z0-9_]*)` \| (\w+) \|/gm)];
  return new Map(rows.map((m) => [m[1], m[2]]));
}

/** Exported names of xenstore-wire/index.ts: true for names with a runtime value. */
function declared(): Map<string, boolean> {
  const file = join(ROOT, 'xenstore-wire', 'index.ts');
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const sym = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
  const out = new Map<string, boolean>();
  for (const e of checker.getExportsOfModule(sym)) {
    // `export type { X }` of a class is an alias whose target has a value: ask the alias chain
    // whether it was re-exported as a type only.
    const typeOnly = e.declarations?.some((d) => ts.isExportSpecifier(d) && (d.isTypeOnly || d.parent.parent.isTypeOnly)) ?? false;
    const target = e.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(e) : e;
    out.set(e.name, !typeOnly && (target.flags & ts.SymbolFlags.Value) !== 0);
  }
  return out;
}

test('every export of xen-sshm/xenstore is documented, with the right kind, and nothing else is', (t) => {
  const docs = documented();
  const index = declared();
  t.true(docs.size >= 40, `${docs.size} documented names: the table was not found or is short`);
  t.deepEqual([...index.keys()].filter((n) => !docs.has(n)).sort(), [], 'exported but not documented');
  t.deepEqual([...docs.keys()].filter((n) => !index.has(n)).sort(), [], 'documented but not exported');
  const wrongKind = [...index].filter(([n, isValue]) => docs.has(n) && (docs.get(n) !== 'type') !== isValue).map(([n]) => n);
  t.deepEqual(wrongKind, [], 'documented as a type but a value, or the reverse');
});

test('the built entry point has exactly the documented runtime names', (t) => {
  const runtime = Object.keys(require(join(ROOT, 'dist', 'xenstore-wire', 'index.js')) as object).sort();
  const docs = [...documented()].filter(([, kind]) => kind !== 'type').map(([n]) => n).sort();
  t.deepEqual(runtime, docs);
  t.true(runtime.length <= 30, `${runtime.length} runtime names`);
  for (const internal of ['writeHeader', 'joinNul', 'splitNul', 'seededRandom', 'server', 'nodeFdIo', 'discoverEndpoint']) {
    t.false(runtime.includes(internal), `${internal} is internal`);
  }
});
