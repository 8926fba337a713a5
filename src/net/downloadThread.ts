/**
 * The runner's downloads, run by safeFetch on a thread of their own (workers/downloads.ts) instead of
 * the main thread. The address guard stays here: the thread asks for each hop's checked addresses (so
 * a guard built by the app or a test applies as it is), and connects only to those. The body goes
 * straight into shared memory the caller hands over, which the compression worker then reads in place:
 * the image's bytes never enter the main thread's heap.
 *
 * Why: every socket read is a new ArrayBuffer (up to 64 KB; 1–25 MB per image) on the heap of the
 * thread that downloads, counted as external memory, which hastens V8's full mark-compact of that heap. On the main
 * thread that meant 22–24 of them per 124 images (4 with the downloads here), marking the whole
 * server's heap on V8's helper threads. The download thread's heap is smaller, and nothing waits on
 * it. Measured end to end (npm run bench's photos, 186 images, Postgres, 2 compression threads, npm
 * start's V8 settings; CPU ms per image, medians of 5 alternating runs), downloads on the main thread
 * (with the same shared buffers and kept connections) → here: main thread 7.0 → 3.9, other threads
 * 19.5 → 21.1 (this thread and its collections included); images/s 17.8 → 18.4.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { AddressGuard } from './addressGuard.ts';
import { FetchFailure, type FetchFailureCode } from './safeFetch.ts';

/** The limits of one download, as safeFetch takes them. */
export interface DownloadOptions {
  maxBytes: number;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxRedirects: number;
  signal?: AbortSignal;
}

export interface Download {
  status: number;
  headers: Record<string, string>;
  finalUrl: string;
  /** A view of the memory the caller handed over, as long as the body. */
  body: Buffer;
}

