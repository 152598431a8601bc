/**
 * Differential test against Xen's own parser: tools/xlu-dump (compiled here against Debian's
 * libxlutil) and lib/config/xl-reader must accept the same texts, reject the same texts, and
 * agree on every key's value, `+=` flag and line, for every fixture, >= 1,000 configs drawn
 * from the grammar and >= 1,000 byte-level mutations of the fixtures per run.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { ConfigError, parseXlConfig, readXlConfig } from '../../lib/config';
import { Dump, genConfig, listConfigs, mutateText, ourDump, Rng, ROOT, runSeed, xluDumpFiles, xluDumpTexts } from './helpers';

function ours(text: string): Dump {
  try {
    return ourDump(parseXlConfig(text, { file: 'gen' }));
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errno: err.code };
    throw err;
  }
}

/** Compare and return a description of the first disagreement, or ''. */
function disagreement(ref: Dump, got: Dump): string {
  if (ref.ok !== got.ok) return `libxlutil ${ref.ok ? 'accepts' : `rejects (${ref.report?.trim()})`}, ours ${got.ok ? 'accepts' : 'rejects'}`;
  if (!ref.ok) return '';
  if (ref.count !== got.count) return `statement count ${ref.count} vs ${got.count}`;
  const a = JSON.stringify(Object.entries(ref.settings ?? {}).sort());
  const b = JSON.stringify(Object.entries(got.settings ?? {}).sort());
  return a === b ? '' : `settings differ:\n libxlutil ${a}\n ours      ${b}`;
}

test('every fixture: same keys, values and lines as libxlutil (xlu_cfg_readfile)', async (t) => {
  const files = listConfigs();
  t.true(files.length >= 50, `found ${files.length} fixtures`);
  const refs = xluDumpFiles(files);
  let accepted = 0;
  for (const [i, file] of files.entries()) {
    let got: Dump;
    try {
      got = ourDump(await readXlConfig(file));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      got = { ok: false, errno: err.code };
    }
    t.is(disagreement(refs[i], got), '', relative(ROOT, file));
    if (refs[i].ok) accepted++;
  }
  // Only the syntax.* broken fixtures and grammar/bad-* are refused by the grammar itself, and
  // broken/limit (lists nested 5,100 deep: libxlutil runs out of parser stack at 4,997).
  const syntaxBroken = files.filter((f) => /broken\/syntax\.|broken\/limit\.|grammar\/bad-/.test(f)).length;
  t.true(syntaxBroken >= 8);
  t.is(files.length - accepted, syntaxBroken);
});

test('1,000 generated configs, 1,000 mutated fixtures, 1,000 random texts: libxlutil and ours agree (xlu_cfg_readdata)', (t) => {
  const seed = runSeed();
  t.log(`seed ${seed} (replay with XEN_SSHM_SEED=${seed})`);
  const r = new Rng(seed);
  const texts: string[] = [];
  for (let i = 0; i < 1000; i++) texts.push(genConfig(r));
  const fixtures = listConfigs().map((f) => readFileSync(f, 'utf8'));
  for (let i = 0; i < 1000; i++) texts.push(mutateText(r, r.pick(fixtures)));
  // Short random texts over the characters the grammar cares about (lexer corners).
  const alphabet = 'a1x0f=+[],;#"\'\\ \t\n\r@A._-é7'.split('');
  for (let i = 0; i < 1000; i++) {
    let s = '';
    for (let n = r.int(25); n > 0; n--) s += r.pick(alphabet);
    texts.push(s);
  }
  // xl aborts on a NUL byte inside a string (an assert in libxlutil); keep those out.
  const cases = texts.filter((s) => !s.includes('\0'));
  const refs = xluDumpTexts(cases);
  let accepted = 0;
  let rejected = 0;
  const failures: string[] = [];
  cases.forEach((text, i) => {
    const d = disagreement(refs[i], ours(text));
    if (d && failures.length < 5) failures.push(`${d}\n text: ${JSON.stringify(text)}`);
    if (refs[i].ok) accepted++;
    else rejected++;
  });
  t.deepEqual(failures, []);
  t.log(`${cases.length} configs: ${accepted} accepted and ${rejected} rejected by both`);
  // Both sides of the grammar are exercised.
  t.true(cases.length >= 2900 && accepted >= 700 && rejected >= 700, `accepted ${accepted}, rejected ${rejected}`);
});

test("libxlutil's corners are reproduced (checked against the library too)", (t) => {
  const corners: Array<[string, boolean]> = [
    ['a = 1 @', true], // one stray byte at end of file is dropped by flex
    ['a = 1 #', true],
    ['a = 1 #c', false], // a final comment needs its newline
    ['a = 1\r\n', false], // CRLF
    ['a = "\\x41"', false], // \x never parses
    ['a = "\\012z"', true], // \0 swallows "12" and yields nothing
    ['a = "x\\01"', false],
    ['a = [1,]', true],
    ['a = [,]', false],
    ['a = 1; a += 2', true],
    ["a = [1]; a += 'x'", false],
    ['A = 1', false],
    ['a = 1 b = 2', false],
  ];
  const refs = xluDumpTexts(corners.map(([s]) => s));
  corners.forEach(([text, ok], i) => {
    t.is(refs[i].ok, ok, `libxlutil on ${JSON.stringify(text)}`);
    t.is(disagreement(refs[i], ours(text)), '', JSON.stringify(text));
  });
  t.is((ourDump(parseXlConfig('a = "\\012z"')).settings ?? {}).a.value, 'z');
  t.is((ourDump(parseXlConfig('a = 1; a += 2')).settings ?? {}).a.value, '12');
});
