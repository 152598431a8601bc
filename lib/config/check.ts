/**
 * Everything `xen-sshm check` does except printing: read every file (a file that cannot be
 * read or parsed gives its error and the others are still checked), then plan them together.
 */
import { ConfigError, ConfigWarning } from './errors';
import { NO_RECORDS, Plan, planConfigs } from './plan';
import type { ValidateOptions } from './validate';
import { readXlConfig, XlConfig } from './xl-reader';

export interface CheckResult {
  ok: boolean;
  plan: Plan;
  errors: ConfigError[];
  warnings: ConfigWarning[];
}

export async function checkConfigFiles(paths: string[], opts: ValidateOptions = {}): Promise<CheckResult> {
  const configs: XlConfig[] = [];
  const readErrors: ConfigError[] = [];
  for (const path of paths) {
    try {
      configs.push(await readXlConfig(path));
    } catch (err) {
      if (err instanceof ConfigError) readErrors.push(err);
      else throw err;
    }
  }
  const r = planConfigs(configs, NO_RECORDS, opts);
  const order = new Map(paths.map((p, i) => [p, i]));
  const errors = [...readErrors, ...r.errors].sort((a, b) => (order.get(a.file) ?? 0) - (order.get(b.file) ?? 0) || a.line - b.line || a.column - b.column);
  return { ok: errors.length === 0, plan: r.plan, errors, warnings: r.warnings };
}
