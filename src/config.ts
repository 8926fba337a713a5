import os from 'node:os';
import path from 'node:path';

/** Every setting Squeeze reads, validated once at start. Names follow the contract's settings table. */
export interface Config {
  port: number;
  host: string;
  /** Postgres URL; undefined means the embedded PGlite database in `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  publicUrl: string;
  /** The raw `whsec_…` secret, validated; undefined sends unsigned webhooks. */
  webhookSecret: string | undefined;
  allowPrivateNetworks: boolean;
  workerThreads: number;
  /** Nice value (0–19) for the threads libvips compresses on: batch work yields the cores to requests and events. 0 leaves them alone. */
  imageThreadNice: number;
  /** JPEG outputs with Huffman tables made for each image: about 3 % smaller, at about 1.7 times the CPU (workers/compressImage.ts). */
  jpegOptimizeCoding: boolean;
  role: 'api' | 'worker' | 'all';
  apiKeys: string[];
  maxCsvBytes: number;
  maxCsvRows: number;
  maxUrlsPerRow: number;
  maxImageBytes: number;
  maxImagePixels: number;
  connectTimeoutMs: number;
  downloadTimeoutMs: number;
  maxRedirects: number;
  maxAttempts: number;
  leaseMs: number;
  shutdownGraceMs: number;
  webhookTimeoutMs: number;
  /** Seconds to wait before each webhook attempt: the first entry is the first attempt. */
  webhookRetryDelays: number[];
  /** Longest time a client may take to send a whole request (an upload); a slower one is cut with 408. */
  uploadTimeoutMs: number;
  /** Least time between two progress events to one subscriber; the final state is always sent at once. */
  progressCoalesceMs: number;
  logLevel: string;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/**
 * Node's longest timer: a setTimeout or setInterval given more fires after 1 ms instead (with only a
 * warning), so a DOWNLOAD_TIMEOUT_MS of 3 000 000 000 would have failed every download at once.
 */
const MAX_TIMER_MS = 2_147_483_647;
const TIMER_LIMIT = "Node's longest timer, about 24.8 days";

/**
 * Each image in flight is held whole, in a buffer as long as MAX_IMAGE_BYTES (see src/runner/runner.ts),
 * four per compression thread. Node's buffers end at 4 GiB: past that every download failed as an
 * unexpected error, tried again until its attempts ran out. 1 GiB is far above any product photo;
 * the buffers' pages are only filled as far as each image reaches, so a high limit costs address space.
 */
const MAX_IMAGE_BYTES_LIMIT = 1024 * 1024 * 1024;

function int(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER, why?: string): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}${why ? ` (${why})` : ''}, got "${raw}"`);
  }
  return value;
}

/** A duration in milliseconds that ends up in a timer. */
function timerMs(env: Env, name: string, fallback: number, min: number): number {
  return int(env, name, fallback, min, MAX_TIMER_MS, TIMER_LIMIT);
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

function httpUrl(name: string, raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an absolute http(s) URL, got "${raw}"`);
  }
  return url.href.replace(/\/+$/, '');
}

/** A Standard Webhooks secret is `whsec_` followed by base64 of 24 to 64 random bytes. */
export function parseWebhookSecret(raw: string): Buffer {
  const match = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(raw.trim());
  const key = match ? Buffer.from(match[1]!, 'base64') : undefined;
  if (!key || key.length < 24 || key.length > 64) {
    throw new ConfigError('WEBHOOK_SECRET must be "whsec_" followed by base64 of 24 to 64 bytes (a Standard Webhooks secret)');
  }
  return key;
}

export function loadConfig(env: Env = process.env): Config {
  const port = int(env, 'PORT', 4000, 0, 65535);
  const role = (env.ROLE?.trim() || 'all') as Config['role'];
  if (!['api', 'worker', 'all'].includes(role)) throw new ConfigError(`ROLE must be api, worker or all, got "${env.ROLE}"`);

  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }

  const webhookSecret = env.WEBHOOK_SECRET?.trim() || undefined;
  if (webhookSecret) parseWebhookSecret(webhookSecret);

  const delaysRaw = env.WEBHOOK_RETRY_DELAYS?.trim() || '0,5,300,1800,7200,18000,36000,50400,72000,86400';
  const webhookRetryDelays = delaysRaw.split(',').map((part) => {
    const value = Number(part.trim());
    if (part.trim() === '' || !Number.isInteger(value) || value < 0) {
      throw new ConfigError(`WEBHOOK_RETRY_DELAYS must be comma-separated whole seconds, got "${delaysRaw}"`);
    }
    return value;
  });

  return {
    port,
    host: env.HOST?.trim() || '127.0.0.1',
    databaseUrl,
    dataDir: path.resolve(env.DATA_DIR?.trim() || './data'),
    publicUrl: httpUrl('PUBLIC_URL', env.PUBLIC_URL?.trim() || `http://localhost:${port}`),
    webhookSecret,
    allowPrivateNetworks: bool(env, 'ALLOW_PRIVATE_NETWORKS', false),
    workerThreads: int(env, 'WORKER_THREADS', os.availableParallelism(), 1, 256),
    imageThreadNice: int(env, 'IMAGE_THREAD_NICE', 10, 0, 19),
    jpegOptimizeCoding: bool(env, 'JPEG_OPTIMIZE_CODING', true),
    role,
    apiKeys: (env.API_KEYS ?? '').split(',').map((key) => key.trim()).filter(Boolean),
    maxCsvBytes: int(env, 'MAX_CSV_BYTES', 50 * 1024 * 1024, 1),
    maxCsvRows: int(env, 'MAX_CSV_ROWS', 100_000, 1),
    maxUrlsPerRow: int(env, 'MAX_URLS_PER_ROW', 50, 1),
    maxImageBytes: int(env, 'MAX_IMAGE_BYTES', 25 * 1024 * 1024, 1, MAX_IMAGE_BYTES_LIMIT, '1 GiB: each image in flight is held whole in memory'),
    maxImagePixels: int(env, 'MAX_IMAGE_PIXELS', 100_000_000, 1),
    connectTimeoutMs: timerMs(env, 'CONNECT_TIMEOUT_MS', 5_000, 1),
    downloadTimeoutMs: timerMs(env, 'DOWNLOAD_TIMEOUT_MS', 30_000, 1),
    maxRedirects: int(env, 'MAX_REDIRECTS', 5, 0, 20),
    maxAttempts: int(env, 'MAX_ATTEMPTS', 4, 1, 100),
    leaseMs: timerMs(env, 'LEASE_MS', 60_000, 1_000),
    shutdownGraceMs: timerMs(env, 'SHUTDOWN_GRACE_MS', 10_000, 0),
    webhookTimeoutMs: timerMs(env, 'WEBHOOK_TIMEOUT_MS', 15_000, 1),
    webhookRetryDelays,
    uploadTimeoutMs: timerMs(env, 'UPLOAD_TIMEOUT_MS', 300_000, 1_000),
    progressCoalesceMs: int(env, 'PROGRESS_COALESCE_MS', 100, 0, 60_000),
    logLevel: env.LOG_LEVEL?.trim() || 'info',
  };
}
