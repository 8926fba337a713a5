/**
 * Reused, shared memory for downloaded images on their way to the compression threads.
 *
 * A download used to land in a fresh ArrayBuffer that was then transferred to a worker: every image
 * touched new pages (the kernel zeroes each one on first touch), and every such 1–25 MB buffer counted
 * as external memory of the main thread's heap, which hastens V8's full mark-compact of that heap (the
 * marking runs on V8's helper threads). A SharedArrayBuffer from this pool is shared with the worker
 * instead, and comes back for the next image with its pages still mapped.
 * Measured end to end (npm run bench's photos, 124–186 images, Postgres, 2 threads; CPU ms per image,
 * medians of alternating runs of one build): with V8's default heap settings, main thread 11.6 → 8.5 and
 * other threads (V8's helpers, libuv, the workers' JavaScript) 24.3 → 19.0 (3 runs each); with npm
 * start's settings (--max-semi-space-size=8 --heap-growing-percent=50) main 8.2 → 7.8 and other
 * 20.7 → 21.2, within the noise (5 runs each).
 */
export interface InputBuffers {
  /**
   * A Buffer of exactly `size` bytes over a SharedArrayBuffer of this pool. Its bytes are whatever
   * the last image left there: the caller fills all of them. Give it back when the compression of
   * those bytes has settled, not before: the worker thread reads the same memory.
   */
  take(size: number): Buffer;
  give(buffer: Buffer): void;
  /** Drops the idle buffers (the memory is freed once nothing refers to it any more). */
  clear(): void;
  /** Bytes held by the idle buffers. */
  readonly idleBytes: number;
}

/** Buffers are made in whole MiB, so images of similar sizes fit the same one. */
const GRANULE = 1 << 20;

/**
 * `capacity` bounds the buffers kept: the runner holds at most that many images at once, so with
 * every buffer in use no new one is made except to replace an idle one that is too small.
 */
export function createInputBuffers(capacity: number): InputBuffers {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  /** Idle buffers, smallest first. */
  const idle: SharedArrayBuffer[] = [];
  let idleBytes = 0;
  let inUse = 0;

  return {
    take(size) {
      if (!Number.isInteger(size) || size < 0) throw new RangeError(`size must be a non-negative integer, got ${size}`);
      const index = idle.findIndex((shared) => shared.byteLength >= size);
      let shared: SharedArrayBuffer;
      if (index >= 0) {
        shared = idle.splice(index, 1)[0]!;
        idleBytes -= shared.byteLength;
      } else {
        // None is large enough: at capacity, the largest idle one (still too small) makes way.
        if (idle.length > 0 && idle.length + inUse >= capacity) idleBytes -= idle.pop()!.byteLength;
        shared = new SharedArrayBuffer(Math.max(GRANULE, Math.ceil(size / GRANULE) * GRANULE));
      }
      inUse++;
      return Buffer.from(shared, 0, size);
    },
    give(buffer) {
      const shared = buffer.buffer;
      if (!(shared instanceof SharedArrayBuffer)) throw new TypeError('not a buffer of this pool');
      inUse = Math.max(0, inUse - 1);
      let at = idle.findIndex((other) => other.byteLength >= shared.byteLength);
      if (at < 0) at = idle.length;
      idle.splice(at, 0, shared);
      idleBytes += shared.byteLength;
      // More than `capacity` were in use at once: keep the largest.
      if (idle.length + inUse > capacity) idleBytes -= idle.shift()!.byteLength;
    },
    clear() {
      idle.length = 0;
      idleBytes = 0;
    },
    get idleBytes() {
      return idleBytes;
    },
  };
}
