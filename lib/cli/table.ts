/**
 * The command line's tables (check's plan, ls's regions): cli-table3's layout with its default
 * box characters, one space of padding each side, a rule between rows, no colours.
 *
 * A table whose every cell is printable ASCII is drawn here, byte for byte as cli-table3 draws
 * it (test/cli/table.test.ts holds the two to each other on generated tables): cli-table3
 * measures every line of every cell with string-width, whose emoji regex is built and run per
 * call; loading and running that was about 0.2x of `node -e 0` in `xen-sshm check`'s start-up
 * (docs/notes/cli-wave3.md). Any other text (a domain name in UTF-8, a wide character, an
 * escape sequence) goes to cli-table3 itself, loaded only then.
 */

/** Printable ASCII and newlines: one column per character, nothing for string-width to do. */
const PLAIN = /^[\x20-\x7e\n]*$/;

function isPlain(head: readonly string[], rows: readonly (readonly string[])[]): boolean {
  if (!head.every((c) => PLAIN.test(c))) return false;
  return rows.every((r) => r.length === head.length && r.every((c) => PLAIN.test(c)));
}

/** cli-table3's rendering (non-ASCII text, rows of another length). */
function drawWithCliTable3(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const Table = require('cli-table3') as typeof import('cli-table3');
  const table = new Table({ head: [...head], style: { head: [], border: [] } });
  for (const r of rows) table.push([...r]);
  return table.toString();
}

/** The table as text, without a final newline (as cli-table3's toString()). */
export function drawTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  if (!isPlain(head, rows)) return drawWithCliTable3(head, rows);
  const all = [head, ...rows].map((r) => r.map((c) => c.split('\n')));
  // Each column as wide as its longest line, plus the padding.
  // (Loops, not Math.max(...): ls draws a row per region, thousands of them.)
  const widths = head.map(() => 2);
  for (const r of all) r.forEach((lines, x) => lines.forEach((l) => (widths[x] = Math.max(widths[x], l.length + 2))));
  const rule = (left: string, mid: string, right: string, fill: string): string => left + widths.map((w) => fill.repeat(w)).join(mid) + right;
  const out: string[] = [rule('┌', '┬', '┐', '─')];
  all.forEach((cells, y) => {
    if (y > 0) out.push(rule('├', '┼', '┤', '─'));
    const height = cells.reduce((h, lines) => Math.max(h, lines.length), 1);
    for (let n = 0; n < height; n++) out.push('│' + cells.map((lines, x) => ' ' + (lines[n] ?? '').padEnd(widths[x] - 2) + ' ').join('│') + '│');
  });
  out.push(rule('└', '┴', '┘', '─'));
  return out.join('\n');
}
