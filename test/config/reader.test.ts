/** The xl config reader: values, locations, `+=`, xl's corners, typed errors, file reading. */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseXlConfig, readXlConfig, XlList, XlString } from '../../lib/config';
import { boundErrors, ERRORS_PER_FILE, SOURCE_WINDOW } from '../../lib/config/errors';
import { CONFIG_BOUNDS } from '../../lib/config/xl-reader';

function syntaxError(text: string): ConfigError {
  try {
    parseXlConfig(text, { file: 't.cfg' });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(text)}`);
}

test('values keep their file, line and column', (t) => {
  const cfg = parseXlConfig('# c\nname = "vm1"\n  memory=128 ; disk = [ "a",\n   \'b\' ]\n', { file: 'x.cfg' });
  const name = cfg.get('name') as XlString;
  t.like(name, { type: 'string', value: 'vm1', token: 'string', location: { file: 'x.cfg', line: 2, column: 8 } });
  t.like(cfg.get('memory'), { type: 'string', value: '128', token: 'number', location: { line: 3, column: 10 } });
  const disk = cfg.get('disk') as XlList;
  t.like(disk, { type: 'list', location: { line: 3, column: 23 } });
  t.deepEqual(
    disk.items.map((i) => [(i as XlString).value, i.location.line, i.location.column]),
    [
      ['a', 3, 25],
      ['b', 4, 4],
    ],
  );
  t.deepEqual(cfg.keys(), ['name', 'memory', 'disk']);
  t.like(cfg.settings.get('memory'), { op: '=', location: { line: 3, column: 3 } });
});

test('a character of a string maps back to its source column, escapes included', (t) => {
  const s = parseXlConfig('k = "a\\tb\\\\c"').get('k') as XlString;
  t.is(s.value, 'a\tb\\c');
  t.deepEqual([0, 1, 2, 3, 4].map((i) => s.locate(i).column), [6, 7, 9, 10, 12]);
});

test('lists: empty, nested, trailing comma, newlines and comments between items', (t) => {
  const cfg = parseXlConfig('a = []\nb = [\n]\nc = [ [ "x", [] ], 1, ]\nd = [ # c\n "p" # q\n ,\n "r",\n]\n');
  const plain = (v: unknown): unknown => ((v as XlList).type === 'list' ? (v as XlList).items.map(plain) : (v as XlString).value);
  t.deepEqual(plain(cfg.get('a')), []);
  t.deepEqual(plain(cfg.get('b')), []);
  t.deepEqual(plain(cfg.get('c')), [['x', []], '1']);
  t.deepEqual(plain(cfg.get('d')), ['p', 'r']);
});

test('= replaces, += appends strings and lists, a lone += is an assignment that remembers it', (t) => {
  const cfg = parseXlConfig('m = 1\nm = 2\ns = "a"\ns += "b"\ns += \'c\'\nl = ["x"]\nl += ["y", "z"]\nn += "only"\n');
  t.is((cfg.get('m') as XlString).value, '2');
  t.is((cfg.get('s') as XlString).value, 'abc');
  t.deepEqual((cfg.get('l') as XlList).items.map((i) => (i as XlString).value), ['x', 'y', 'z']);
  t.like(cfg.settings.get('n'), { op: '+=' });
  t.is(cfg.statements.length, 8);
  // Appended characters keep their own places.
  const s = cfg.get('s') as XlString;
  t.deepEqual([0, 1, 2].map((i) => [s.locate(i).line, s.locate(i).column]), [
    [3, 6],
    [4, 7],
    [5, 7],
  ]);
  const e = syntaxError('l = ["x"]\nl += "y"\n');
  t.like(e, { kind: 'config', rule: 'syntax.concat', code: 'EINVAL', line: 2, column: 3 });
});

test('statements end at a newline, a ; or the end of the file', (t) => {
  const cfg = parseXlConfig('a = 1; b = "2";; c = [3]\n;\nd = 4');
  t.deepEqual(cfg.keys(), ['a', 'b', 'c', 'd']);
  t.like(syntaxError('a = 1 b = 2'), { rule: 'syntax.parse', line: 1, column: 7, reason: 'unexpected key b, expected end of statement (newline or ;)' });
  t.like(syntaxError('a =\n1'), { rule: 'syntax.parse', line: 1, column: 4 });
  t.like(syntaxError('name = vm1'), { rule: 'syntax.parse', hint: 'quote text values: name = "vm1"' });
  t.like(syntaxError('a = [,]'), { rule: 'syntax.parse', column: 6 });
  t.like(syntaxError('a = ["x" "y"]'), { rule: 'syntax.parse', column: 10, hint: 'separate list items with commas' });
});

test("xl's lexical corners: CR, final comment, uppercase, Python, stray last byte", (t) => {
  const crlf = syntaxError('name = "a"\r\nmemory = 1\r\n');
  t.like(crlf, { rule: 'syntax.lexical', line: 1, column: 11, reason: 'carriage return in the file' });
  t.regex(crlf.hint ?? '', /LF line endings/);
  t.like(syntaxError('a = 1\n# end'), { rule: 'syntax.lexical', line: 2, column: 1 });
  t.like(syntaxError('Name = "x"'), { rule: 'syntax.lexical', column: 1 });
  t.like(syntaxError('memory = 128 * 2\n'), { rule: 'syntax.lexical', column: 14 });
  t.like(syntaxError('memory = 1.5\n'), { rule: 'syntax.lexical', column: 11 });
  t.like(syntaxError('a = "open\n'), { rule: 'syntax.lexical', reason: 'unterminated string' });
  t.like(syntaxError('a = "x" é'), { rule: 'syntax.lexical', column: 9 });
  // flex drops one single-byte character right at the end of the file: so do we, with a warning.
  const cfg = parseXlConfig('a = 1 #', { file: 'w.cfg' });
  t.is((cfg.get('a') as XlString).value, '1');
  t.like(cfg.warnings[0], { kind: 'config-warning', file: 'w.cfg', line: 1, column: 7 });
});

test('escapes follow libxlutil, including its \\x and \\0 behaviour', (t) => {
  const v = (text: string) => (parseXlConfig(`k = ${text}`).get('k') as XlString).value;
  t.is(v(String.raw`"\"\'\\\a\b\f\n\r\t\v"`), '"\'\\\x07\b\f\n\r\t\v');
  t.is(v(String.raw`'it\'s'`), "it's");
  t.is(v(String.raw`"a\0123b"`), 'ab');
  t.is(v(String.raw`"\0 5z"`), 'z');
  t.like(syntaxError(String.raw`k = "\x41"`), { rule: 'syntax.escape', column: 6 });
  t.like(syntaxError(String.raw`k = "x\01"`), { rule: 'syntax.escape', column: 7 });
  t.like(syntaxError(String.raw`k = "\q"`), { rule: 'syntax.escape', reason: 'invalid escape \\q' });
  t.like(syntaxError('k = "a\0b"'), { rule: 'syntax.escape' });
  const cfg = parseXlConfig(String.raw`k = "\012"`);
  t.regex(cfg.warnings[0].message, /drops/);
});

test('errors are typed, located, and print the source line with a caret', (t) => {
  const e = syntaxError('name = "vm1"\nmemory = 12 8\n');
  t.true(e instanceof ConfigError);
  t.is(e.kind, 'config');
  t.is(e.code, 'EINVAL');
  t.is(e.message, 't.cfg:2:13: unexpected number 8, expected end of statement (newline or ;) [syntax.parse]');
  t.is(e.source, 'memory = 12 8');
  t.is(e.format().split('\n')[2], '                     ^');
  t.like(e.toJSON(), { kind: 'config', rule: 'syntax.parse', file: 't.cfg', line: 2, column: 13 });
});

test('readXlConfig: io errors carry the errno; the bytes must be UTF-8', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-config-'));
  const missing = await t.throwsAsync(readXlConfig(join(dir, 'nope.cfg')));
  t.like(missing, { kind: 'config', rule: 'io', code: 'ENOENT', line: 0 });
  t.like(await t.throwsAsync(readXlConfig(dir)), { rule: 'io', code: 'EISDIR' });
  const latin1 = join(dir, 'latin1.cfg');
  writeFileSync(latin1, Buffer.concat([Buffer.from('name = "a"\nextra = "caf'), Buffer.from([0xe9]), Buffer.from('"\n')]));
  t.like(await t.throwsAsync(readXlConfig(latin1)), { rule: 'syntax.lexical', line: 2, reason: 'the file is not valid UTF-8' });
  const good = join(dir, 'good.cfg');
  writeFileSync(good, 'name = "café"\n');
  const cfg = await readXlConfig(good);
  t.is((cfg.get('name') as XlString).value, 'café');
  t.is(cfg.file, good);
  t.notThrows(() => JSON.stringify(cfg));
});

// ---------------------------------------------------------------------------------------------
// Bounds (docs/config.md, "Bounds"): each tested just under and just over.

/** The error `text` gives, which must be of rule limit. */
function limitError(text: string): ConfigError {
  const e = syntaxError(text);
  if (e.rule !== 'limit') throw new Error(`expected rule limit, got ${e.rule}: ${e.message}`);
  return e;
}

test('bound: lists nest at most 64 deep; the 65th [ is a located limit error, not a stack overflow', (t) => {
  const nest = (d: number) => `x = ${'['.repeat(d)}${']'.repeat(d)}\n`;
  t.notThrows(() => parseXlConfig(nest(CONFIG_BOUNDS.maxNesting)));
  const e = limitError(nest(CONFIG_BOUNDS.maxNesting + 1));
  t.like(e, { kind: 'config', code: 'EOVERFLOW', line: 1, column: 5 + CONFIG_BOUNDS.maxNesting, reason: 'lists nested more than 64 deep' });
  // 10,000 deep (issue 13: "Maximum call stack size exceeded" with no location before).
  t.like(limitError(nest(10_000)), { line: 1, column: 69 });
});

test('bound: a list holds at most 4096 items, also when built with +=', (t) => {
  const list = (n: number) => `x = [${Array.from({ length: n }, () => '1').join(',')}]\n`;
  t.is((parseXlConfig(list(CONFIG_BOUNDS.maxListItems)).get('x') as XlList).items.length, 4096);
  const e = limitError(list(CONFIG_BOUNDS.maxListItems + 1));
  t.like(e, { line: 1, column: 6 + 2 * 4096, reason: 'a list of more than 4096 items' });
  const half = `[${Array.from({ length: 2048 }, () => '1').join(',')}]`;
  t.is((parseXlConfig(`x = ${half}\nx += ${half}\n`).get('x') as XlList).items.length, 4096);
  t.like(limitError(`x = ${half}\nx += ${half}\nx += [1]\n`), { line: 3, column: 3, reason: '+= makes a list of more than 4096 items' });
});

test('bound: a string or number holds at most 16 KiB characters', (t) => {
  const max = CONFIG_BOUNDS.maxStringChars;
  t.is((parseXlConfig(`s = "${'a'.repeat(max)}"\n`).get('s') as XlString).value.length, max);
  t.like(limitError(`s = "${'a'.repeat(max + 1)}"\n`), { line: 1, column: 5, reason: `a string of ${max + 1} characters, more than ${max}` });
  t.is((parseXlConfig(`n = 1${'0'.repeat(max - 1)}\n`).get('n') as XlString).value.length, max);
  t.like(limitError(`n = 1${'0'.repeat(max)}\n`), { reason: `a number of ${max + 1} characters, more than ${max}` });
});

test('bound: += chains are folded once (linear): 100,000 appends to one key', (t) => {
  const n = 100_000;
  const cfg = parseXlConfig('s = ""\n' + 's += "ab"\n'.repeat(n));
  const s = cfg.get('s') as XlString;
  t.is(s.value.length, 2 * n);
  t.like(s.locate(2 * n - 1), { line: n + 1, column: 8 });
  t.is(cfg.statements.length, n + 1);
});

test('bound: a text of more than 1 MiB is refused before parsing; readXlConfig refuses a bigger file before reading it', async (t) => {
  const max = CONFIG_BOUNDS.maxBytes;
  // Just under: a valid config of exactly maxBytes bytes (name, then comment lines).
  const head = 'name = "vm1"\n';
  const line = '#'.repeat(1023) + '\n';
  let text = head + line.repeat(Math.floor((max - head.length) / line.length));
  text += '#'.repeat(max - text.length - 1) + '\n';
  t.is(text.length, max);
  t.is((parseXlConfig(text).get('name') as XlString).value, 'vm1');
  t.like(syntaxError(text + '\n'), { rule: 'limit', code: 'EFBIG', line: 1, column: 1 });

  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-bounds-'));
  const exact = join(dir, 'exact.cfg');
  writeFileSync(exact, text);
  t.is(((await readXlConfig(exact)).get('name') as XlString).value, 'vm1');
  const over = join(dir, 'over.cfg');
  writeFileSync(over, text + '\n');
  t.like(await t.throwsAsync(readXlConfig(over)), { rule: 'io', code: 'EFBIG', line: 0, reason: `the config file is ${max + 1} bytes, more than the ${max} bytes a config may have` });
  // A sparse file of 64 GiB: refused by its size, never read (reading it would take minutes).
  const huge = join(dir, 'huge.cfg');
  writeFileSync(huge, '');
  truncateSync(huge, 64 * 1024 ** 3);
  t.like(await t.throwsAsync(readXlConfig(huge)), { rule: 'io', code: 'EFBIG' });
});

test('bound: only regular files are read: a character device, a FIFO, a socket are refused at once', async (t) => {
  t.like(await t.throwsAsync(readXlConfig('/dev/zero')), { rule: 'io', code: 'EINVAL', reason: 'the config file is a character device, not a regular file' });
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-bounds-'));
  const fifo = join(dir, 'fifo.cfg');
  execFileSync('mkfifo', [fifo]);
  // No writer ever opens it: without O_NONBLOCK, open() would wait forever.
  t.like(await t.throwsAsync(readXlConfig(fifo)), { rule: 'io', code: 'EINVAL', reason: 'the config file is a FIFO, not a regular file' });
  const sock = join(dir, 'sock.cfg');
  const server = createServer().listen(sock);
  await once(server, 'listening');
  try {
    // open() of a socket fails with ENXIO: still a typed io error.
    t.like(await t.throwsAsync(readXlConfig(sock)), { rule: 'io', code: 'ENXIO' });
  } finally {
    server.close();
  }
});

test('bound: what an error echoes is elided: a 10,000-character ID, a long source line', (t) => {
  const id = 'A'.repeat(10_000);
  const e = new ConfigError({ rule: 'id.syntax', location: { file: 'f.cfg', line: 3, column: 17 }, reason: `ID ${JSON.stringify(id + '-')} may only use letters, digits and _`, entry: `id=${id}-, begin=0x50000000, size=1M`, hint: 'x' });
  t.true(e.format().length < 1000, `${e.format().length} characters`);
  t.regex(e.reason, /^ID "A{53}\.\.\.\[9923 more characters\]\.\.\.A{24}-" may only use letters, digits and _$/);
  t.is(e.entry?.length, 200 + '...[9848 more characters]...'.length);
  t.true(e.message.length < 500);
  const s = syntaxError(`x = 1 ${'y '.repeat(5000)}\n`);
  t.is(s.rule, 'syntax.parse');
  t.true((s.source ?? '').length <= SOURCE_WINDOW + 6);
  // The caret still points at the token the error is about.
  const [, lineText, caretText] = s.format().split('\n');
  t.is(lineText.slice('  line:  '.length)[caretText.indexOf('^') - '         '.length], 'y');
});

test('bound: errors per file are deduplicated, then at most 50, then "and N more"', (t) => {
  const err = (i: number, reason = `problem ${i}`) => new ConfigError({ rule: 'entry.syntax', location: { file: 'a.cfg', line: 1, column: i + 1 }, reason, hint: 'h' });
  const fifty = Array.from({ length: ERRORS_PER_FILE }, (_, i) => err(i));
  t.deepEqual(boundErrors(fifty).map((e) => e.reason), fifty.map((e) => e.reason));
  const over = [...fifty, err(50), err(51), new ConfigError({ rule: 'window', location: { file: 'b.cfg', line: 2, column: 1 }, reason: 'other file', hint: 'h' })];
  const b = boundErrors(over);
  t.is(b.length, 50 + 1 + 1);
  t.like(b[50], { rule: 'limit', file: 'a.cfg', reason: 'and 2 more errors in this file, not shown', line: 1, column: 52 });
  t.like(b[51], { file: 'b.cfg', reason: 'other file' });
  const repeated = Array.from({ length: 700 }, (_, i) => err(i, 'begin is given twice in this entry'));
  t.deepEqual(boundErrors(repeated).map((e) => [e.reason, e.column]), [['begin is given twice in this entry (and 699 more times in this file)', 1]]);
});
