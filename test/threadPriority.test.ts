/**
 * Compression yields the cores to interactive work: the threads libvips computes on run at a lower
 * priority (a higher nice value) than the main thread, which serves queries and progress events.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { createCompressionPool, type CompressionPool } from '../src/compress/compressionPool.ts';
import { deprioritiseImageThreads } from '../src/compress/threadPriority.ts';

function imageThreads(): { tid: number; nice: number }[] {
  return readdirSync('/proc/self/task')
    .filter((tid) => readFileSync(`/proc/self/task/${tid}/comm`, 'latin1').startsWith('libvips'))
    .map((tid) => ({ tid: Number(tid), nice: os.getPriority(Number(tid)) }));
}

let pool: CompressionPool | undefined;
afterAll(async () => pool?.close());

describe.runIf(process.platform === 'linux')('image thread priority', () => {
  it('lowers the priority of every libvips thread and leaves the main thread alone', async () => {
    pool = createCompressionPool({ threads: 1, maxPixels: 100_000_000 });
    const photo = await sharp({ create: { width: 800, height: 600, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
      .jpeg()
      .toBuffer();
    const result = await pool.compress(photo, { quality: 50, format: 'JPEG' });
    expect(result.ok).toBe(true);
    expect(imageThreads().length).toBeGreaterThan(0);
    const mainBefore = os.getPriority();

    deprioritiseImageThreads(7);

    expect(imageThreads().every((thread) => thread.nice >= 7)).toBe(true);
    expect(os.getPriority()).toBe(mainBefore);
    // Asked again, there is nothing left to change.
    expect(deprioritiseImageThreads(7)).toBe(0);
  });
});
