/**
 * lib/cli/table.ts against cli-table3 itself: the tables check and ls print must be the bytes
 * cli-table3 draws (docs/config.md and docs/manager.md show that layout), whether drawn by the
 * ASCII path or handed to cli-table3. Generated tables (a seeded generator: the same cases on
 * every run) plus the shapes that leave the fast path; and the fast path loads no cli-table3.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Table from 'cli-table3';
import { drawTable } from '../../lib/cli/table';
import { projectRoot } from '../harness/daemons';

function cliTable3(head: string[], rows: string[][]): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const r of rows) t.push(r);
  return t.toString();
}

/** xorshift32: a small seeded generator, so a failure names a case that comes back. */
function generator(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

const ASCII = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~';

function cell(rand: () => number, alphabet: string): string {
  const lines = 1 + Math.floor(rand() * rand() * 4);
  const out: string[] = [];
  for (let l = 0; l < lines; l++) {
    const n = Math.floor(rand() * 24);
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
    out.push(s);
  }
  return out.join('\n');
}

test('printable ASCII tables: the same bytes as cli-table3 (600 generated tables)', (t) => {
  const rand = generator(0x5eed);
  let drawn = 0;
  for (let k = 0; k < 600; k++) {
    const cols = 1 + Math.floor(rand() * 6);
    const head = Array.from({ length: cols }, () => cell(rand, ASCII));
    const rows = Array.from({ length: Math.floor(rand() * 6) }, () => Array.from({ length: cols }, () => cell(rand, ASCII)));
    const ours = drawTable(head, rows);
    const theirs = cliTable3(head, rows);
    if (ours !== theirs) {
      t.is(ours, theirs, `case ${k}: ${JSON.stringify({ head, rows })}`);
      return;
    }
    drawn++;
  }
  t.is(drawn, 600);
});

test('the shapes of check and ls: empty cells, blank lines, one column, a long line', (t) => {
  const cases: Array<[string[], string[][]]> = [
    [['ID', 'Owner', 'Owner range', 'Borrowers (range, offset into the region)'], [['ID1', 'vm1\nfirst to apply, rw', '0x50000000-0x50100000\n1 MiB', 'vm2 0x50000000-0x50100000 offset 0x0 (1 MiB, rw)\nvm3 0x50000000-0x50100000 offset 0x0 (1 MiB, rw)']]],
    [['a'], []],
    [['a'], [['']]],
    [['', ''], [['', ''], ['\n\n', 'x']]],
    [['x'], [['y'.repeat(500)]]],
    [['h1', 'h2'], [['a\n', '\nb'], ['   ', '  lead and trail  ']]],
  ];
  for (const [head, rows] of cases) t.is(drawTable(head, rows), cliTable3(head, rows), JSON.stringify({ head, rows }));
});

test('text that is not printable ASCII, and ragged rows, are drawn by cli-table3 itself', (t) => {
  const cases: Array<[string[], string[][]]> = [
    [['ID', 'Owner'], [['ID1', 'vmé\nrw']]],
    [['ID', 'Owner'], [['ID1', '漢字 vm']]],
    [['ID', 'Owner'], [['ID1', 'vm 🙂']]],
    [['ID', 'Owner'], [['ID1', '\u001b[31mred\u001b[39m']]],
    [['ID', 'Owner'], [['ID1', 'tab\there']]],
    [['ID', 'Owner', 'Range'], [['ID1', 'vm1']]],
  ];
  for (const [head, rows] of cases) t.is(drawTable(head, rows), cliTable3(head, rows), JSON.stringify({ head, rows }));
});

test('an ASCII table loads neither cli-table3 nor string-width; a wide character loads cli-table3', (t) => {
  const mod = join(projectRoot(), 'dist', 'lib', 'cli', 'table.js');
  const probe = (cellText: string): string[] => {
    const r = spawnSync(process.execPath, ['-e', `
      require(${JSON.stringify(mod)}).drawTable(['ID'], [[${JSON.stringify(cellText)}]]);
      console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /node_modules\\/(cli-table3|string-width)\\//.test(f))));
    `], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as string[];
  };
  t.deepEqual(probe('ID1'), []);
  t.true(probe('漢').some((f) => f.includes('cli-table3')));
});
