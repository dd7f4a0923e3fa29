import vitest from '@vitest/eslint-plugin';
import tseslint from 'typescript-eslint';

const awsSdk = { group: ['@aws-sdk/*', '@aws-lambda-powertools/*', '@middy/*'], message: 'core/ is pure domain: no AWS SDK or Lambda tooling.' };
const cdk = { group: ['aws-cdk-lib', 'aws-cdk-lib/*', 'constructs', 'cdk-nag'], message: 'core/ is pure domain: no CDK.' };
const outer = {
  group: ['#functions/*', '#connectors/*', '#infra/*', '#local/*', '**/functions/**', '**/connectors/**', '**/infra/**', '**/local/**'],
  message: 'core/ imports nothing from the layers around it.',
};

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', '.lethe/', 'coverage/', 'eslint.config.js'] },
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',
    },
  },
  { files: ['core/**/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [awsSdk, cdk, outer] }] } },
  {
    files: ['infra/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@aws-sdk/*', '#functions/*', '#local/*', '#connectors/index', '#connectors/*/connector'],
              message: 'infra/ imports no runtime code: only handler entry paths, and the data map schemas to validate at synth.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts'],
    plugins: { vitest },
    rules: {
      ...vitest.configs.recommended.rules,
      'vitest/no-focused-tests': 'error',
      'vitest/no-disabled-tests': 'error',
      'vitest/expect-expect': [
        'error',
        { assertFunctionNames: ['expect', 'expect*', 'assert*', '*.hasResourceProperties', '*.resourceCountIs'] },
      ],
      'vitest/valid-expect': ['error', { maxArgs: 2 }],
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
