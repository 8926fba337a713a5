import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql-upload-minimal require()s graphql's CommonJS build; send every import there too, so one
    // copy of graphql is loaded (two copies fail with "Cannot use GraphQLScalarType from another realm").
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file gets its own database; two files at a time keep a 2-core machine responsive.
    maxWorkers: 2,
  },
});
