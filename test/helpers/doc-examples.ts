/**
 * Programs in the docs: each ```ts block holding `async function main` followed by a ```text
 * block is an example. typeCheckExamples() checks them against the sources (every entry point
 * of package.json mapped to its source), runExample() runs one as a user of the package would
 * (the names mapped to dist/) and returns what it printed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ts from 'typescript';
import { ENTRY_POINTS } from './exports';

export interface DocExample {
  code: string;
  output: string;
  title: string;
}

/** The examples of a markdown page, with the ### heading above each. */
export function docExamples(page: string): DocExample[] {
  const blocks = [...page.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], body: m[2], at: m.index! }));
  return blocks.flatMap((b, i) => {
    const next = blocks[i + 1];
    if (b.lang !== 'ts' || !b.body.includes('async function main') || next?.lang !== 'text') return [];
    const title = [...page.slice(0, b.at).matchAll(/^### (.+)$/gm)].pop()?.[1] ?? '';
    return [{ code: b.body, output: next.body, title }];
  });
}

const SOURCES: Record<string, string> = ENTRY_POINTS;
const BUILT: Record<string, string> = Object.fromEntries(Object.entries(ENTRY_POINTS).map(([k, v]) => [k, `dist/${v.replace(/\.ts$/, '.js')}`]));

/** Type errors of the examples against the sources ([] when they all check). */
export function typeCheckExamples(root: string, examples: DocExample[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'xen-sshm-docs-'));
  try {
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
      typeRoots: [join(root, 'node_modules', '@types')],
      esModuleInterop: true,
      skipLibCheck: true,
      baseUrl: root,
      paths: Object.fromEntries(Object.entries(SOURCES).map(([k, v]) => [k, [v]])),
    });
    return ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.includes(d.file.fileName))
      .map((d) => `${d.file!.fileName}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs an example in its own process (cwd `dir`, extra `env`); a hung one is killed after 30 s. */
export function runExample(root: string, code: string, dir: string, env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let js = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;
  for (const [name, file] of Object.entries(BUILT)) js = js.split(`require("${name}")`).join(`require(${JSON.stringify(join(root, file))})`);
  const file = join(dir, 'example.js');
  writeFileSync(file, js);
  return new Promise((done) => {
    const child = spawn(process.execPath, [file], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    // A hung example must not outlive the test.
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (c) => {
      clearTimeout(timer);
      done({ code: c, stdout, stderr });
    });
  });
}
