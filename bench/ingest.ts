/**
 * `npm run bench:ingest`: only the ingest part of `npm run bench`, repeated, with medians: a CSV of
 * BENCH_INGEST_ROWS (default 100 000) rows × 3 URLs uploaded with autoStart false to a fresh Squeeze
 * process, from upload to the request id answered. Prints, per run, the seconds, the server's RSS
 * when idle (before the upload) and its peak during it.
 *
 * Settings (environment): BENCH_INGEST_ROWS; BENCH_INGEST_RUNS (default 3); BENCH_INGEST_DB
 * (postgres, pglite or both; default postgres); BENCH_NODE_ARGS, extra options for the server's node
 * (e.g. `--max-semi-space-size=4`, to compare V8 settings); BENCH_POSTGRES_URL as for `npm run bench`.
 */
import { performance } from 'node:perf_hooks';
import {
  createScratchDatabase,
  intEnv,
  postgresBackendCpu,
  procStatus,
  processCpu,
  round,
  sampleRss,
  scrapeMetrics,
  sleep,
  startSqueeze,
  uploadCsv,
} from './support.ts';

const rows = intEnv('BENCH_INGEST_ROWS', 100_000);
const runs = intEnv('BENCH_INGEST_RUNS', 3);
const which = process.env.BENCH_INGEST_DB?.trim() || 'postgres';
const kinds = (which === 'both' ? ['postgres', 'pglite'] : [which]) as ('postgres' | 'pglite')[];
for (const kind of kinds) if (kind !== 'postgres' && kind !== 'pglite') throw new Error(`BENCH_INGEST_DB must be postgres, pglite or both, got "${which}"`);
const nodeArgs = process.env.BENCH_NODE_ARGS?.trim().split(/\s+/).filter(Boolean) ?? [];
const adminUrl = process.env.BENCH_POSTGRES_URL?.trim() || 'postgres://postgres@127.0.0.1:5432/postgres';

/** The same CSV as bench/run.ts's ingest. */
function csvText(count: number): string {
  const parts: string[] = ['S. No.,Product Name,Input Image Urls\n'];
  for (let i = 1; i <= count; i++) {
    const urls = ['front', 'back', 'side'].map((side) => `http://127.0.0.1:9/products/${i}/${side}.jpg`);
    parts.push(`${i},Product ${i} in Blue,"${urls.join(',')}"\n`);
  }
  return parts.join('');
}

interface Run {
  seconds: number;
  idleRssMb: number;
  peakRssMb: number;
  mainCpu: number;
  postgresCpu: number | null;
  lagMaxMs: number | null;
}

async function once(kind: 'postgres' | 'pglite', csv: string): Promise<Run> {
  const database = kind === 'postgres' ? await createScratchDatabase(adminUrl) : undefined;
  const server = await startSqueeze({ name: `ingest-${kind}`, databaseUrl: database?.url, nodeArgs });
  try {
    await sleep(500);
    const idle = procStatus(server.pid);
    await scrapeMetrics(server.base); // resets the event-loop histogram
    const rss = sampleRss(server.pid, 50);
    const cpuBefore = { main: processCpu(server.pid).main, postgres: database ? postgresBackendCpu(database.name) : null };
    const started = performance.now();
    const { total } = await uploadCsv(server.base, csv, { autoStart: false });
    const seconds = (performance.now() - started) / 1000;
    const { peakRssMb } = rss.stop();
    if (total !== rows * 3) throw new Error(`ingest stored ${total} images, expected ${rows * 3}`);
    const lag = (await scrapeMetrics(server.base))?.get('squeeze_process_nodejs_eventloop_lag_max_seconds');
    return {
      seconds: round(seconds),
      idleRssMb: round((idle?.rssKb ?? NaN) / 1024, 0),
      peakRssMb: round(peakRssMb, 0),
      mainCpu: round(processCpu(server.pid).main - cpuBefore.main),
      postgresCpu: database ? round(postgresBackendCpu(database.name) - cpuBefore.postgres!) : null,
      lagMaxMs: lag === undefined ? null : round(lag * 1000, 0),
    };
  } finally {
    const output = server.output().trim();
    await server.stop();
    await database?.drop();
    if (output) console.log(`  server said: ${output.slice(-2000)}`);
  }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

const csv = csvText(rows);
for (const kind of kinds) {
  const results: Run[] = [];
  for (let i = 0; i < runs; i++) {
    const run = await once(kind, csv);
    results.push(run);
    console.log(
      `ingest ${kind} #${i + 1}: ${rows} rows × 3 in ${run.seconds.toFixed(2)} s; RSS idle ${run.idleRssMb} → peak ${run.peakRssMb} MB; ` +
        `event-loop delay max ${run.lagMaxMs ?? '?'} ms; CPU s: main thread ${run.mainCpu}${run.postgresCpu !== null ? `, postgres ${run.postgresCpu}` : ''}`,
    );
  }
  console.log(
    `ingest ${kind} median of ${runs}: ${median(results.map((r) => r.seconds)).toFixed(2)} s; RSS idle ${median(results.map((r) => r.idleRssMb))} → peak ${median(results.map((r) => r.peakRssMb))} MB`,
  );
}
process.exit(0);
