/**
 * The main-thread side of image compression: a Piscina pool of worker threads running
 * `workers/compressImage.ts`. Bytes cross the thread boundary without being copied: the input's
 * ArrayBuffer is transferred to the worker (or its SharedArrayBuffer shared), and the output's
 * ArrayBuffer is transferred back.
 */
import { fileURLToPath } from 'node:url';
import { types } from 'node:util';
import { Piscina } from 'piscina';
import type { CompressTask, WorkerResult } from '../../workers/compressImage.ts';

export type OutputFormat = 'JPEG' | 'WEBP' | 'AVIF' | 'PNG';
export interface CompressionOptions {
  quality: number;
  format: OutputFormat;
  maxWidth?: number | null;
  maxHeight?: number | null;
}
export type CompressFailureCode = 'UNSUPPORTED_FORMAT' | 'TOO_MANY_PIXELS' | 'DECODE_ERROR';
export type CompressFailure = { ok: false; code: CompressFailureCode; message: string };
export type CompressResult =
  | { ok: true; data: Buffer; width: number; height: number; format: 'jpeg' | 'webp' | 'avif' | 'png'; inputFormat: string }
  | CompressFailure;
export type CompressToFileResult =
  | { ok: true; bytes: number; width: number; height: number; format: 'jpeg' | 'webp' | 'avif' | 'png'; inputFormat: string }
  | CompressFailure;

/** The worker compressed the image but could not write it: the disk's fault, not the image's. */
export class OutputWriteError extends Error {
  override name = 'OutputWriteError';
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface CompressionPool {
  /**
   * Compress one image. The input's ArrayBuffer may be transferred (detached): callers must not
   * reuse `input` afterwards. A view of a SharedArrayBuffer is shared, not copied: leave those bytes
   * alone until the promise settles. Image problems resolve to `{ ok: false }`; the promise rejects only
   * for invalid options or a closed pool. When the queue is full it waits for room.
   */
  compress(input: Buffer, options: CompressionOptions): Promise<CompressResult>;
  /**
   * The same, but the worker thread writes the output to `outputPath` itself (beside it, then renamed
   * over it; its folder made when missing), so the bytes never come back. Rejects with OutputWriteError
   * when the write fails.
   */
  compressToFile(input: Buffer, options: CompressionOptions, outputPath: string): Promise<CompressToFileResult>;
  readonly threads: number;
  /** Tasks running plus queued. */
  readonly pending: number;
  /** 0..1, Piscina's utilization */
  readonly utilization: number;
  /** True when a trivial task round-trips (or any task did within the last 30 s: a ping waits behind queued work). */
  ready(): Promise<boolean>;
  /** Refuses new work, lets running and queued tasks finish, stops the threads. */
  close(): Promise<void>;
}

export interface CompressionPoolOptions {
  threads: number;
  maxPixels: number;
  /** JPEG outputs with Huffman tables made for each image (smaller, slower); default true. See workers/compressImage.ts. */
  jpegOptimizeCoding?: boolean;
  /** Tasks queued beyond the running ones before `compress` waits; default `threads * 4`. */
  maxQueue?: number;
}

const OUTPUT_FORMATS: readonly OutputFormat[] = ['JPEG', 'WEBP', 'AVIF', 'PNG'];

const EXTENSIONS = { jpeg: 'jpg', webp: 'webp', avif: 'avif', png: 'png' } as const;

/** The encoding an output in this format comes out in (the result's `format`). */
export function encodedFormat(format: OutputFormat): 'jpeg' | 'webp' | 'avif' | 'png' {
  return format.toLowerCase() as 'jpeg' | 'webp' | 'avif' | 'png';
}

/** File extension and content type for an output format. */
export function outputExtension(format: 'jpeg' | 'webp' | 'avif' | 'png'): string {
  return EXTENSIONS[format];
}

const CONTENT_TYPES = { jpeg: 'image/jpeg', webp: 'image/webp', avif: 'image/avif', png: 'image/png' } as const;

/** The content type for an output format. */
export function outputContentType(format: 'jpeg' | 'webp' | 'avif' | 'png'): string {
  return CONTENT_TYPES[format];
}

/** The worker entry: a bootstrap that loads the TypeScript task through tsx inside the thread. */
const WORKER_FILENAME = fileURLToPath(new URL('../../workers/compressImage.mjs', import.meta.url));

/** A task that round-tripped this recently proves the pool works without another ping. */
const RECENT_ROUND_TRIP_MS = 30_000;
const PING_TIMEOUT_MS = 5_000;

export function createCompressionPool(opts: CompressionPoolOptions): CompressionPool {
  return createCompressionPoolWithWorker(WORKER_FILENAME, opts);
}

/**
 * @internal The same pool around another worker file (one exporting `default` and `ping` like
 * `workers/compressImage.mjs`). For tests, e.g. a wrapper that makes a thread die.
 */
export function createCompressionPoolWithWorker(filename: string, opts: CompressionPoolOptions): CompressionPool {
  const { threads, maxPixels } = opts;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  if (!Number.isInteger(maxPixels) || maxPixels < 1) throw new RangeError(`maxPixels must be a positive integer, got ${maxPixels}`);
  const maxQueue = opts.maxQueue ?? threads * 4;
  if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new RangeError(`maxQueue must be a non-negative integer, got ${maxQueue}`);
  return new PiscinaCompressionPool(filename, threads, maxPixels, maxQueue, opts.jpegOptimizeCoding ?? true);
}

function validateOptions(options: CompressionOptions): void {
  const { quality, format, maxWidth, maxHeight } = options;
  if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
    throw new RangeError(`quality must be an integer from 1 to 100, got ${quality}`);
  }
  if (!OUTPUT_FORMATS.includes(format)) throw new RangeError(`format must be one of ${OUTPUT_FORMATS.join(', ')}, got ${String(format)}`);
  for (const [name, value] of [['maxWidth', maxWidth], ['maxHeight', maxHeight]] as const) {
    if (value != null && (!Number.isInteger(value) || value < 1)) {
      throw new RangeError(`${name} must be a positive integer or null, got ${value}`);
    }
  }
}

