import { defineConfig } from 'vitest/config';

// Unit tests of the pure modules (viewer and JupyterLab extension); they run in Node, no browser or DOM.
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
