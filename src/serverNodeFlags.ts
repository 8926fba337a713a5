/**
 * The V8 settings the server runs with: package.json's `start` script passes them (a test checks it
 * does), and tests and benchmarks start their servers with them too. src/start.mjs says why.
 */
export const SERVER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=8', '--heap-growing-percent=50'];

/**
 * What `npm start` adds to the server's environment (src/start.mjs starts the server again with what is
 * missing, on Linux with glibc); tests and benchmarks start their servers with it too. All four are
 * glibc's allocator settings, read once when a process starts; src/start.mjs says why each.
 */
export const SERVER_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(64 * 1024 * 1024),
  MALLOC_TOP_PAD_: String(64 * 1024 * 1024),
};
