/**
 * The README's client example is real: the first ```ts block under "## Example" in README.md
 * is transpiled and run, as a user would run it (importing 'xen-sshm/xenstore'), against a real
 * C xenstored found through XENSTORED_PATH.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { projectRoot, startDaemon } from '../harness/daemons';

const README_EXAMPLE_HEADING = '### Example: the xenstore client';

/** The first ```ts fenced block after README_EXAMPLE_HEADING (before the next heading). */
export function exampleFromReadme(markdown: string): string {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.trim() === README_EXAMPLE_HEADING);
  if (start < 0) throw new Error(`README.md has no "${README_EXAMPLE_HEADING}" heading`);
  let i = start + 1;
  for (; i < lines.length && !lines[i].startsWith('#'); i++) {
    if (lines[i].trim() === '```ts') {
      const end = lines.indexOf('```', i + 1);
      if (end < 0) throw new Error(`unterminated \`\`\`ts block under "${README_EXAMPLE_HEADING}"`);
      return lines.slice(i + 1, end).join('\n');
    }
  }
  throw new Error(`no \`\`\`ts block under "${README_EXAMPLE_HEADING}" in README.md`);
}

test('the README example type-checks and runs against C xenstored', async (t) => {
  const root = projectRoot();
  const source = exampleFromReadme(readFileSync(join(root, 'README.md'), 'utf8'));
  t.regex(source, /from 'xen-sshm\/xenstore'/);

  // Type-check it like a user's file would be (strict), against the package's own types.
  // Written under dist/ (outside tsconfig's include) so a concurrent `tsc -p .` never sees it.
  const file = join(root, 'dist', 'test', 'xenstore', '.readme-example.generated.ts');
  writeFileSync(file, source);
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    types: ['node'],
    skipLibCheck: true,
  });
  const diags = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === file);
  rmSync(file, { force: true });
  t.deepEqual(
    diags.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')),
    [],
    'the example compiles in strict mode',
  );

  // Run it from inside the package so that 'xen-sshm/xenstore' resolves to this build.
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  const runFile = join(root, 'dist', 'test', 'xenstore', '.readme-example.generated.js');
  writeFileSync(runFile, js);
  const daemon = await startDaemon('cxenstored');
  try {
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const child = spawn(process.execPath, ['--unhandled-rejections=strict', runFile], { env: daemon.env, cwd: root });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
    });
    t.is(r.err, '');
    t.is(r.code, 0);
    t.is(r.out, ['hello', 'count is now 1', 'changed: /example', 'changed: /example/done', 'ENOENT', ''].join('\n'));
  } finally {
    await daemon.stop();
    rmSync(runFile, { force: true });
  }
});
