import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { CompressionPool, CompressToFileResult } from '../compress/compressionPool.ts';
import { encodedFormat, outputExtension } from '../compress/compressionPool.ts';
import { createInputBuffers } from '../compress/inputBuffers.ts';
import type { Database } from '../db/client.ts';
import { claimImages, extendLeases, releaseExpiredLeases, releaseImages, type ClaimedImage } from '../db/images.ts';
import type { AddressGuard } from '../net/addressGuard.ts';
import { createDownloadThread } from '../net/downloadThread.ts';
import { FetchFailure } from '../net/safeFetch.ts';
import { finishImage, type FinishResult, type ImageOutcome } from '../requests/lifecycle.ts';
import type { Storage } from '../storage/localStorage.ts';
import type { ImageErrorCode } from '../statuses.ts';
import type { Metrics } from '../metrics.ts';

export interface RunnerDeps {
  database: Database;
  storage: Storage;
  pool: CompressionPool;
  guard: AddressGuard;
  config: Config;
  logger: Logger;
  /** Names this instance in `images.locked_by`. */
  workerId: string;
  metrics?: Metrics;
  /** Random source for backoff jitter; tests may fix it. */
  random?: () => number;
}

export interface Runner {
  start(): void;
  /** New work may be there (an upload committed, a request started): claim now instead of at the next poll. */
  wake(): void;
  /** Stops claiming, lets in-flight images finish for `graceMs`, then gives the rest back to the queue. */
  stop(graceMs: number): Promise<void>;
  readonly inFlight: number;
}

const IDLE_POLL_MS = 1_000;
/**
 * How long the download buffers outlive the last image. Dropped at once, the next request made them
 * again (new shared memory of MAX_IMAGE_BYTES each, which V8 counts as external memory of the main
 * thread's heap, and fresh pages the kernel zeroes): in the bench, 8 made during the timed request
 * after its warm-up request; 4 with them kept.
 */
const KEEP_IDLE_BUFFERS_MS = 30_000;
const SWEEP_INTERVAL_MS = 5_000;

/** Exponential backoff with full jitter: 1 s, 2 s, 4 s … capped at 5 min, each times a random factor in [0.5, 1). */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(1_000 * 2 ** Math.max(0, attempts - 1), 300_000);
  return Math.round(base * (0.5 + random() / 2));
}

/**
 * The worker loop of one instance: claims due images in batches, downloads them on the main thread,
 * compresses them in the pool, stores the output and records the outcome.
 *
 * At most `maxInFlight` images are held at once (downloads plus the pool's queue), so memory stays flat
 * whatever the request's size; with four per thread, downloads run ahead of compression and the threads
 * do not wait on the network.
 */
