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

  it('remembers the threads it has handled, and still finds image threads started later', async () => {
    pool ??= createCompressionPool({ threads: 1, maxPixels: 100_000_000 });
    const seen = new Map<string, 'done' | number>();
    deprioritiseImageThreads(9, seen);
    deprioritiseImageThreads(9, seen);
    // Every live thread is settled after two scans: image threads at once, the others once seen twice.
    const live = readdirSync('/proc/self/task');
    expect(live.every((tid) => seen.get(tid) === 'done')).toBe(true);
    expect(imageThreads().every((thread) => thread.nice >= 9)).toBe(true);

    // A thread libvips starts afterwards is new to the map, so the next scan reads its name.
    const big = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#336699' } }).png().toBuffer();
    await Promise.all([1, 2, 3].map(() => sharp(big).resize(1500).jpeg().toBuffer()));
    deprioritiseImageThreads(9, seen);
    expect(imageThreads().every((thread) => thread.nice >= 9)).toBe(true);
    // Ended threads are forgotten.
    const now = new Set(readdirSync('/proc/self/task'));
    expect([...seen.keys()].every((tid) => now.has(tid))).toBe(true);
  });
});
