import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

/**
 * The dashboard's build. The output in `dist/` is committed, so it must be reproducible: the same
 * sources give the same bytes (content-hashed names, no timestamps, no absolute paths, no source maps).
 * CI rebuilds it and fails when `git diff --exit-code src/dashboard/dist` shows a difference.
 */
export default defineConfig({
  root,
  base: '/',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('./dist', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: false,
    manifest: false,
    license: false,
    reportCompressedSize: false,
    // One entry and one chunk: nothing to preload.
    modulePreload: { polyfill: false },
    // Every asset is a file of its own (the page's CSP allows no inline data but images).
    assetsInlineLimit: 0,
  },
});