export interface DownloadThread {
  /**
   * Downloads `url` into `into` (a view of a SharedArrayBuffer, at least `maxBytes` long). Rejects
   * with a FetchFailure as safeFetch does, with the signal's reason when the signal aborted it, or
   * with an Error when the thread failed. Settles only once the thread has stopped writing to `into`.
   */
  fetch(url: string, options: DownloadOptions, into: Buffer): Promise<Download>;
  /** Stops the thread; downloads still running fail. The next fetch starts a new one. */
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// The messages between the two sides (workers/downloads.ts is the other one).

export interface FetchRequest {
  type: 'fetch';
  id: number;
  url: string;
  maxBytes: number;
  connectTimeoutMs: number;
  totalTimeoutMs: number;
  maxRedirects: number;
  into: Uint8Array;
}

/** What the main thread sends. */
export type ToDownloadThread =
  | FetchRequest
  | { type: 'abort'; id: number }
  | { type: 'resolved'; id: number; addresses: { address: string; family: 4 | 6 }[] }
  | { type: 'resolved'; id: number; error: SerializedError };

/** What the download thread sends. */
export type FromDownloadThread =
  | { type: 'resolve'; id: number; url: string }
  | { type: 'done'; id: number; status: number; headers: Record<string, string>; finalUrl: string; length: number }
  | { type: 'failed'; id: number; failure: SerializedFailure }
  | { type: 'aborted'; id: number }
  | { type: 'error'; id: number; message: string };

export interface SerializedError {
  name: string;
  message: string;
  code?: string;
}

export interface SerializedFailure {
  code: FetchFailureCode;
  message: string;
  transient: boolean;
  status?: number;
  retryAfterMs?: number;
}

export function serializeFailure(failure: FetchFailure): SerializedFailure {
  return {
    code: failure.code,
    message: failure.message,
    transient: failure.transient,
    ...(failure.status !== undefined ? { status: failure.status } : {}),
    ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
  };
}

export function serializeError(error: unknown): SerializedError {
  const code = (error as { code?: unknown } | null)?.code;
  return {
    name: error instanceof Error ? error.name : 'Error',
    message: error instanceof Error ? error.message : String(error),
    ...(typeof code === 'string' ? { code } : {}),
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * The thread loads through the compression worker's bootstrap: under `npm start` that imports the
 * compression worker's compiled bundle (which carries workers/downloads.ts too), elsewhere tsx.
 */
function bootstrapPath(): string {
  return fileURLToPath(new URL('../../workers/compressImage.mjs', import.meta.url));
}

interface Pending {
  resolve: (download: Download) => void;
  reject: (error: unknown) => void;
  into: Buffer;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export function createDownloadThread(guard: AddressGuard): DownloadThread {
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<number, Pending>();

  function settle(id: number): Pending | undefined {
    const entry = pending.get(id);
    if (!entry) return undefined;
    pending.delete(id);
    entry.signal?.removeEventListener('abort', entry.onAbort);
    return entry;
  }

  function failAll(error: Error): void {
    for (const id of [...pending.keys()]) settle(id)!.reject(error);
  }

  function onMessage(thread: Worker, message: FromDownloadThread): void {
    switch (message.type) {
      case 'resolve':
        guard.resolve(new URL(message.url)).then(
          (addresses) => post(thread, { type: 'resolved', id: message.id, addresses }),
          (error: unknown) => post(thread, { type: 'resolved', id: message.id, error: serializeError(error) }),
        );
        return;
      case 'done': {
        const entry = settle(message.id);
        entry?.resolve({ status: message.status, headers: message.headers, finalUrl: message.finalUrl, body: entry.into.subarray(0, message.length) });
        return;
      }
      case 'failed': {
        const { code, message: text, ...rest } = message.failure;
        settle(message.id)?.reject(new FetchFailure(code, text, rest));
        return;
      }
      case 'aborted': {
        const entry = settle(message.id);
        entry?.reject(entry.signal?.reason ?? new Error('The download was aborted'));
        return;
      }
      case 'error':
        settle(message.id)?.reject(new Error(`The download failed in the download thread: ${message.message}`));
        return;
    }
  }

  function post(thread: Worker, message: ToDownloadThread): void {
    // A thread that has exited: its downloads already failed (see the 'exit' handler).
    if (thread === worker) thread.postMessage(message);
  }

  function start(): Worker {
    const thread = new Worker(bootstrapPath(), { workerData: { role: 'downloads' } });
    // The runner's timers keep the process alive while it works; a forgotten close must not.
    thread.unref();
    thread.on('message', (message: FromDownloadThread) => onMessage(thread, message));
    thread.on('error', (error) => {
      if (worker === thread) worker = undefined;
      failAll(new Error(`The download thread failed: ${error.message}`, { cause: error }));
    });
    thread.on('exit', (code) => {
      if (worker === thread) worker = undefined;
      failAll(new Error(`The download thread stopped (exit code ${code})`));
    });
    return thread;
  }

  return {
    fetch(url, options, into) {
      const { signal } = options;
      if (signal?.aborted) return Promise.reject(signal.reason);
      if (!(into.buffer instanceof SharedArrayBuffer) || into.length < options.maxBytes) {
        return Promise.reject(new RangeError('into must view a SharedArrayBuffer and hold maxBytes'));
      }
      worker ??= start();
      const thread = worker;
      const id = nextId++;
      return new Promise<Download>((resolve, reject) => {
        // The thread stops, then answers 'aborted': only then is `into` free again.
        const onAbort = () => post(thread, { type: 'abort', id });
        pending.set(id, { resolve, reject, into, signal, onAbort });
        signal?.addEventListener('abort', onAbort, { once: true });
        post(thread, {
          type: 'fetch',
          id,
          url,
          maxBytes: options.maxBytes,
          connectTimeoutMs: options.connectTimeoutMs,
          totalTimeoutMs: options.totalTimeoutMs,
          maxRedirects: options.maxRedirects,
          into,
        });
      });
    },
    async close() {
      const thread = worker;
      worker = undefined;
      if (!thread) return;
      await thread.terminate();
      failAll(new Error('The download thread was closed'));
    },
  };
}