/**
 * The input as it crosses to the worker, and what to transfer. A view of a SharedArrayBuffer is
 * shared as it is (see inputBuffers.ts). A view over an ArrayBuffer of exactly its size is
 * transferred (detached here). Anything else (a slice of Node's Buffer pool or of a larger buffer) is
 * copied once: transferring a slice would detach, or be refused for, its neighbours.
 */
function crossingBytes(input: Uint8Array): { bytes: Uint8Array; transferList: ArrayBuffer[] } {
  const buffer = input.buffer;
  if (types.isSharedArrayBuffer(buffer)) return { bytes: input, transferList: [] };
  if (types.isArrayBuffer(buffer) && input.byteOffset === 0 && input.byteLength === buffer.byteLength) {
    return { bytes: new Uint8Array(buffer), transferList: [buffer] };
  }
  const copy = new Uint8Array(new ArrayBuffer(input.byteLength));
  copy.set(input);
  return { bytes: copy, transferList: [copy.buffer] };
}

/**
 * sharp runs each pipeline on libuv's thread pool, which is one per process, shared by every worker
 * thread and by the main thread's async fs, dns.lookup and zlib. With UV_THREADPOOL_SIZE at its
 * default 4, four compression threads fill it: measured here, a main-thread fs.readFile waited 6 s
 * behind AVIF work (2 threads: 1 ms). UV_THREADPOOL_SIZE must be set before the process starts.
 */
function warnIfLibuvPoolTooSmall(threads: number): void {
  const size = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  if (threads + 2 > size) {
    process.emitWarning(
      `${threads} compression threads leave ${Math.max(0, size - threads)} of libuv's ${size} threads for fs and DNS; ` +
        `start the process with UV_THREADPOOL_SIZE=${threads + 4} or more`,
      { code: 'SQUEEZE_UV_THREADPOOL' },
    );
  }
}

class PoolClosedError extends Error {
  override name = 'PoolClosedError';
  constructor() {
    super('The compression pool is closed');
  }
}

class PiscinaCompressionPool implements CompressionPool {
  readonly threads: number;
  readonly #piscina: Piscina;
  readonly #maxPixels: number;
  readonly #jpegOptimizeCoding: boolean;
  /** Tasks handed to Piscina and not settled: at most `threads + maxQueue`. */
  readonly #limit: number;
  #submitted = 0;
  /** Callers waiting for room, in arrival order. */
  readonly #waiting: { resume: () => void; abandon: (error: Error) => void }[] = [];
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Set when worker threads cannot start: then nothing would ever run again. */
  #broken: Error | undefined;
  #lastRoundTrip = 0;

