// `npm start`: runs the service from plain JavaScript, with no build step to remember.
//
// The server (src/main.ts) and the compression worker (workers/compressImage.ts) are bundled by
// esbuild (a runtime dependency) into node_modules/.cache/squeeze/ the first time, and again whenever
// a source file they are made of has changed; otherwise the cached JavaScript is imported as it is.
// Why: `node --import tsx` keeps tsx's loader thread and esbuild in the process for its whole life.
// Measured on Postgres, 2 compression threads, idle after start: tsx 215–224 MB RSS, this 137–143 MB.
//
// Each module keeps its own import.meta.url (the .ts file's), so paths next to the sources
// (drizzle/ migrations, package.json, the dashboard's dist/, the worker bootstrap) resolve as they do
// under tsx. Packages stay external: they load from node_modules as usual.
//
// When the cache cannot be written (a read-only install) or esbuild is missing, it falls back to
// running the TypeScript through tsx, with a warning.
//
// `npm start` also passes V8 two memory settings, process-wide (worker threads included):
//   --heap-growing-percent=50  lets the old generation grow to 1.5 × the live heap before a full GC,
//                              instead of up to 4 × on a small heap: an upload's short-lived batches
//                              are promoted and pile up as garbage meanwhile.
//   --max-semi-space-size=8    young generation of 2 × 8 MB instead of 2 × 16 MB.
// Ingest of 100 000 rows × 3 URLs on Postgres, server peak RSS (3 runs each): neither 216–237 MB, growing
// 50 % alone 183–190 MB, both 166–168 MB, with the same main-thread CPU (1.5–1.6 s). Smaller still cost
// CPU: semi-space 4 MB +10 %, --optimize-for-size +60 %.
//
// On Linux with glibc, the server runs with MALLOC_ARENA_MAX=2 (sharp's documentation recommends it):
// glibc's allocator otherwise gives threads arenas of their own, up to 8 per core, and libvips' pixel
// buffers, freed in one arena and wanted in another, come back as fresh pages the kernel must zero.
// Measured with `npm run bench`'s photos (186 images, Postgres, 2 threads, alternating runs): page faults
// 846–855 k → 546–587 k and 2–3 % less CPU per image; the server's peak RSS while compressing them
// 1 090 → 552–630 MB (PGlite: 1 763 → 1 174–1 186 MB).
//
// It also fixes glibc's two thresholds, which otherwise slide: MALLOC_MMAP_THRESHOLD_=32 MiB (blocks
// below it come from the arenas; by default it starts at 128 KiB and rises only as mapped blocks are
// freed, so a block larger than any freed before is a fresh mapping, faulted in page by page) and
// MALLOC_TRIM_THRESHOLD_=64 MiB (an arena keeps that much free memory at its top instead of handing it
// back to the kernel after one image and faulting it in again for the next; by default twice the mmap
// threshold). Measured with `npm run bench`'s photos (2 threads, Postgres; these values against none):
// page faults per image 2 600–3 900 → 1 440–2 630 in the server and 1 330–2 190 → 1 030–1 870 in the
// limit's pool (they vary with which arena each thread lands in); the limit alone 20.8 → 21.5
// images/s (six passes each, alternating); the server's peak RSS while compressing 542–570 → 578–617
// MB. The end-to-end ratio moved less than its run-to-run noise: the server's CPU per image above the
// limit's was 8.3–8.8 ms in two bench runs without them, 3.5–7.3 in three with. MALLOC_ARENA_MAX=4
// with them was worse on every count (limit 19.5 images/s, server 7.4 ms above it, RSS 700–777 MB).
//
// And MALLOC_TOP_PAD_=64 MiB: the free memory an arena keeps when it shrinks, and the extra it takes
// when it grows. glibc 2.36 (Debian 12) deletes a thread arena's 64 MiB heap as soon as it is empty
// and its neighbour has a page to spare (heap_trim checks the pad, not the trim threshold): traced
// during one request (186 images), 40 heaps were mapped, filled with fresh pages and unmapped again.
// With the pad no heap is given back, and the main arena's top keeps room for libvips' largest blocks.
// Measured with `npm run bench`'s photos (2 threads; two servers taking turns, 4–6 requests each, three
// such pairs: two on Postgres, one on PGlite), without → with, means per pair: page faults per image
// 1 770–2 560 → 480–920, CPU per image 86–90 → 83–86 ms, 3.8–7.5 % more images/s. `npm run bench`
// (its limit runs with the pad too; one run before, three after): limit 21.4 → 21.9–23.4 images/s,
// end-to-end ratio PGlite 0.898 → 0.918–0.931, Postgres 0.889 → 0.927–0.944. The cost is memory the
// arenas keep: the server's RSS after a request 500–560 → 690–700 MB on Postgres (peak 630–640 →
// 760–810), 0.97–1.17 → 0.97–1.38 GB on PGlite.
// The ingest of 100 000 rows × 3 URLs peaked at 180–185 MB with and without it.
//
// These variables are read when a process starts: `npm start` sets them (a user's own values win);
// started another way without them (`node src/start.mjs` in a container), this file starts the server
// again as a child with the missing ones set, forwards signals to it and exits as it does; the child
// stops if this process goes away.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** SERVER_ENV of src/serverNodeFlags.ts (this file cannot import TypeScript; a test checks they agree). */
const ALLOCATOR_ENV = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '33554432',
  MALLOC_TRIM_THRESHOLD_: '67108864',
  MALLOC_TOP_PAD_: '67108864',
};
const missingAllocatorEnv = Object.fromEntries(Object.entries(ALLOCATOR_ENV).filter(([name]) => process.env[name] === undefined));
if (process.platform === 'linux' && Object.keys(missingAllocatorEnv).length > 0 && usesGlibc()) await runWithAllocatorEnv(missingAllocatorEnv);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CACHE = path.join(ROOT, 'node_modules/.cache/squeeze');
const ENTRIES = { main: 'src/main.ts', compressImage: 'workers/compressImage.ts' };
const MANIFEST = path.join(CACHE, 'manifest.json');
const THIS_FILE = fileURLToPath(import.meta.url);

