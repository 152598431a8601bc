/**
 * Fuzz: 10,000+ seeded mutations of the fixtures (byte edits and edits of the shared memory
 * entries' numbers, words and keys) go through the whole pipeline: reader, entry parser,
 * per-domain and cross-domain validation, formatting. Only typed ConfigErrors may come out.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError, isRuleId, NO_RECORDS, parseXlConfig, planConfigs, planToJSON, XlConfig } from '../../lib/config';
import { listConfigs, mutateSemantic, mutateText, Rng, runSeed } from './helpers';

interface Seed {
  file: string;
  text: string;
  /** Other configs of the same directory that xl reads, checked together with the mutated one. */
  peers: XlConfig[];
}

function tryParse(text: string, file: string): XlConfig | null {
  try {
    return parseXlConfig(text, { file });
  } catch {
    return null;
  }
}

function seeds(): Seed[] {
  const files = listConfigs();
  const texts = new Map(files.map((f) => [f, readFileSync(f, 'utf8')]));
  const parsed = new Map(files.map((f) => [f, tryParse(texts.get(f) as string, f)]));
  return files.map((file) => ({
    file,
    text: texts.get(file) as string,
    peers: files.filter((f) => f !== file && dirname(f) === dirname(file)).flatMap((f) => parsed.get(f) ?? []),
  }));
}

function checkError(err: unknown, files: string[]): string {
  if (!(err instanceof ConfigError)) return `not a ConfigError: ${(err as Error)?.stack ?? String(err)}`;
  if (err.kind !== 'config' || !isRuleId(err.rule) || !/^E[A-Z]+$/.test(err.code)) return `malformed error ${JSON.stringify(err)}`;
  if (!files.includes(err.file) || err.line < 1 || err.column < 1) return `bad location ${err.file}:${err.line}:${err.column}`;
  if (!err.format().includes(`[${err.rule}]`)) return 'format() lost the rule';
  return '';
}

test('10,000 mutated fixtures: typed errors only, never an exception escaping', (t) => {
  const seed = runSeed();
  t.log(`seed ${seed} (replay with XEN_SSHM_SEED=${seed})`);
  const r = new Rng(seed);
  const all = seeds();
  const problems: string[] = [];
  let parsed = 0;
  let planned = 0;
  let validPlans = 0;
  const rules = new Set<string>();
  const N = 10000;
  for (let i = 0; i < N && problems.length < 5; i++) {
    const s = r.pick(all);
    const text = r.chance(0.5) ? mutateText(r, s.text) : mutateSemantic(r, s.text);
    const files = [s.file, ...s.peers.map((p) => p.file)];
    let cfg: XlConfig;
    try {
      cfg = parseXlConfig(text, { file: s.file });
      parsed++;
    } catch (err) {
      const p = checkError(err, files);
      if (p) problems.push(`${p}\n text: ${JSON.stringify(text)}`);
      else rules.add((err as ConfigError).rule);
      continue;
    }
    try {
      // The broken/ directory has many peers: take a few so cross-domain rules stay readable.
      const peers = s.peers.length > 4 ? [r.pick(s.peers), r.pick(s.peers)] : s.peers;
      const res = planConfigs(r.chance(0.5) ? [cfg, ...peers] : [...peers, cfg], NO_RECORDS, { dom0less: r.chance(0.2) });
      planned++;
      for (const e of res.errors) {
        const p = checkError(e, files);
        if (p) problems.push(`${p}\n text: ${JSON.stringify(text)}`);
        rules.add(e.rule);
      }
      JSON.stringify(planToJSON(res.plan));
      if (res.errors.length === 0) {
        validPlans++;
        // A valid plan is consistent: every borrower's window lies in its owner's region.
        for (const region of res.plan.regions)
          for (const b of region.borrowers) if (b.offset + b.size > region.owner.size) problems.push(`window outside owner in a valid plan: ${JSON.stringify(text)}`);
      }
    } catch (err) {
      problems.push(`planning threw: ${(err as Error)?.stack ?? String(err)}\n text: ${JSON.stringify(text)}`);
    }
  }
  t.deepEqual(problems, []);
  t.log(`${N} cases: ${parsed} parsed, ${planned} planned (${validPlans} valid), ${rules.size} rules hit`);
  t.true(parsed > N / 4 && planned === parsed && validPlans > 100, `parsed ${parsed}, valid ${validPlans}`);
  t.true(rules.size >= 25, `rules hit: ${[...rules].sort().join(' ')}`);
});