  constructor(filename: string, threads: number, maxPixels: number, maxQueue: number, jpegOptimizeCoding: boolean) {
    warnIfLibuvPoolTooSmall(threads);
    this.threads = threads;
    this.#maxPixels = maxPixels;
    this.#jpegOptimizeCoding = jpegOptimizeCoding;
    this.#limit = threads + maxQueue;
    this.#piscina = new Piscina({
      filename,
      // Warm, fixed-size pool: threads start now and never idle out.
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60 * 60_000,
      // One image per thread at a time (each thread's sharp runs one libvips thread).
      concurrentTasksPerWorker: 1,
      // The waiting is done here (compress never rejects for a full queue), so Piscina's own queue
      // never holds more than `maxQueue` tasks plus readiness pings.
      maxQueue: Infinity,
    });
    // An error no task can be blamed for. Without a listener, EventEmitter would throw it and take
    // the process down. Piscina replaces a dead worker by itself, unless workers die while starting.
    this.#piscina.on('error', (error: unknown) => this.#checkWorkers(error));
  }

  get pending(): number {
    return this.#submitted + this.#waiting.length;
  }

  get utilization(): number {
    return this.#piscina.utilization;
  }

  async compress(input: Buffer, options: CompressionOptions): Promise<CompressResult> {
    const result = await this.#run(input, options, undefined);
    if (!result.ok) return result as CompressFailure;
    if (!('data' in result)) throw new Error('the worker wrote a file it was not asked for');
    const { data } = result;
    // A Buffer view of the transferred ArrayBuffer: no copy.
    return { ...result, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
  }

  async compressToFile(input: Buffer, options: CompressionOptions, outputPath: string): Promise<CompressToFileResult> {
    const result = await this.#run(input, options, outputPath);
    if (!result.ok) {
      if ('writeFailed' in result) throw new OutputWriteError(result.writeFailed, result.errorCode);
      return result;
    }
    if (!('written' in result)) throw new Error('the worker sent the output back instead of writing it');
    const { written, ...rest } = result;
    return { ...rest, bytes: written };
  }

  async #run(input: Buffer, options: CompressionOptions, outputPath: string | undefined): Promise<WorkerResult> {
    if (!(input instanceof Uint8Array)) throw new TypeError('input must be a Buffer');
    validateOptions(options);
    if (this.#closed) throw new PoolClosedError();
    if (this.#broken) throw this.#broken;

    if (this.#submitted >= this.#limit) {
      // Wait for a finishing task to hand its slot over (see #release).
      await new Promise<void>((resume, abandon) => this.#waiting.push({ resume, abandon }));
    } else {
      this.#submitted++;
    }

    try {
      const { bytes, transferList } = crossingBytes(input);
      const task: CompressTask = {
        input: bytes,
        options: { quality: options.quality, format: options.format, maxWidth: options.maxWidth ?? null, maxHeight: options.maxHeight ?? null },
        maxPixels: this.#maxPixels,
        jpegOptimizeCoding: this.#jpegOptimizeCoding,
        ...(outputPath !== undefined ? { outputPath } : {}),
      };
      try {
        const result = (await this.#piscina.run(task, { transferList })) as WorkerResult;
        this.#lastRoundTrip = Date.now();
        return result;
      } catch (error) {
        // The thread died under the task (Piscina starts a new one), workers cannot start at all,
        // or the pool is shutting down.
        this.#checkWorkers(error);
        if (this.#broken) throw this.#broken;
        if (this.#closed) throw new PoolClosedError();
        const message = error instanceof Error ? error.message : String(error);
        return { ok: false, code: 'DECODE_ERROR', message: `The image could not be processed: the worker failed (${message})` };
      }
    } finally {
      this.#release();
    }
  }

  /**
   * Piscina replaces a thread that dies under a task before it fails that task, but gives up for
   * good when threads die while starting (the worker file cannot load): then queued tasks would
   * wait forever. Fail everything instead, with the cause, so callers see an infrastructure error
   * (not a bad image) and readiness turns false.
   */
  #checkWorkers(error: unknown): void {
    if (this.#closed || this.#broken || this.#piscina.threads.length >= this.threads) return;
    const message = error instanceof Error ? error.message : String(error);
    this.#broken = new Error(`The compression worker threads cannot start: ${message}`, { cause: error });
    for (const waiter of this.#waiting.splice(0)) waiter.abandon(this.#broken);
    // Fails the tasks Piscina still holds.
    this.#piscina.destroy().catch(() => {});
  }

  /** A settled task hands its slot to the next waiting caller, or frees it. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next) next.resume();
    else this.#submitted--;
  }

  async ready(): Promise<boolean> {
    if (this.#closed || this.#broken) return false;
    if (Date.now() - this.#lastRoundTrip < RECENT_ROUND_TRIP_MS) return true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const ping = this.#piscina.run(null, { name: 'ping' }) as Promise<unknown>;
      const timeout = new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
        timer.unref();
      });
      // A late ping is left to finish on its own (aborting it could kill a thread).
      ping.catch(() => {});
      const answer = await Promise.race([ping, timeout]);
      if (answer !== true) return false;
      this.#lastRoundTrip = Date.now();
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      for (const waiter of this.#waiting.splice(0)) waiter.abandon(new PoolClosedError());
      this.#closing = this.#piscina.close();
    }
    return this.#closing;
  }
}
