// Lint for the TypeScript sources: ESLint's and typescript-eslint's recommended rules, type-checked
// against tsconfig.json (projectService). `npm run lint` runs it, then `prettier --check`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'var/', 'coverage/', 'node_modules/'] },
  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Validators match control characters on purpose: to refuse them in names, labels and PEM text.
      'no-control-regex': 'off',
      // An async function that does not await still turns a throw into a rejection, and implements a Promise-returning interface.
      '@typescript-eslint/require-await': 'off',
      // A leading underscore marks what is left out on purpose (a destructured field dropped, a parameter an interface passes).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // `declare global { namespace Express … }` is how Express's request type is extended.
      '@typescript-eslint/no-namespace': ['error', { allowDeclarations: true }],
    },
  },
  {
    // Lazy loading: these modules `require()` heavy dependencies (knex, the runtime, the web stack) only when a command needs them.
    files: [
      'server/cli.ts',
      'server/runtime.ts',
      'server/exit-codes.ts',
      'effects/lifecycle-effects.ts',
      'db/database.ts',
      'db/lifecycle-notifications.ts',
      'server/web/deployment-tls.ts',
      'test/bench/bare-start.ts',
    ],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
