/**
 * The `squeeze` command line, run as a real child process (`node src/cli/squeeze.mjs …`, what the
 * package's bin runs) against a real Squeeze on loopback.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVER_ENV } from '../src/serverNodeFlags.ts';
import { photoJpeg, serveBytes, startImageServer, startSqueeze, type LoopbackServer, type Squeeze } from './support/harness.ts';
import { freePort } from './support/processes.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY = 'k_cli_5d21e8';
const NEEDS_KEY = 'the server needs an API key: pass --api-key or set SQUEEZE_API_KEY';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** This process's environment without `SQUEEZE_*` settings (and any other names given), plus `env`. */
function cliEnv(env: Record<string, string>, without: readonly string[] = []): Record<string, string> {
  const base = Object.entries(process.env).filter(([name, value]) => value !== undefined && !name.startsWith('SQUEEZE_') && !without.includes(name));
  return { ...(Object.fromEntries(base) as Record<string, string>), ...env };
}

/** Runs the CLI to its end; `env` is added to an environment without any SQUEEZE_* settings of the caller. */
function squeezeCli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, ['src/cli/squeeze.mjs', ...args], { cwd: ROOT, env: cliEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Fails with everything the CLI said, so a wrong exit code explains itself. */
function expectExit(run: Run, code: number) {
  expect({ code: run.code, stderr: run.stderr }).toMatchObject({ code });
}

describe('the squeeze CLI', () => {
  let images: LoopbackServer;
  let squeeze: Squeeze;
  let dir: string;
  let env: Record<string, string>;
  let goodCsv: string;
  let requestId: string;
  let outputCsvUrl: string;

  beforeAll(async () => {
    const photo = await photoJpeg(640, 480);
    images = await startImageServer({ '/a.jpg': serveBytes(photo, 'image/jpeg'), '/b.jpg': serveBytes(photo, 'image/jpeg'), '/c.jpg': serveBytes(photo, 'image/jpeg') });
    squeeze = await startSqueeze('cli', { allowHosts: [images.host] });
    env = { SQUEEZE_SERVER: squeeze.url };
    dir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-cli-'));
    goodCsv = path.join(dir, 'products.csv');
    await writeFile(goodCsv, `S. No.,Product Name,Input Image Urls\n1,Desk lamp,"${images.url}/a.jpg,${images.url}/b.jpg"\n2,Armchair,${images.url}/c.jpg\n`);
  });
  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('upload --wait prints the request id, follows it to COMPLETED, prints the output CSV URL and exits 0', async () => {
    const run = await squeezeCli(['upload', goodCsv, '--wait'], env);
    expectExit(run, 0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    requestId = lines[0]!;
    outputCsvUrl = lines[1]!;
    expect(requestId).toMatch(UUID);
    expect(outputCsvUrl).toMatch(new RegExp(`/files/.*${requestId}.*output\\.csv$`));
    // stderr is not a terminal here: a plain line per change, ending with the final state.
    expect(run.stderr).toContain('Uploaded 2 products with 3 images');
    expect(run.stderr.trim().split('\n').at(-1)).toBe('COMPLETED: 3 of 3 images ended (3 done, 0 failed, 0 cancelled, 0 pending)');

    const answer = await squeeze.graphql<any>(`query($id: ID!) { request(id: $id) { status outputCsvUrl } }`, { id: requestId });
    expect(answer.data!.request).toEqual({ status: 'COMPLETED', outputCsvUrl });
  });

  it('status gives the status, the counts and the output CSV URL, as text or JSON', async () => {
    const json = await squeezeCli(['status', requestId, '--json'], env);
    expectExit(json, 0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: requestId,
      status: 'COMPLETED',
      progress: { total: 3, done: 3, failed: 0, cancelled: 0, pending: 0 },
      outputCsvUrl,
    });

    const text = await squeezeCli(['status', requestId], env);
    expectExit(text, 0);
    expect(text.stdout).toMatch(/^Status\s+COMPLETED$/m);
    expect(text.stdout).toContain('3 of 3 images ended (3 done, 0 failed, 0 cancelled, 0 pending)');
    expect(text.stdout).toContain(outputCsvUrl);
  });

  it('download writes the output CSV to a file with -o, or to stdout', async () => {
    const file = path.join(dir, 'out.csv');
    const run = await squeezeCli(['download', requestId, '-o', file], env);
    expectExit(run, 0);
    expect(run.stdout).toBe('');
    const csv = await readFile(file, 'utf8');
    const rows: Record<string, string>[] = parse(csv, { columns: true });
    expect(rows.map((row) => [row['S. No.'], row['Product Name'], row['Input Image Urls']])).toEqual([
      ['1', 'Desk lamp', `${images.url}/a.jpg,${images.url}/b.jpg`],
      ['2', 'Armchair', `${images.url}/c.jpg`],
    ]);
    expect(rows.map((row) => row['Output Image Urls']!.split(',').length)).toEqual([2, 1]);
    for (const url of rows.flatMap((row) => row['Output Image Urls']!.split(','))) expect(url).toMatch(/^http:\/\/.+\/files\/.+\.jpg$/);

    const toStdout = await squeezeCli(['download', requestId], env);
    expectExit(toStdout, 0);
    expect(toStdout.stdout).toBe(csv);
  });

  it('passes the compression options and exits 1 naming the image when the request ends FAILED', async () => {
    const csv = path.join(dir, 'mixed.csv');
    await writeFile(csv, `S. No.,Product Name,Input Image Urls\n1,Lamp,${images.url}/a.jpg\n2,Ghost,${images.url}/missing.jpg\n`);
    const run = await squeezeCli(['upload', csv, '--wait', '--format', 'webp', '--quality', '70', '--max-width', '200'], env);
    expectExit(run, 1);
    const [id, url] = run.stdout.trim().split('\n');
    expect(url).toMatch(/output\.csv$/);
    expect(run.stderr).toContain(`image failed: ${images.url}/missing.jpg (HTTP_ERROR`);
    expect(run.stderr).toContain(`Request ${id} ended FAILED: 1 of 2 images failed`);

    const answer = await squeeze.graphql<any>(`query($id: ID!) { request(id: $id) { status products { edges { node { images { status format width } } } } } }`, { id });
    expect(answer.data!.request.status).toBe('FAILED');
    expect(answer.data!.request.products.edges[0].node.images).toEqual([{ status: 'DONE', format: 'webp', width: 200 }]);
  });

  it('download exits 4 while the request has no output CSV, and 3 for an unknown id', async () => {
    const upload = await squeezeCli(['upload', goodCsv, '--no-start'], env);
    expectExit(upload, 0);
    const id = upload.stdout.trim();
    expect(id).toMatch(UUID);
    const notReady = await squeezeCli(['download', id], env);
    expectExit(notReady, 4);
    expect(notReady.stderr).toContain(`request ${id} has no output CSV yet`);

    const unknown = '01a20f51-84b2-7000-ae6c-12e77ee957a8';
    const lookups = [['status', unknown], ['download', unknown], ['status', 'not-an-id', '--json']];
    const runs = await Promise.all(lookups.map((args) => squeezeCli(args, env)));
    runs.forEach((run, i) => {
      expectExit(run, 3);
      expect(run.stderr).toContain(`no request with id "${lookups[i]![1]}" on ${squeeze.url}`);
      expect(run.stdout).toBe('');
    });
  });

  it('refuses a bad CSV with every problem by line and column, and bad options, with exit 2', async () => {
    const bad = path.join(dir, 'bad.csv');
    await writeFile(bad, `S. No.,Product Name,Input Image Urls\n1,Lamp,${images.url}/a.jpg\n1,,ftp://nope/x.jpg\n`);
    const run = await squeezeCli(['upload', bad], env);
    expectExit(run, 2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toContain('line 3, column S. No.:');
    expect(run.stderr).toContain('line 3, column Product Name:');
    expect(run.stderr).toContain('line 3, column Input Image Urls:');

    const refusals: [string[], RegExp][] = [
      [['--quality', '101'], /--quality was refused: quality must be from 1 to 100, got 101/],
      [['--quality', 'high'], /--quality must be a whole number/],
      [['--format', 'gif'], /--format must be jpeg, webp, avif or png, got "gif"/],
      [['--webhook', 'not a url'], /--webhook was refused/],
    ];
    const runs = await Promise.all(refusals.map(([flags]) => squeezeCli(['upload', goodCsv, ...flags], env)));
    runs.forEach((refused, i) => {
      expectExit(refused, 2);
      expect(refused.stderr).toMatch(refusals[i]![1]);
    });

    const missing = await squeezeCli(['upload', path.join(dir, 'nowhere.csv')], env);
    expectExit(missing, 2);
    expect(missing.stderr).toContain('nowhere.csv: no such file');
  });

  it('shows help for every command with its flags, and exits 64 on usage errors', async () => {
    const expected: [string[], string[]][] = [
      [['--help'], ['upload', 'status', 'download', 'serve', '--server', '--api-key', 'SQUEEZE_SERVER', 'SQUEEZE_API_KEY', 'Exit codes', '64']],
      [['upload', '--help'], ['--webhook', '--quality', '--format', '--max-width', '--max-height', '--no-start', '--wait', '--server', '--api-key']],
      [['status', '--help'], ['--json', '--server', '--api-key']],
      [['download', '--help'], ['-o, --output', '--server', '--api-key']],
      [['serve', '--help'], ['PORT', 'DATABASE_URL', 'API_KEYS']],
      [['help', 'upload'], ['--max-width']],
    ];
    const runs = await Promise.all(expected.map(([args]) => squeezeCli(args)));
    runs.forEach((run, i) => {
      expectExit(run, 0);
      for (const text of expected[i]![1]) expect(run.stdout).toContain(text);
    });

    const usage: [string[], string][] = [
      [[], 'Usage: squeeze <command>'],
      [['compress'], 'unknown command "compress"'],
      [['status'], 'missing <id>'],
      [['upload', goodCsv, '--colour', 'red'], 'unknown option --colour'],
      [['upload', goodCsv, '--wait', '--no-start'], '--wait cannot be used with --no-start'],
      [['status', 'x', '--server', 'localhost:4000'], '--server must be an http(s) URL'],
    ];
    const failures = await Promise.all(usage.map(([args]) => squeezeCli(args, env)));
    failures.forEach((run, i) => {
      expectExit(run, 64);
      expect(run.stderr).toContain(usage[i]![1]);
    });
  });

  it('exits 5 when the server cannot be reached', async () => {
    // freePort's port is free when chosen, but a server of another test file (they run in parallel)
    // may take it before the CLI connects: once, one with API_KEYS answered instead. Then choose again.
    let port = await freePort();
    let run = await squeezeCli(['status', '01a20f51-84b2-7000-ae6c-12e77ee957a8'], { SQUEEZE_SERVER: `http://127.0.0.1:${port}` });
    for (let attempt = 0; attempt < 3 && !run.stderr.includes('ECONNREFUSED'); attempt++) {
      port = await freePort();
      run = await squeezeCli(['status', '01a20f51-84b2-7000-ae6c-12e77ee957a8'], { SQUEEZE_SERVER: `http://127.0.0.1:${port}` });
    }
    expectExit(run, 5);
    expect(run.stderr).toContain(`cannot reach the Squeeze server at http://127.0.0.1:${port} (ECONNREFUSED)`);
    // --server wins over the environment.
    const flag = await squeezeCli(['upload', goodCsv, '--server', `http://127.0.0.1:${port}`], env);
    expectExit(flag, 5);
  });
});

describe('squeeze serve', () => {
  // /proc tells which process it started and how: Linux only.
  it.skipIf(process.platform !== 'linux')('runs the server as npm start does, and stops it gracefully on SIGTERM', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-cli-serve-'));
    const port = await freePort();
    const cli = spawn(process.execPath, ['src/cli/squeeze.mjs', 'serve'], {
      cwd: ROOT,
      // Without the allocator settings of its own: serve must set them.
      env: cliEnv({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn' }, Object.keys(SERVER_ENV)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    cli.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    cli.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    const exited = new Promise<number | null>((resolve) => cli.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then((response) => response.ok, () => false);
        if (ready) break;
        if (cli.exitCode !== null || Date.now() > deadline) throw new Error(`squeeze serve did not become ready:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // The server is a process of its own, started with npm start's V8 settings and allocator setting.
      const [serverPid] = readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
      const argv = readFileSync(`/proc/${serverPid}/cmdline`, 'utf8').split('\0');
      expect(argv).toEqual(expect.arrayContaining(['--max-semi-space-size=8', '--heap-growing-percent=50']));
      expect(argv.some((arg) => arg.endsWith(path.join('src', 'start.mjs')))).toBe(true);
      const environ = readFileSync(`/proc/${serverPid}/environ`, 'utf8').split('\0');
      for (const [name, value] of Object.entries(SERVER_ENV)) expect(environ).toContain(`${name}=${value}`);

      cli.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(existsSync(`/proc/${serverPid}`)).toBe(false);
      expect(output).not.toMatch(/error/i);
    } finally {
      cli.kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe('the squeeze CLI against a server with API_KEYS', () => {
  let images: LoopbackServer;
  let squeeze: Squeeze;
  let dir: string;
  let csv: string;

  beforeAll(async () => {
    images = await startImageServer({ '/a.jpg': serveBytes(await photoJpeg(320, 240), 'image/jpeg') });
    squeeze = await startSqueeze('cli-keys', { env: { API_KEYS: KEY }, allowHosts: [images.host] });
    dir = await mkdtemp(path.join(os.tmpdir(), 'squeeze-cli-keys-'));
    csv = path.join(dir, 'products.csv');
    await writeFile(csv, `S. No.,Product Name,Input Image Urls\n1,Lamp,${images.url}/a.jpg\n`);
  });
  afterAll(async () => {
    await squeeze?.close();
    await images?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('exits 5 with a message naming the fix when no key or a wrong key is given', async () => {
    const [noKey, wrongKey] = await Promise.all([
      squeezeCli(['upload', csv, '--wait'], { SQUEEZE_SERVER: squeeze.url }),
      squeezeCli(['status', '01a20f51-84b2-7000-ae6c-12e77ee957a8', '--api-key', 'wrong'], { SQUEEZE_SERVER: squeeze.url }),
    ]);
    expectExit(noKey, 5);
    expect(noKey.stderr).toContain(NEEDS_KEY);
    expect(noKey.stdout).toBe('');
    expectExit(wrongKey, 5);
    expect(wrongKey.stderr).toContain('the server refused the API key');
  });

  it('works with --api-key (HTTP, WebSocket and file download) and with SQUEEZE_API_KEY', async () => {
    const run = await squeezeCli(['upload', csv, '--wait', '--api-key', KEY, '--server', squeeze.url]);
    expectExit(run, 0);
    const [id, url] = run.stdout.trim().split('\n');
    expect(id).toMatch(UUID);
    expect(url).toMatch(/output\.csv$/);

    const status = await squeezeCli(['status', id!, '--json'], { SQUEEZE_SERVER: squeeze.url, SQUEEZE_API_KEY: KEY });
    expectExit(status, 0);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'COMPLETED', progress: { total: 1, done: 1 } });

    const file = path.join(dir, 'out.csv');
    const download = await squeezeCli(['--api-key', KEY, 'download', id!, '-o', file], { SQUEEZE_SERVER: squeeze.url });
    expectExit(download, 0);
    expect(await readFile(file, 'utf8')).toMatch(/^S\. No\.,Product Name,Input Image Urls,Output Image Urls\r?\n1,Lamp,/);
  });
});
