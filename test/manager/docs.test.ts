/**
 * docs/manager.md's library examples are programs: each one is type-checked against the
 * sources (`xen-sshm` mapped to lib/index.ts), run against a fresh sandbox, and its output must
 * be the text block that follows it in the page.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { Sandbox } from '../../lib/sandbox';
import { projectRoot } from '../harness/daemons';

const ROOT = projectRoot();
const page = readFileSync(join(ROOT, 'docs', 'manager.md'), 'utf8');

/** The fenced blocks of the page, in order. */
const blocks = [...page.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2], at: m.index! }));

/** Each ```ts block holding a program, with the ```text block right after it and the heading above. */
const examples = blocks.flatMap((b, i) => {
  const next = blocks[i + 1];
  if (b.lang !== 'ts' || !b.body.includes('async function main') || next?.lang !== 'text') return [];
  const title = [...page.slice(0, b.at).matchAll(/^### (.+)$/gm)].pop()?.[1] ?? '';
  return [{ code: b.body, output: next.body, title }];
});

test('docs/manager.md has its three library examples', (t) => {
  t.is(examples.length, 3);
});

test('the examples type-check against the library', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-docs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = examples.map((ex, i) => {
    const f = join(dir, `example${i}.ts`);
    writeFileSync(f, ex.code);
    return f;
  });
  const program = ts.createProgram(files, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    types: ['node'],
    typeRoots: [join(ROOT, 'node_modules', '@types')],
    esModuleInterop: true,
    skipLibCheck: true,
    baseUrl: ROOT,
    paths: { 'xen-sshm': ['lib/index.ts'], 'xen-sshm/xenstore': ['xenstore-wire/index.ts'] },
  });
  const problems = ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file && files.includes(d.file.fileName))
    .map((d) => `${d.file!.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  t.deepEqual(problems, []);
});

for (const [i, ex] of examples.entries()) {
  test(`example ${i + 1} (${ex.title}) prints what the page says`, async (t) => {
    const sandbox = mkdtempSync(join(tmpdir(), 'xen-sshm-docsb-'));
    t.teardown(() => new Sandbox(sandbox).remove());
    // As a user of the package: 'xen-sshm' is dist/lib/index.js.
    const js = ts
      .transpileModule(ex.code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } })
      .outputText.replace(/require\("xen-sshm"\)/g, `require(${JSON.stringify(join(ROOT, 'dist', 'lib', 'index.js'))})`)
      .replace(/require\("xen-sshm\/xenstore"\)/g, `require(${JSON.stringify(join(ROOT, 'dist', 'xenstore-wire', 'index.js'))})`);
    const file = join(sandbox, 'example.js');
    writeFileSync(file, js);
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((done) => {
      const child = spawn(process.execPath, [file], { env: { ...process.env, XEN_SSHM_SANDBOX: join(sandbox, 'sb') }, stdio: ['ignore', 'pipe', 'pipe'] });
      // A hung example must not outlive the test (and restart its sandbox forever).
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', () => clearTimeout(timer));
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      child.on('close', (code) => done({ code, stdout, stderr }));
    });
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, ex.output);
    await new Sandbox(join(sandbox, 'sb')).remove();
    rmSync(sandbox, { recursive: true, force: true });
  });
}
