import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: { testTimeout: 400_000, pool: 'forks', poolOptions: { forks: { singleFork: true } } },
});