let compiled;
try {
  compiled = await compiledEntries();
} catch (error) {
  process.emitWarning(`running the TypeScript through tsx: the compiled cache is unavailable (${error instanceof Error ? error.message : String(error)})`, {
    code: 'SQUEEZE_NOT_COMPILED',
  });
}

if (compiled) {
  // Stack traces name the .ts files and lines.
  process.setSourceMapsEnabled(true);
  // Read by workers/compressImage.mjs in each worker thread (threads get a copy of process.env).
  process.env.SQUEEZE_COMPRESS_WORKER_JS = pathToFileURL(compiled.compressImage).href;
  await import(pathToFileURL(compiled.main).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(path.join(ROOT, ENTRIES.main)).href);
}

/** Paths of the compiled entries, rebuilt first when any input changed since they were built. */
async function compiledEntries() {
  const outputs = Object.fromEntries(Object.keys(ENTRIES).map((name) => [name, path.join(CACHE, `${name}.js`)]));
  const key = await buildKey();
  if (await isFresh(key, Object.values(outputs))) return outputs;
  await build(key, outputs);
  return outputs;
}

/** What else decides the output besides the sources: this file, Node's and esbuild's versions. */
async function buildKey() {
  const own = await stat(THIS_FILE);
  const esbuildPackage = JSON.parse(await readFile(path.join(ROOT, 'node_modules/esbuild/package.json'), 'utf8'));
  return `${process.version} esbuild ${esbuildPackage.version} start.mjs ${own.mtimeMs} ${own.size}`;
}

