/**
 * guest/xen-sshm-vocabulary.h, rendered from lib/vocabulary.ts: the C guest program cannot
 * import the TypeScript, so the header is generated and test/guest/vocabulary.test.ts keeps the
 * committed file equal to this rendering (one rule, one place).
 *
 *   node dist/test/guest/vocabulary-header.js --write    regenerates guest/xen-sshm-vocabulary.h
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DOMID_FIRST_RESERVED, MAX_ID_LENGTH, PAGE_SIZE, PROTS, ROLE_ALIASES, SHM_ID_RE } from '../../lib/vocabulary';

export const REPO = path.resolve(__dirname, '..', '..', '..');
export const VOCABULARY_HEADER = path.join(REPO, 'guest', 'xen-sshm-vocabulary.h');

/** Every byte a region ID may hold, in byte order (SHM_ID_RE is one character class, repeated). */
export function idChars(): string {
  let out = '';
  for (let c = 1; c < 256; c++) if (SHM_ID_RE.test(String.fromCharCode(c))) out += String.fromCharCode(c);
  return out;
}

function cString(s: string): string {
  if (!/^[\x20-\x7e]*$/.test(s) || /["\\?]/.test(s)) throw new Error(`not a plain C string: ${JSON.stringify(s)}`);
  return `"${s}"`;
}

export function renderVocabularyHeader(): string {
  const roles = [...new Set(Object.values(ROLE_ALIASES))];
  if (roles.join(',') !== 'owner,borrower') throw new Error(`unexpected roles ${roles.join(',')}`);
  return [
    '/*',
    ' * xen-sshm-vocabulary.h: Xen\'s shared vocabulary for the guest program, generated from',
    ' * lib/vocabulary.ts by test/guest/vocabulary-header.ts (`node dist/test/guest/vocabulary-header.js',
    ' * --write`). Do not edit: test/guest/vocabulary.test.ts fails when it differs.',
    ' */',
    '#ifndef XEN_SSHM_VOCABULARY_H',
    '#define XEN_SSHM_VOCABULARY_H',
    '',
    '/* Xen\'s page, on x86_64 and arm64 alike. */',
    `#define XEN_SSHM_PAGE_SIZE ${PAGE_SIZE}u`,
    '/* Real domains are 0 .. XEN_SSHM_DOMID_FIRST_RESERVED - 1. */',
    `#define XEN_SSHM_DOMID_FIRST_RESERVED 0x${DOMID_FIRST_RESERVED.toString(16)}u`,
    '/* A region ID: 1 to XEN_SSHM_MAX_ID_LENGTH bytes, each one of XEN_SSHM_ID_CHARS. */',
    `#define XEN_SSHM_MAX_ID_LENGTH ${MAX_ID_LENGTH}`,
    `#define XEN_SSHM_ID_CHARS ${cString(idChars())}`,
    '/* The mirror\'s `role` and `prot` values. */',
    `#define XEN_SSHM_ROLE_OWNER_TEXT ${cString(roles[0])}`,
    `#define XEN_SSHM_ROLE_BORROWER_TEXT ${cString(roles[1])}`,
    ...PROTS.map((p) => `#define XEN_SSHM_PROT_${p.toUpperCase()}_TEXT ${cString(p)}`),
    '',
    '#endif /* XEN_SSHM_VOCABULARY_H */',
    '',
  ].join('\n');
}

if (require.main === module) {
  if (process.argv[2] === '--write') {
    fs.writeFileSync(VOCABULARY_HEADER, renderVocabularyHeader());
    process.stdout.write(`${path.relative(REPO, VOCABULARY_HEADER)} written\n`);
  } else {
    process.stdout.write(renderVocabularyHeader());
  }
}
