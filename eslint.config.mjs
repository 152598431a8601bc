// Lint and format rules: the style the code already follows, written down so that it stays.
// `npm run lint` (part of `npm test`). No rule here asks for a mass reformat: each one holds
// for the code as it is; where the code knowingly differs from a common preset, the rule says so.
import stylistic from '@stylistic/eslint-plugin';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'shim/**', 'fixtures/**', '**/*.js', '**/*.mjs'] },
  {
    files: ['lib/**/*.ts', 'xenstore-wire/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    extends: [tseslint.configs.recommended],
    plugins: { '@stylistic': stylistic },
    rules: {
      // Correctness, beyond the recommended set.
      eqeqeq: ['error', 'always'],
      'no-var': 'error',
      'prefer-const': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // Lazy loading of optional or heavy modules (cli-progress on a terminal only) is deliberate.
      '@typescript-eslint/no-require-imports': 'off',
      // Tests and the ABI layer read untyped bytes and JSON; `any` is kept rare by review, not banned.
      '@typescript-eslint/no-explicit-any': 'off',

      // Format: the code's own style.
      '@stylistic/indent': ['error', 2, { SwitchCase: 1, flatTernaryExpressions: true, offsetTernaryExpressions: true, ignoredNodes: ['ConditionalExpression *', 'TemplateLiteral *'] }],
      '@stylistic/quotes': ['error', 'single', { avoidEscape: true, allowTemplateLiterals: 'always' }],
      '@stylistic/semi': ['error', 'always'],
      '@stylistic/comma-dangle': ['error', 'always-multiline'],
      '@stylistic/arrow-parens': ['error', 'always'],
      '@stylistic/brace-style': ['error', '1tbs', { allowSingleLine: true }],
      '@stylistic/object-curly-spacing': ['error', 'always'],
      '@stylistic/array-bracket-spacing': ['error', 'never'],
      '@stylistic/comma-spacing': 'error',
      '@stylistic/key-spacing': 'error',
      '@stylistic/keyword-spacing': 'error',
      '@stylistic/space-infix-ops': 'error',
      '@stylistic/space-before-blocks': 'error',
      '@stylistic/space-before-function-paren': ['error', { anonymous: 'always', named: 'never', asyncArrow: 'always' }],
      // No quote-props rule: keys are quoted where needed, and version keys ('4.10' is not 4.1) always.
      '@stylistic/eol-last': 'error',
      '@stylistic/no-trailing-spaces': 'error',
      '@stylistic/no-multiple-empty-lines': ['error', { max: 2, maxEOF: 0, maxBOF: 0 }],
      '@stylistic/member-delimiter-style': 'error',
      '@stylistic/type-annotation-spacing': 'error',
      // Long lines are the house style (messages stay greppable on one line): no max-len.
    },
  },
);