async function isFresh(key, outputs) {
  let manifest;
  try {
    manifest = JSON.parse(await readFile(MANIFEST, 'utf8'));
    await Promise.all(outputs.map((file) => stat(file)));
  } catch {
    return false;
  }
  if (manifest.key !== key) return false;
  const inputs = Object.entries(manifest.inputs);
  const current = await Promise.all(inputs.map(([file]) => signature(path.join(ROOT, file)).catch(() => null)));
  return inputs.every(([, recorded], i) => current[i] === recorded);
}

/** An input is unchanged while its size and modification time are. */
async function signature(file) {
  const info = await stat(file);
  return `${info.size} ${info.mtimeMs}`;
}

async function build(key, outputs) {
  const esbuild = await import('esbuild');
  await mkdir(CACHE, { recursive: true });
  // Written under names of its own and renamed into place, so processes starting together (tests) never read half a file.
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  const inputs = {};
  try {
    for (const [name, entry] of Object.entries(ENTRIES)) {
      const result = await esbuild.build({
        absWorkingDir: ROOT,
        entryPoints: [entry],
        outfile: outputs[name] + suffix,
        bundle: true,
        packages: 'external',
        format: 'esm',
        platform: 'node',
        target: 'node20',
        sourcemap: 'linked',
        // The map points at the .ts files rather than carrying a copy of them.
        sourcesContent: false,
        metafile: true,
        logLevel: 'warning',
        plugins: [keepImportMeta()],
      });
      for (const input of Object.keys(result.metafile.inputs)) inputs[input] = await signature(path.join(ROOT, input));
    }
    for (const output of Object.values(outputs)) {
      await fixMapLink(output, suffix);
      await rename(output + suffix + '.map', output + '.map');
      await rename(output + suffix, output);
    }
    const manifestTemp = MANIFEST + suffix;
    await writeFile(manifestTemp, JSON.stringify({ key, inputs }, null, 1));
    await rename(manifestTemp, MANIFEST);
  } finally {
    await esbuild.stop?.();
    for (const output of Object.values(outputs)) {
      await rm(output + suffix, { force: true });
      await rm(output + suffix + '.map', { force: true });
    }
  }
}

/** esbuild links the map by the temporary name; point the link at the final one. */
async function fixMapLink(output, suffix) {
  const text = await readFile(output + suffix, 'utf8');
  const tempLink = `//# sourceMappingURL=${path.basename(output + suffix)}.map`;
  await writeFile(output + suffix, text.replace(tempLink, `//# sourceMappingURL=${path.basename(output)}.map`));
}

/** Gives each bundled module its own file's import.meta (url, dirname, filename) instead of the bundle's. */
function keepImportMeta() {
  return {
    name: 'keep-import-meta',
    setup(build) {
      build.onLoad({ filter: /\.ts$/ }, async (args) => {
        const text = await readFile(args.path, 'utf8');
        const values = {
          url: JSON.stringify(pathToFileURL(args.path).href),
          dirname: JSON.stringify(path.dirname(args.path)),
          filename: JSON.stringify(args.path),
        };
        return { contents: text.replace(/\bimport\.meta\.(url|dirname|filename)\b/g, (_, field) => values[field]), loader: 'ts' };
      });
    },
  };
}

function usesGlibc() {
  try {
    return Boolean(process.report?.getReport().header.glibcVersionRuntime);
  } catch {
    return false;
  }
}

/** Runs this file again with `missing` added to the environment and lives as long as that child does (never returns). */
async function runWithAllocatorEnv(missing) {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    env: { ...process.env, ...missing },
    // The IPC channel closes when this process dies, however it dies: src/main.ts then stops the server.
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  await new Promise(() => {
    child.once('error', (error) => {
      console.error(`squeeze: could not start the server: ${error.message}`);
      process.exit(1);
    });
    child.once('exit', (code, signal) => {
      if (signal) {
        process.removeAllListeners(signal);
        process.kill(process.pid, signal);
      }
      process.exit(code ?? 1);
    });
  });
}
