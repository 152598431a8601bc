/** Shared by the config tests: paths, a seeded PRNG, config generators, the CLI, xlu-dump. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { XlConfig, XlValue } from '../../lib/config';
import { seededRandom } from '../helpers/prng';

export const ROOT = resolve(__dirname, '../../..');
export const FIXTURES = join(ROOT, 'fixtures/config');
export const CLI = join(ROOT, 'dist/lib/cli/xen-sshm.js');

/** Every .cfg under `dir`, sorted, as absolute paths. */
export function listConfigs(dir = FIXTURES): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listConfigs(p));
    else if (name.endsWith('.cfg')) out.push(p);
  }
  return out;
}

/** The seed of this run: fixed (1), unless XEN_SSHM_SEED names another (tests log it). */
export function runSeed(): number {
  const env = process.env.XEN_SSHM_SEED;
  return env ? Number(env) >>> 0 : 1;
}

export const prng = seededRandom;

export class Rng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], cwd = ROOT): RunResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// The reference side: Xen's libxlutil through tools/xlu-dump.

let xluDump: string | undefined;

/** Compile tools/xlu-dump against Debian's libxlutil (libxen-dev) once per process. */
export function buildXluDump(): string {
  if (xluDump) return xluDump;
  const dir = mkdtempSync(join(tmpdir(), 'xlu-dump-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'xlu-dump');
  const r = spawnSync('gcc', ['-O1', '-Wall', '-Werror', '-o', out, join(ROOT, 'tools/xlu-dump/xlu-dump.c'), '-lxlutil'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`cannot build tools/xlu-dump (needs gcc and libxen-dev): ${r.error?.message ?? r.stderr}`);
  }
  xluDump = out;
  return out;
}

export interface Dump {
  ok: boolean;
  errno?: string;
  report?: string;
  count?: number;
  settings?: Record<string, { op: string; line: number; value: unknown }>;
}

/** libxlutil's bytes come back as \u00XX (latin1); re-read them as UTF-8 like our reader. */
function fromLatin1(v: unknown): unknown {
  if (typeof v === 'string') return Buffer.from(v, 'latin1').toString('utf8');
  if (Array.isArray(v)) return v.map(fromLatin1);
  return v;
}

function parseDumpLine(line: string): Dump {
  const d = JSON.parse(line) as Dump;
  if (d.settings) for (const s of Object.values(d.settings)) s.value = fromLatin1(s.value);
  return d;
}

/** libxlutil's view of each file (xlu_cfg_readfile). */
export function xluDumpFiles(files: string[]): Dump[] {
  const r = spawnSync(buildXluDump(), files, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`xlu-dump failed (${r.status} ${r.signal}): ${r.stderr}`);
  return r.stdout.trim().split('\n').map(parseDumpLine);
}

/** libxlutil's view of each text (xlu_cfg_readdata), one process for all of them. */
export function xluDumpTexts(texts: string[]): Dump[] {
  const parts: Buffer[] = [];
  for (const t of texts) {
    const b = Buffer.from(t, 'utf8');
    parts.push(Buffer.from(`${b.length}\n`), b);
  }
  const r = spawnSync(buildXluDump(), ['--batch'], { input: Buffer.concat(parts), maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`xlu-dump --batch failed (${r.status} ${r.signal}): ${r.stderr}`);
  const lines = r.stdout.toString('utf8').trim().split('\n');
  if (lines.length !== texts.length) throw new Error(`xlu-dump answered ${lines.length} of ${texts.length}`);
  return lines.map(parseDumpLine);
}

function plain(v: XlValue): unknown {
  return v.type === 'string' ? v.value : v.items.map(plain);
}

/** Our reader's view in xlu-dump's shape. */
export function ourDump(cfg: XlConfig): Dump {
  const settings: Dump['settings'] = {};
  for (const [name, s] of cfg.settings) settings[name] = { op: s.op, line: s.value.location.line, value: plain(s.value) };
  return { ok: true, count: cfg.statements.length, settings };
}

// ---------------------------------------------------------------------------------------------
// Generators.

const KEYS = ['name', 'memory', 'vcpus', 'static_shm', 'static_shared_mem', 'extra', 'disk', 'vif', 'a', 'b.c', 'x_1', 'on_crash'];
const PLAIN = 'abcdefxyzABCXYZ0189 _-=,.:;[]#+/@()!?$%&*<>{}|~`^';
const ESCAPES = ['\\\\', '\\"', "\\'", '\\n', '\\t', '\\a', '\\b', '\\f', '\\r', '\\v'];
const UNICODE = ['é', 'ü', 'ß', '日', '€', '\u00a0'];

function genString(r: Rng): string {
  const q = r.chance(0.7) ? '"' : "'";
  // Escapes xl refuses (or octal escapes with too few digits) in one string of ten.
  const wild = r.chance(0.1);
  let s = '';
  const n = r.int(12);
  for (let i = 0; i < n; i++) {
    const k = r.next();
    if (k < 0.6) s += r.pick(PLAIN.split(''));
    else if (k < 0.75) s += r.pick(ESCAPES);
    else if (k < 0.82) s += q === '"' ? "'" : '"';
    else if (k < 0.88) s += r.pick(UNICODE);
    else if (k < 0.92) s += '\t';
    else if (k < 0.96) s += '\\' + r.pick('01234567'.split('')) + (wild ? r.pick(['1', 'ab', '+', '']) : r.pick(['12', ' 5', '-3x', '999', '+7', '\t42']));
    else s += wild ? r.pick(['\\x41', '\\q', '\\8', '\\z']) : r.pick(PLAIN.split(''));
  }
  return q + s + q;
}

function genNumber(r: Rng): string {
  const first = r.pick('0123456789'.split(''));
  let s = first;
  const n = r.int(9);
  for (let i = 0; i < n; i++) s += r.pick('0123456789abcdefx'.split(''));
  return s;
}

const ws = (r: Rng) => (r.chance(0.5) ? '' : r.pick([' ', '  ', '\t', ' \t ']));
const nls = (r: Rng) => (r.chance(0.7) ? '' : r.pick(['\n', '\n\n', ' # note\n', '\n  ']));

function genValue(r: Rng, depth: number): string {
  const k = r.next();
  if (k < 0.45 || depth > 2) return genString(r);
  if (k < 0.65) return genNumber(r);
  const items: string[] = [];
  const n = r.int(5);
  for (let i = 0; i < n; i++) items.push(genValue(r, depth + 1));
  let body = nls(r);
  items.forEach((it, i) => {
    body += ws(r) + it + ws(r) + nls(r);
    if (i < items.length - 1) body += ',' + ws(r) + nls(r);
  });
  if (items.length && r.chance(0.4)) body += ',' + nls(r);
  return '[' + body + ws(r) + ']';
}

function genKey(r: Rng): string {
  if (r.chance(0.8)) return r.pick(KEYS);
  let s = r.pick('abcdefghijklmnopqrstuvwxyz'.split(''));
  const n = r.int(6);
  for (let i = 0; i < n; i++) s += r.pick('abz09._'.split(''));
  return s;
}

/** A config drawn from the whole libxlutil grammar (valid by construction, corners included). */
export function genConfig(r: Rng): string {
  let s = r.chance(0.2) ? '# generated\n' : '';
  const n = r.int(8);
  for (let i = 0; i < n; i++) {
    s += ws(r) + genKey(r) + ws(r) + (r.chance(0.8) ? '=' : '+=') + ws(r) + genValue(r, 0) + ws(r);
    const comment = r.chance(0.15);
    if (comment) s += '# comment ' + r.pick(['x', '[', '"', '']);
    const last = i === n - 1;
    // A comment ends at a newline; otherwise ';' or a newline ends a statement, and the last
    // one may have no terminator at all (sometimes leaving a final comment without newline).
    if (comment) s += last && r.chance(0.2) ? '' : '\n';
    else if (!last || r.chance(0.7)) s += r.chance(0.2) ? ';' : '\n';
    if (r.chance(0.1)) s += r.pick(['\n', ';', ' ;\n', '# c\n']);
  }
  return s;
}

const BAD = ['@', 'A', 'Z', '\r', '-', '(', ')', ':', '.', '"', "'", '\\', ',', '=', '+', '[', ']', '#', ';', '\n', ' ', '_', 'é', '+=', '0x', 'g'];

/** One to three byte-level edits: insert a character, delete, duplicate or truncate. */
export function mutateText(r: Rng, text: string): string {
  let s = text;
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const at = r.int(s.length + 1);
    const k = r.next();
    if (k < 0.45) s = s.slice(0, at) + r.pick(BAD) + s.slice(at);
    else if (k < 0.7) s = s.slice(0, at) + s.slice(at + 1 + r.int(3));
    else if (k < 0.85) {
      const len = 1 + r.int(20);
      s = s.slice(0, at) + s.slice(at, at + len) + s.slice(at);
    } else if (k < 0.95) {
      const j = r.int(s.length + 1);
      s = s.slice(0, at) + s[j % Math.max(1, s.length)] + s.slice(at + 1);
    } else s = s.slice(0, at);
  }
  return s;
}

const NUMBERS = ['0', '0x0', '0x1000', '0x800', '4096', '0x50000000', '0x50001000', '1M', '2M', '64K', '1G', '0xffffffffffffffff', '0x10000000000000000', '0xfffffffffffff000', '18446744073709551615', '010', '-1', '0x', '1T', ''];
const WORDS = ['owner', 'borrower', 'master', 'slave', 'onwer', 'r', 'rw', 'rwx', 'ARM_normal', 'x86_normal', 'arm_normal', 'ID1', 'ID2', 'ID5', 'bad-id', 'X'.repeat(130), 'sixteen_chars_id'];
const ENTRY_KEYS = ['id', 'begin', 'end', 'size', 'offset', 'role', 'prot', 'cache_policy', 'sise', 'ID'];

/** Edits that keep the file readable but change the shared memory entries' meaning. */
export function mutateSemantic(r: Rng, text: string): string {
  let s = text;
  const edits = 1 + r.int(3);
  for (let e = 0; e < edits; e++) {
    const k = r.next();
    if (k < 0.35) {
      const nums = [...s.matchAll(/0x[0-9a-fA-F]+|\b\d+[KMG]?\b/g)];
      if (nums.length) {
        const m = r.pick(nums);
        s = s.slice(0, m.index) + r.pick(NUMBERS) + s.slice((m.index ?? 0) + m[0].length);
      }
    } else if (k < 0.6) {
      const words = [...s.matchAll(/\b(owner|borrower|rw|ARM_normal|ID\d)\b/g)];
      if (words.length) {
        const m = r.pick(words);
        s = s.slice(0, m.index) + r.pick(WORDS) + s.slice((m.index ?? 0) + m[0].length);
      }
    } else if (k < 0.8) {
      const keys = [...s.matchAll(/\b(id|begin|end|size|offset|role|prot|cache_policy)=/g)];
      if (keys.length) {
        const m = r.pick(keys);
        s = s.slice(0, m.index) + r.pick(ENTRY_KEYS) + '=' + s.slice((m.index ?? 0) + m[0].length);
      }
    } else if (k < 0.9) {
      // Duplicate or drop an entry string.
      const strs = [...s.matchAll(/"[^"\n]*"/g)];
      if (strs.length) {
        const m = r.pick(strs);
        const end = (m.index ?? 0) + m[0].length;
        s = r.chance(0.5) ? s.slice(0, end) + ', ' + m[0] + s.slice(end) : s.slice(0, m.index) + '""' + s.slice(end);
      }
    } else {
      s = s.replace(/role=(owner|borrower)/, (x) => (r.chance(0.5) ? '' : x.includes('owner') ? 'role=borrower' : 'role=owner'));
    }
  }
  return s;
}
