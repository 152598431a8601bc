/**
 * The public names of the package's entry points, read with the TypeScript compiler (values
 * and types, `export *` followed): what docs/api.md must document.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

/**
 * The package's entry points, from package.json "exports" (package.json itself aside): name ->
 * source file. A new entry point is then documented or the API test fails.
 */
export function entryPoints(root: string): Record<string, string> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { name: string; exports: Record<string, string> };
  const out: Record<string, string> = {};
  for (const [sub, file] of Object.entries(pkg.exports)) {
    if (!file.endsWith('.js')) continue;
    out[sub === '.' ? pkg.name : `${pkg.name}/${sub.replace(/^\.\//, '')}`] = file.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts');
  }
  return out;
}

export const ENTRY_POINTS = entryPoints(join(__dirname, '..', '..', '..'));

export type EntryPoint = string;

export interface ExportedName {
  name: string;
  kind: 'class' | 'function' | 'const' | 'type' | 'interface' | 'enum' | 'namespace';
  /** The declaration's doc comment, first sentence (may be empty). */
  summary: string;
}

function kindOf(sym: ts.Symbol): ExportedName['kind'] {
  const f = sym.flags;
  if (f & ts.SymbolFlags.Class) return 'class';
  if (f & ts.SymbolFlags.Function) return 'function';
  if (f & ts.SymbolFlags.Enum) return 'enum';
  if (f & (ts.SymbolFlags.ValueModule | ts.SymbolFlags.NamespaceModule)) return 'namespace';
  if (f & ts.SymbolFlags.Variable) return 'const';
  if (f & ts.SymbolFlags.Interface) return 'interface';
  return 'type';
}

/** Every exported name of each entry point, sorted. */
export function exportedNames(root: string): Record<EntryPoint, ExportedName[]> {
  const files = Object.values(ENTRY_POINTS).map((f) => join(root, f));
  const program = ts.createProgram(files, { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, types: ['node'], typeRoots: [join(root, 'node_modules', '@types')], skipLibCheck: true });
  const checker = program.getTypeChecker();
  const out = {} as Record<EntryPoint, ExportedName[]>;
  for (const [entry, file] of Object.entries(ENTRY_POINTS) as Array<[EntryPoint, string]>) {
    const sf = program.getSourceFile(join(root, file));
    if (!sf) throw new Error(`cannot read ${file}`);
    const mod = checker.getSymbolAtLocation(sf);
    const names = mod ? checker.getExportsOfModule(mod) : [];
    out[entry] = names
      .map((s) => {
        const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
        const doc = ts.displayPartsToString(target.getDocumentationComment(checker)).replace(/\s+/g, ' ').trim();
        return { name: s.name, kind: kindOf(target), summary: /^(.*?[.:])(\s|$)/.exec(doc)?.[1] ?? doc };
      })
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  return out;
}

/**
 * `node dist/test/helpers/exports.js`: the rows docs/api.md lacks and the rows it has in excess,
 * per entry point (for whoever changes an export list: fill in the descriptions).
 */
if (require.main === module) {
  const root = join(__dirname, '..', '..', '..');
  const page = readFileSync(join(root, 'docs', 'api.md'), 'utf8');
  const names = exportedNames(root);
  const sections = new Set<string>();
  for (const section of page.split(/^## /m).slice(1)) {
    const entry = /^`([^`]+)`/.exec(section)?.[1] as EntryPoint | undefined;
    if (entry) sections.add(entry);
    if (!entry || !names[entry]) continue;
    const rows = new Set([...section.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]));
    for (const n of names[entry]) if (!rows.has(n.name)) console.log(`${entry}: missing | \`${n.name}\` | ${n.kind} | ${n.summary} |`);
    for (const r of rows) if (!names[entry].some((n) => n.name === r)) console.log(`${entry}: not exported: ${r}`);
  }
  for (const entry of Object.keys(names)) if (!sections.has(entry)) console.log(`${entry}: no section; its names: ${names[entry].map((n) => n.name).join(', ')}`);
}
