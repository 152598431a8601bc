/**
 * The import rules docs/ARCHITECTURE.md states, checked on every import of lib/ and
 * xenstore-wire/ (parsed by the TypeScript compiler: import, import type, export from,
 * require). The rules are read from the page's table, so the page and the code cannot drift.
 */
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();

interface Allow {
  room: string;
  facadeOnly: boolean;
}

interface Rules {
  rows: Map<string, Allow[]>;
}

/** The "Who may import whom" table of docs/ARCHITECTURE.md. */
export function readRules(markdown: string): Rules {
  const section = markdown.split(/^## /m).find((s) => s.startsWith('Who may import whom'));
  if (!section) throw new Error('docs/ARCHITECTURE.md has no "Who may import whom" section');
  const rows = new Map<string, Allow[]>();
  for (const line of section.split('\n')) {
    const m = /^\|\s*([^|]+?)\s*\|\s*([^|]*?)\s*\|$/.exec(line);
    if (!m || m[1] === 'room' || /^-+$/.test(m[1])) continue;
    const allows = m[2]
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
      .map((x) => ({ room: x.replace(/\s*\(façade\)$/, ''), facadeOnly: /\(façade\)$/.test(x) }));
    rows.set(m[1], allows);
  }
  return { rows };
}

/** Every .ts file under `dir`, relative to the project root. */
function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir)).sort()) {
    const p = join(dir, name);
    if (statSync(join(ROOT, p)).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The project files a source imports (relative specifiers resolved to .ts paths). */
export function importsOf(file: string): Array<{ spec: string; target: string | null }> {
  const info = ts.preProcessFile(readFileSync(join(ROOT, file), 'utf8'), true, true);
  return info.importedFiles.map((f) => {
    if (!f.fileName.startsWith('.')) return { spec: f.fileName, target: null };
    const base = resolve(ROOT, dirname(file), f.fileName);
    for (const cand of [`${base}.ts`, join(base, 'index.ts')]) {
      try {
        if (statSync(cand).isFile()) return { spec: f.fileName, target: relative(ROOT, cand) };
      } catch {
        // try the next form
      }
    }
    return { spec: f.fileName, target: relative(ROOT, base) };
  });
}

/** The longest name among `names` that `path` starts with (as a folder or a file stem). */
function roomOf(path: string, names: Iterable<string>): string | null {
  let best: string | null = null;
  for (const n of names) {
    const hit = path === n || path.startsWith(`${n}/`) || path === `${n}.ts`;
    if (hit && (best === null || n.length > best.length)) best = n;
  }
  return best;
}

/** Every violation of `rules` among the imports of `files`. */
export function violations(rules: Rules, files: string[]): string[] {
  const rowNames = [...rules.rows.keys()];
  const allNames = new Set([...rowNames, ...[...rules.rows.values()].flat().map((a) => a.room)]);
  const out: string[] = [];
  for (const file of files) {
    const from = roomOf(file, rowNames);
    if (!from) {
      out.push(`${file}: in no room of docs/ARCHITECTURE.md`);
      continue;
    }
    for (const { spec, target } of importsOf(file)) {
      if (!target) continue;
      const to = roomOf(target, allNames);
      if (!to) {
        out.push(`${file}: imports ${spec}, in no room`);
        continue;
      }
      // Its own files and folders (a room inside it is part of it).
      if (to === from || target.startsWith(`${from}/`)) continue;
      // The most specific allowed room holding the target.
      const allow = rules.rows
        .get(from)!
        .filter((a) => to === a.room || to.startsWith(`${a.room}/`))
        .sort((a, b) => b.room.length - a.room.length)[0];
      if (!allow) out.push(`${file}: imports ${spec} (${to}), which ${from} may not import`);
      else if (allow.facadeOnly && target !== `${allow.room}/index.ts` && target !== `${allow.room}.ts`) {
        out.push(`${file}: imports ${spec}, inside ${allow.room}: only its façade (${allow.room}/index.ts) may be imported`);
      }
    }
  }
  return out;
}

const rules = readRules(readFileSync(join(ROOT, 'docs', 'ARCHITECTURE.md'), 'utf8'));
const files = [...sources('lib'), ...sources('xenstore-wire')];

test('docs/ARCHITECTURE.md states a rule for every room', (t) => {
  t.true(rules.rows.size >= 10, `${rules.rows.size} rows`);
  for (const room of ['lib/config', 'lib/hypervisor', 'lib/store', 'lib/manager', 'lib/sandbox', 'lib/cli', 'xenstore-wire', 'lib/vocabulary']) t.true(rules.rows.has(room), room);
});

test('every import of lib/ and xenstore-wire/ follows docs/ARCHITECTURE.md', (t) => {
  t.true(files.length > 50, `${files.length} files`);
  t.deepEqual(violations(rules, files), []);
});

test('the import check catches an upward import, a reach past a façade, and a file in no room', (t) => {
  // The checker itself, on made-up rules over real files: it must not pass everything.
  const strict = readRules(['## Who may import whom', '| room | may import |', '|---|---|', '| lib/config | |', '| lib/sandbox | lib/manager (façade) |', ''].join('\n'));
  const found = violations(strict, ['lib/config/plan.ts', 'lib/sandbox/sandbox.ts', 'lib/store/schema.ts']);
  t.true(found.some((v) => v.startsWith('lib/config/plan.ts: imports ../vocabulary')), found.join('\n'));
  t.true(found.some((v) => v.startsWith('lib/sandbox/sandbox.ts: imports ../lockfile')), found.join('\n'));
  t.true(found.some((v) => v === 'lib/store/schema.ts: in no room of docs/ARCHITECTURE.md'), found.join('\n'));
  const facade = readRules(['## Who may import whom', '| room | may import |', '| lib/manager | lib/hypervisor (façade), lib/vocabulary, lib/lockfile, lib/config, lib/store, xenstore-wire |', ''].join('\n'));
  t.true(violations(facade, ['lib/manager/frames.ts']).some((v) => /only its façade/.test(v)));
});

test('the codec layer of xenstore-wire does no I/O', (t) => {
  const codec = ['constants', 'codec', 'framing', 'payload', 'paths', 'perms', 'errors'].map((n) => `xenstore-wire/${n}.ts`);
  const io = /^(node:)?(net|fs|child_process|tty|dgram)$|transport/;
  const bad = codec.flatMap((f) => importsOf(f).filter((i) => io.test(i.spec)).map((i) => `${f}: ${i.spec}`));
  t.deepEqual(bad, []);
});

test('no production code reads a crash variable or replaces a client request function', (t) => {
  const bad = files.filter((f) => /XEN_SSHM_CRASH|\._request\s*=(?!=)|process\.kill\(\s*process\.pid/.test(readFileSync(join(ROOT, f), 'utf8')));
  t.deepEqual(bad, []);
});