export function createRunner(deps: RunnerDeps): Runner {
  const { database, storage, pool, guard, config, logger, workerId } = deps;
  const random = deps.random ?? Math.random;
  const maxInFlight = pool.threads * 4;
  // Claim when at least a thread's worth of room is free: fewer, larger claims.
  const claimBatch = Math.max(1, pool.threads);
  const inFlight = new Map<string, AbortController>();
  // One downloaded image per in-flight image at most, so as many buffers, reused from image to image.
  // Each is MAX_IMAGE_BYTES long, as a download's size is known only once it runs; pages an image
  // never reached are never touched, so they take address space, not memory.
  const inputBuffers = createInputBuffers(maxInFlight);
  // Downloads run on a thread of their own, checked by this thread's guard.
  const downloads = createDownloadThread(guard);
  let running = false;
  let stopping = false;
  let wakeUp: (() => void) | undefined;
  // A wake that came while the loop was busy (claiming) is kept, so the next sleep returns at once.
  let woken = false;
  let loopDone: Promise<void> | undefined;
  /** When the last in-flight image settled, while none is. */
  let idleSince: number | undefined;
  const timers: NodeJS.Timeout[] = [];
  const settled = new Set<Promise<void>>();

  const wake = () => {
    const resolve = wakeUp;
    wakeUp = undefined;
    if (resolve) resolve();
    else woken = true;
  };
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken) {
        woken = false;
        resolve();
        return;
      }
      const timer = setTimeout(() => {
        wakeUp = undefined;
        resolve();
      }, ms);
      wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function loop() {
    while (!stopping) {
      const room = maxInFlight - inFlight.size;
      if (room < claimBatch) {
        await sleep(IDLE_POLL_MS);
        continue;
      }
      let claimed: ClaimedImage[];
      try {
        claimed = await claimImages(database, workerId, room, config.leaseMs);
      } catch (error) {
        logger.warn({ err: error }, 'claiming images failed; trying again');
        await sleep(IDLE_POLL_MS);
        continue;
      }
      for (const image of claimed) track(image);
      // Nothing to do: the download buffers are not needed until work comes again, if it does not soon.
      if (inFlight.size === 0) idleSince ??= Date.now();
      else idleSince = undefined;
      if (idleSince !== undefined && Date.now() - idleSince >= KEEP_IDLE_BUFFERS_MS) inputBuffers.clear();
      if (claimed.length < room) await sleep(IDLE_POLL_MS);
    }
  }

  function track(image: ClaimedImage) {
    const controller = new AbortController();
    inFlight.set(image.id, controller);
    const work = processImage(image, controller.signal)
      .catch((error) => logger.error({ err: error, imageId: image.id }, 'image processing failed unexpectedly'))
      .finally(() => {
        inFlight.delete(image.id);
        settled.delete(work);
        wake();
      });
    settled.add(work);
  }

  async function processImage(image: ClaimedImage, signal: AbortSignal) {
    // More attempts than allowed means earlier ones never came back (their instance died or hung while
    // holding the lease): perhaps this very image kills it. Stop handing it out.
    const outcome: ImageOutcome =
      image.attempts > config.maxAttempts
        ? {
            kind: 'failed',
            code: 'DECODE_ERROR',
            message: `Gave up after ${image.attempts - 1} attempts that never finished (the instance working on it stopped each time)`,
          }
        : await compressOne(image, signal);
    if (signal.aborted) return;
    // The database may be briefly away; keep the outcome and try again until the lease would run out.
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await finishImage({ database, storage }, workerId, image.id, outcome);
        if (result.recorded) observe(outcome, result);
        return;
      } catch (error) {
        if (attempt >= 5 || signal.aborted) throw error;
        logger.warn({ err: error, imageId: image.id }, 'recording an image failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
      }
    }
  }

  function observe(outcome: ImageOutcome, { status, ended }: FinishResult) {
    const { metrics } = deps;
    if (status === 'PENDING') metrics?.imageRetries.inc({ code: outcome.kind === 'done' ? '' : outcome.code });
    else metrics?.imagesFinished.inc({ status: status ?? 'DONE', code: status === 'FAILED' && outcome.kind !== 'done' ? outcome.code : '' });
    if (!ended) return;
    const seconds = ((ended.completedAt ?? new Date()).getTime() - (ended.startedAt ?? ended.createdAt).getTime()) / 1000;
    metrics?.requestSeconds.observe({ status: ended.status }, seconds);
    logger.info(
      { requestId: ended.id, status: ended.status, total: ended.total, done: ended.done, failed: ended.failed, cancelled: ended.cancelled, seconds },
      `request ${ended.status.toLowerCase()}`,
    );
  }

  async function compressOne(image: ClaimedImage, signal: AbortSignal): Promise<ImageOutcome> {
    // The download lands in a buffer of the pool's, which the worker reads in place; it goes back
    // to the pool once the compression has settled.
    const into = inputBuffers.take(config.maxImageBytes);
    try {
      return await downloadAndCompress(image, signal, into);
    } finally {
      inputBuffers.give(into);
    }
  }

  async function downloadAndCompress(image: ClaimedImage, signal: AbortSignal, into: Buffer): Promise<ImageOutcome> {
    let body: Buffer;
    const downloadTimer = deps.metrics?.downloadSeconds.startTimer();
    try {
      ({ body } = await downloads.fetch(
        image.inputUrl,
        {
          maxBytes: config.maxImageBytes,
          connectTimeoutMs: config.connectTimeoutMs,
          totalTimeoutMs: config.downloadTimeoutMs,
          maxRedirects: config.maxRedirects,
          signal,
        },
        into,
      ));
    } catch (error) {
      if (error instanceof FetchFailure) {
        if (error.transient && image.attempts < config.maxAttempts) {
          const delayMs = error.retryAfterMs ?? retryDelayMs(image.attempts, random);
          return { kind: 'retry', code: error.code, message: error.message, delayMs: Math.min(delayMs, 600_000) };
        }
        return { kind: 'failed', code: error.code, message: error.message };
      }
      if (signal.aborted) throw error;
      logger.error({ err: error, imageId: image.id }, 'download failed unexpectedly');
      return retryOrFail(image, 'NETWORK_ERROR', 'The download failed unexpectedly');
    }

    downloadTimer?.();
    const inputBytes = body.byteLength;
    const options = {
      quality: image.options.quality,
      format: image.options.format as 'JPEG' | 'WEBP' | 'AVIF' | 'PNG',
      maxWidth: image.options.maxWidth ?? null,
      maxHeight: image.options.maxHeight ?? null,
    };
    // The key depends only on the image: a retried or re-run image overwrites its earlier output.
    const outputKey = `requests/${image.requestId}/${image.id}.${outputExtension(encodedFormat(options.format))}`;
    const compressTimer = deps.metrics?.compressSeconds.startTimer();
    // A folder of this machine is written by the compression thread itself (see compressImage.ts);
    // other storages get the bytes here.
    const localPath = storage.localPath?.(outputKey);
    let result: CompressToFileResult;
    if (localPath !== undefined) {
      result = await pool.compressToFile(body, options, localPath);
    } else {
      const compressed = await pool.compress(body, options);
      if (compressed.ok) await storage.write(outputKey, compressed.data);
      result = compressed.ok ? { ...compressed, bytes: compressed.data.byteLength } : compressed;
    }
    compressTimer?.();
    if (!result.ok) return { kind: 'failed', code: result.code, message: result.message, inputBytes };
    return {
      kind: 'done',
      outputKey,
      inputBytes,
      outputBytes: result.bytes,
      width: result.width,
      height: result.height,
      format: result.format,
    };
  }

  function retryOrFail(image: ClaimedImage, code: ImageErrorCode, message: string): ImageOutcome {
    if (image.attempts < config.maxAttempts) return { kind: 'retry', code, message, delayMs: retryDelayMs(image.attempts, random) };
    return { kind: 'failed', code, message };
  }

  return {
    start() {
      if (running) return;
      running = true;
      loopDone = loop();
      timers.push(
        setInterval(() => {
          extendLeases(database.db, workerId, [...inFlight.keys()], config.leaseMs).catch((error) =>
            logger.warn({ err: error }, 'extending leases failed'),
          );
        }, Math.max(500, config.leaseMs / 3)),
        setInterval(() => {
          releaseExpiredLeases(database)
            .then((released) => {
              if (released > 0) {
                logger.info({ released }, 'returned images with expired leases to the queue');
                wake();
              }
            })
            .catch((error) => logger.warn({ err: error }, 'sweeping expired leases failed'));
        }, SWEEP_INTERVAL_MS),
      );
    },
    wake,
    async stop(graceMs) {
      if (!running) return;
      stopping = true;
      wake();
      timers.forEach(clearInterval);
      await loopDone;
      const grace = new Promise((resolve) => setTimeout(resolve, graceMs).unref());
      await Promise.race([Promise.allSettled([...settled]), grace]);
      const left = [...inFlight.keys()];
      if (left.length > 0) {
        for (const controller of inFlight.values()) controller.abort();
        await releaseImages(database.db, workerId, left).catch((error) =>
          logger.warn({ err: error }, 'releasing unfinished images failed; their leases will expire'),
        );
        logger.info({ released: left.length }, 'gave unfinished images back to the queue');
      }
      await downloads.close();
      inputBuffers.clear();
      running = false;
    },
    get inFlight() {
      return inFlight.size;
    },
  };
}
