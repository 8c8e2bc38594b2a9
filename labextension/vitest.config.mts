import { defineConfig } from 'vitest/config';

// Unit tests of the viewer's pure modules; they run in Node, no browser or DOM needed.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
