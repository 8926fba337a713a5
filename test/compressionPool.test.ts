import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pngBomb } from './support/harness.ts';
import {
  createCompressionPool,
  createCompressionPoolWithWorker,
  OutputWriteError,
  outputContentType,
  outputExtension,
  type CompressionPool,
  type CompressResult,
} from '../src/compress/compressionPool.ts';

const MAX_PIXELS = 100_000_000;

/** A photo-like image: noise, blurred a little, over smooth gradients (compresses like a photo). */
async function photoLikeRaw(width: number, height: number): Promise<Buffer> {
  const noise = randomBytes(width * height * 3);
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      const base = [(x / width) * 200 + 30 * Math.sin(y / 90), (y / height) * 180 + 40 * Math.cos(x / 300), ((x + y) / (width + height)) * 220];
      for (let c = 0; c < 3; c++) raw[i + c] = Math.max(0, Math.min(255, base[c]! + (noise[i + c]! - 128) * 0.5));
    }
  }
  return sharp(raw, { raw: { width, height, channels: 3 } }).blur(1.2).raw().toBuffer();
}

/** A copy over an ArrayBuffer of its own, so a test can watch it being detached. */
function ownBuffer(bytes: Uint8Array): Buffer {
  const copy = Buffer.from(new ArrayBuffer(bytes.byteLength));
  copy.set(bytes);
  return copy;
}

function expectOk(result: CompressResult): Extract<CompressResult, { ok: true }> {
  if (!result.ok) throw new Error(`expected success, got ${result.code}: ${result.message}`);
  return result;
}



describe('compression pool', () => {
  let pool: CompressionPool;
  let photoJpeg: Buffer; // 1600×1200, EXIF orientation 6
  let plainJpeg: Buffer; // 1600×1200, no EXIF

  beforeAll(async () => {
    pool = createCompressionPool({ threads: 2, maxPixels: MAX_PIXELS, maxQueue: 2 });
    const raw = await photoLikeRaw(1600, 1200);
    photoJpeg = await sharp(raw, { raw: { width: 1600, height: 1200, channels: 3 } })
      .jpeg({ quality: 95 })
      .withExif({ IFD0: { Copyright: 'Squeeze test', Artist: 'Test' } })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    plainJpeg = await sharp(raw, { raw: { width: 1600, height: 1200, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
  });

  afterAll(async () => {
    await pool.close();
  });

  it('makes Huffman tables for each JPEG unless told not to: the same pixels, a few per cent fewer bytes', async () => {
    const standard = createCompressionPool({ threads: 1, maxPixels: MAX_PIXELS, jpegOptimizeCoding: false });
    try {
      const optimised = expectOk(await pool.compress(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG' }));
      const plain = expectOk(await standard.compress(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG' }));
      expect(optimised.data.length).toBeLessThan(plain.data.length);
      // Lossless: only the entropy coding differs.
      const pixels = (jpeg: Buffer) => sharp(jpeg).raw().toBuffer();
      expect((await pixels(optimised.data)).equals(await pixels(plain.data))).toBe(true);
    } finally {
      await standard.close();
    }
  });

  it('writes the output to a file itself when asked: the same bytes, its folder made, nothing half-written left', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'squeeze-pool-out-'));
    try {
      const target = path.join(root, 'requests', 'r1', 'i1.jpg');
      const written = await pool.compressToFile(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG' }, target);
      if (!written.ok) throw new Error(written.message);
      const inMemory = expectOk(await pool.compress(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG' }));
      const file = readFileSync(target);
      expect(written).toMatchObject({ bytes: file.length, width: 1600, height: 1200, format: 'jpeg', inputFormat: 'jpeg' });
      // More than one of the 64 KiB pieces the worker writes in (about 130 KB), each where it belongs.
      expect(file.length).toBeGreaterThan(100_000);
      expect(Buffer.compare(file, inMemory.data)).toBe(0);
      expect(readdirSync(path.dirname(target))).toEqual(['i1.jpg']);

      // A bad image is the image's failure, and writes nothing.
      const bad = await pool.compressToFile(Buffer.from('not an image at all'), { quality: 50, format: 'JPEG' }, path.join(root, 'bad.jpg'));
      expect(bad).toMatchObject({ ok: false, code: 'UNSUPPORTED_FORMAT' });
      // A write that cannot happen (a file where the folder should be) is the disk's: it rejects, naming the path.
      writeFileSync(path.join(root, 'blocked'), 'a file');
      const blocked = path.join(root, 'blocked', 'i2.jpg');
      const failure = await pool.compressToFile(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG' }, blocked).catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(OutputWriteError);
      expect((failure as OutputWriteError).message).toContain(blocked);
      expect(readdirSync(root).sort()).toEqual(['blocked', 'requests']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('is ready once a trivial task round-trips', async () => {
    expect(pool.threads).toBe(2);
    expect(await pool.ready()).toBe(true);
    expect(pool.utilization).toBeGreaterThanOrEqual(0);
    expect(pool.utilization).toBeLessThanOrEqual(1);
  });

  it('applies the EXIF orientation, strips metadata and shrinks a photo', async () => {
    const before = await sharp(photoJpeg).metadata();
    expect(before.orientation).toBe(6);
    expect(before.exif).toBeDefined();

    const inputBytes = photoJpeg.length;
    const result = expectOk(await pool.compress(ownBuffer(photoJpeg), { quality: 50, format: 'JPEG' }));
    expect(Buffer.isBuffer(result.data)).toBe(true);
    expect(result).toMatchObject({ format: 'jpeg', inputFormat: 'jpeg', width: 1200, height: 1600 });
    expect(result.data.length).toBeLessThan(inputBytes);

    const out = await sharp(result.data).metadata();
    expect(out).toMatchObject({ format: 'jpeg', width: 1200, height: 1600 });
    expect(out.exif).toBeUndefined();
    expect(out.orientation).toBeUndefined();
    expect(out.icc).toBeUndefined();
    const { info } = await sharp(result.data).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([1200, 1600]);
  });

  it('flattens transparency onto white for JPEG', async () => {
    // 40×30, transparent everywhere but an opaque red block in the left half.
    const png = await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .composite([{ input: { create: { width: 20, height: 30, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } }, left: 0, top: 0 }])
      .png()
      .toBuffer();
    const result = expectOk(await pool.compress(ownBuffer(png), { quality: 90, format: 'JPEG' }));
    expect(result).toMatchObject({ format: 'jpeg', inputFormat: 'png', width: 40, height: 30 });
    const { data, info } = await sharp(result.data).raw().toBuffer({ resolveWithObject: true });
    expect(info.channels).toBe(3);
    const pixel = (x: number, y: number) => Array.from(data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3));
    for (const value of pixel(35, 15)) expect(value).toBeGreaterThanOrEqual(250); // was transparent: white
    const [r, g, b] = pixel(5, 15); // opaque red stays red
    expect(r).toBeGreaterThanOrEqual(240);
    expect(g).toBeLessThanOrEqual(15);
    expect(b).toBeLessThanOrEqual(15);
  });

  it('keeps alpha for PNG and WebP output', async () => {
    const png = await sharp({ create: { width: 32, height: 32, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } }).png().toBuffer();
    for (const format of ['PNG', 'WEBP'] as const) {
      const result = expectOk(await pool.compress(ownBuffer(png), { quality: 80, format }));
      expect((await sharp(result.data).metadata()).hasAlpha).toBe(true);
    }
  });

  it('shrinks to maxWidth/maxHeight keeping the aspect ratio, never enlarging', async () => {
    const cases = [
      [{ maxWidth: 800 }, [800, 600]],
      [{ maxHeight: 300 }, [400, 300]],
      [{ maxWidth: 500, maxHeight: 500 }, [500, 375]],
      [{ maxWidth: 5000, maxHeight: null }, [1600, 1200]],
    ] as const;
    for (const [limits, [width, height]] of cases) {
      const result = expectOk(await pool.compress(ownBuffer(plainJpeg), { quality: 60, format: 'JPEG', ...limits }));
      expect([result.width, result.height]).toEqual([width, height]);
      const meta = await sharp(result.data).metadata();
      expect([meta.width, meta.height]).toEqual([width, height]);
    }
    const small = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#3366cc' } }).png().toBuffer();
    const result = expectOk(await pool.compress(ownBuffer(small), { quality: 60, format: 'JPEG', maxWidth: 1000, maxHeight: 1000 }));
    expect([result.width, result.height]).toEqual([200, 100]);
  });

  it('encodes WebP, AVIF and PNG that decode as that format', async () => {
    const expected = { WEBP: ['webp', 'webp'], AVIF: ['avif', 'heif'], PNG: ['png', 'png'] } as const;
    for (const format of ['WEBP', 'AVIF', 'PNG'] as const) {
      const result = expectOk(await pool.compress(ownBuffer(plainJpeg), { quality: 50, format, maxWidth: 400 }));
      const [reported, decoded] = expected[format];
      expect(result.format).toBe(reported);
      expect([result.width, result.height]).toEqual([400, 300]);
      const meta = await sharp(result.data).metadata();
      expect(meta.format).toBe(decoded);
      if (format === 'AVIF') expect(meta.compression).toBe('av1');
      expect(await sharp(result.data).raw().toBuffer()).toHaveLength(400 * 300 * 3);
    }
  });

  it('accepts GIF (first frame), TIFF, WebP and AVIF input', async () => {
    const frame = (background: string) => sharp({ create: { width: 60, height: 40, channels: 3, background } }).png().toBuffer();
    const gif = await sharp(await Promise.all(['#ff8800', '#0000ff', '#00ff00'].map(frame)), { join: { animated: true } })
      .gif({ loop: 0, delay: [100, 100, 100] })
      .toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(3);
    const inputs = {
      gif,
      tiff: await sharp(plainJpeg).resize(160).tiff().toBuffer(),
      webp: await sharp(plainJpeg).resize(160).webp().toBuffer(),
      avif: await sharp(plainJpeg).resize(160).avif({ effort: 0 }).toBuffer(),
    };
    for (const [inputFormat, bytes] of Object.entries(inputs)) {
      const result = expectOk(await pool.compress(ownBuffer(bytes), { quality: 50, format: 'WEBP' }));
      expect(result.inputFormat).toBe(inputFormat);
      const meta = await sharp(result.data).metadata();
      expect(meta.pages ?? 1).toBe(1);
    }
    const fromGif = expectOk(await pool.compress(ownBuffer(gif), { quality: 90, format: 'JPEG' }));
    expect([fromGif.width, fromGif.height]).toEqual([60, 40]);
    const { dominant } = await sharp(fromGif.data).stats(); // the first frame's orange
    expect(dominant.r).toBeGreaterThan(200);
    expect(dominant.b).toBeLessThan(60);
  });

  it('refuses what is not an accepted image format, naming what it looked like', async () => {
    const cases: [string, Buffer, RegExp][] = [
      ['SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'), /SVG/],
      ['SVG with XML declaration', Buffer.from('\uFEFF<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>'), /SVG/],
      ['PDF', Buffer.from('%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n'), /PDF/],
      ['HTML', Buffer.from('<html><body>Not found</body></html>'), /HTML/],
      ['HTML with doctype', Buffer.from('  <!DOCTYPE html>\n<html lang="en"></html>'), /HTML/],
      ['text', Buffer.from('404 page not found\n'), /text/],
      ['JSON', Buffer.from('{"error":"nope"}'), /JSON/],
      ['BMP', await bmp(), /BMP/],
      ['MP4', Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom\0\0\x02\0isomiso2', 'latin1'), Buffer.alloc(64)]), /MP4/],
      ['empty', Buffer.alloc(0), /empty/],
    ];
    for (const [name, bytes, pattern] of cases) {
      const result = await pool.compress(bytes, { quality: 50, format: 'JPEG' });
      expect(result, name).toMatchObject({ ok: false, code: 'UNSUPPORTED_FORMAT' });
      if (!result.ok) expect(result.message, name).toMatch(pattern);
    }

    const random = randomBytes(4096);
    random[0] = 0x13; // never an image signature
    const result = await pool.compress(random, { quality: 50, format: 'JPEG' });
    expect(result).toMatchObject({ ok: false, code: 'UNSUPPORTED_FORMAT' });
  });

  it('fails a truncated JPEG with DECODE_ERROR instead of returning half an image', async () => {
    const truncated = ownBuffer(plainJpeg.subarray(0, Math.floor(plainJpeg.length / 2)));
    const result = await pool.compress(truncated, { quality: 50, format: 'JPEG' });
    expect(result).toMatchObject({ ok: false, code: 'DECODE_ERROR' });

    const garbage = Buffer.concat([plainJpeg.subarray(0, 20), randomBytes(5000)]);
    expect(await pool.compress(garbage, { quality: 50, format: 'JPEG' })).toMatchObject({ ok: false, code: 'DECODE_ERROR' });
  });

  it('refuses a decompression bomb from its header, without decoding it', async () => {
    const bomb = pngBomb(20_000, 20_000);
    expect(bomb.length).toBeLessThan(100_000);
    const meta = await sharp(bomb, { limitInputPixels: false }).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 20_000, 20_000]);

    const result = await pool.compress(ownBuffer(bomb), { quality: 50, format: 'JPEG' });
    expect(result).toMatchObject({ ok: false, code: 'TOO_MANY_PIXELS' });
    if (!result.ok) expect(result.message).toMatch(/400000000/);
  });

  it('transfers the input instead of copying it', async () => {
    const input = ownBuffer(plainJpeg);
    const arrayBuffer = input.buffer;
    expect(arrayBuffer.byteLength).toBe(plainJpeg.length);
    const pending = pool.compress(input, { quality: 50, format: 'JPEG', maxWidth: 200 });
    expectOk(await pending);
    expect(arrayBuffer.byteLength).toBe(0); // detached
    expect(input.length).toBe(0);
  });

  it('shares a view of a SharedArrayBuffer with the worker: nothing detached, nothing copied', async () => {
    const shared = new SharedArrayBuffer(plainJpeg.length + 64);
    const input = Buffer.from(shared, 32, plainJpeg.length);
    input.set(plainJpeg);
    const result = expectOk(await pool.compress(input, { quality: 50, format: 'JPEG', maxWidth: 200 }));
    expect(result).toMatchObject({ width: 200, format: 'jpeg' });
    expect(shared.byteLength).toBe(plainJpeg.length + 64);
    expect(input.equals(plainJpeg)).toBe(true);
  });

  it('copies a slice of a larger buffer once, leaving the rest of that buffer intact', async () => {
    const whole = Buffer.alloc(plainJpeg.length + 100, 7);
    plainJpeg.copy(whole, 50);
    const slice = whole.subarray(50, 50 + plainJpeg.length);
    expectOk(await pool.compress(slice, { quality: 50, format: 'JPEG', maxWidth: 200 }));
    expect(whole.buffer.byteLength).toBe(whole.length);
    expect(whole[0]).toBe(7);
    expect(whole.subarray(50, 50 + plainJpeg.length).equals(plainJpeg)).toBe(true);
  });

  it('rejects invalid options as a caller error', async () => {
    await expect(pool.compress(ownBuffer(plainJpeg), { quality: 0, format: 'JPEG' })).rejects.toThrow(RangeError);
    await expect(pool.compress(ownBuffer(plainJpeg), { quality: 50, format: 'GIF' as never })).rejects.toThrow(RangeError);
    await expect(pool.compress(ownBuffer(plainJpeg), { quality: 50, format: 'JPEG', maxWidth: -3 })).rejects.toThrow(RangeError);
  });

  it('runs many compressions at once, waiting for room instead of refusing, and drains', async () => {
    // threads 2 + maxQueue 2: at most 4 reach Piscina, the other 16 wait in compress().
    const inputs = Array.from({ length: 20 }, () => ownBuffer(plainJpeg));
    const all = Promise.all(inputs.map((input, i) => pool.compress(input, { quality: 40 + i, format: 'JPEG', maxWidth: 640 })));
    expect(pool.pending).toBe(20);
    const results = await all;
    for (const result of results) expect(expectOk(result)).toMatchObject({ width: 640, height: 480, format: 'jpeg' });
    expect(pool.pending).toBe(0);
    expect(await pool.ready()).toBe(true);
  });

  it('maps output formats to file extensions and content types', () => {
    expect(['jpeg', 'webp', 'avif', 'png'].map((f) => outputExtension(f as 'jpeg'))).toEqual(['jpg', 'webp', 'avif', 'png']);
    expect(outputContentType('jpeg')).toBe('image/jpeg');
    expect(outputContentType('avif')).toBe('image/avif');
  });
});

/** A 2×2 24-bit BMP (sharp cannot write BMP). */
async function bmp(): Promise<Buffer> {
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + 16, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(2, 18);
  header.writeInt32LE(2, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(24, 28);
  return Buffer.concat([header, Buffer.alloc(16, 0x80)]);
}

/**
 * A worker file in a new folder that imports the real one (`compress`, and `ping` re-exported) and
 * adds `body`, which must export the default task. Remove `dir` afterwards.
 */
function wrappedWorker(body: string): { dir: string; filename: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'squeeze-wrapped-worker-'));
  const real = pathToFileURL(path.resolve(import.meta.dirname, '../workers/compressImage.mjs')).href;
  const filename = path.join(dir, 'worker.mjs');
  writeFileSync(filename, `import compress, { ping } from ${JSON.stringify(real)};\nexport { ping };\n${body}`);
  return { dir, filename };
}

describe('compression pool lifecycle', () => {
  it('keeps working when a worker thread dies: that task is a DECODE_ERROR', async () => {
    // A worker that exits its thread on a marker quality, and otherwise is the real one.
    const { dir, filename } = wrappedWorker(
      `export default async function (task) { if (task.options.quality === 13) process.exit(3); return compress(task); }\n`,
    );
    const pool = createCompressionPoolWithWorker(filename, { threads: 1, maxPixels: MAX_PIXELS });
    try {
      const png = await sharp({ create: { width: 50, height: 50, channels: 3, background: '#00ff00' } }).png().toBuffer();
      const crashed = await pool.compress(ownBuffer(png), { quality: 13, format: 'JPEG' });
      expect(crashed).toMatchObject({ ok: false, code: 'DECODE_ERROR' });
      const after = expectOk(await pool.compress(ownBuffer(png), { quality: 50, format: 'JPEG' }));
      expect([after.width, after.height]).toEqual([50, 50]);
      expect(pool.pending).toBe(0);
      expect(await pool.ready()).toBe(true);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('frees the outputs sharp hands over every few megabytes, with a young-generation collection', async () => {
    // The real worker, wrapped to count its thread's collections (perf_hooks 'gc' entries).
    const { dir, filename } = wrappedWorker(
      `import { PerformanceObserver, constants } from 'node:perf_hooks';\n` +
        `const counts = { major: 0, minor: 0 };\n` +
        `new PerformanceObserver((list) => { for (const entry of list.getEntries()) {\n` +
        `  if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) counts.major++;\n` +
        `  if (entry.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) counts.minor++;\n` +
        `} }).observe({ entryTypes: ['gc'] });\n` +
        `export default async function (task) { return { ...(await compress(task)), collections: { ...counts } }; }\n`,
    );
    const pool = createCompressionPoolWithWorker(filename, { threads: 1, maxPixels: MAX_PIXELS });
    const root = mkdtempSync(path.join(tmpdir(), 'squeeze-gc-out-'));
    try {
      // Noise compresses badly: outputs of about a megabyte each, 40 of them written to files.
      const width = 2000;
      const height = 1500;
      const noisy = await sharp(randomBytes(width * height * 3), { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 }).toBuffer();
      type Collections = { major: number; minor: number };
      const counted: { bytes: number; collections: Collections }[] = [];
      let outputBytes = 0;
      for (let i = 0; i < 40; i++) {
        const written = await pool.compressToFile(ownBuffer(noisy), { quality: 50, format: 'JPEG' }, path.join(root, `${i}.jpg`));
        if (!written.ok) throw new Error(written.message);
        outputBytes += written.bytes;
        counted.push({ bytes: outputBytes, collections: (written as unknown as { collections: Collections }).collections });
      }
      // From the tenth image on (the thread's start-up collections are behind it), 30 outputs of about 1 MB.
      const [from, to] = [counted[9]!, counted.at(-1)!];
      expect(to.bytes - from.bytes).toBeGreaterThan(25_000_000);
      // One young collection per 4 MB of outputs. Without them, V8 collected the young generation once
      // or twice here and marked the whole heap four or five times instead (the outputs counted against
      // its old generation's limit). Full collections are not counted: V8's memory reducer may still run
      // up to three when it finds the thread allocating little, as it does here.
      expect(to.collections.minor - from.collections.minor).toBeGreaterThanOrEqual(Math.floor((to.bytes - from.bytes) / (4 * 1024 * 1024)) - 1);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('fails loudly instead of hanging when worker threads cannot start', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'squeeze-bad-worker-'));
    const filename = path.join(dir, 'broken.mjs');
    writeFileSync(filename, `throw new Error('cannot load this worker');\n`);
    const pool = createCompressionPoolWithWorker(filename, { threads: 2, maxPixels: MAX_PIXELS });
    try {
      expect(await pool.ready()).toBe(false);
      const outcomes: string[] = [];
      for (let i = 0; i < 5; i++) {
        const outcome = pool.compress(Buffer.from([0xff, 0xd8, 0xff, 0xe0]), { quality: 50, format: 'JPEG' });
        outcomes.push(await outcome.then((r) => (r.ok ? 'ok' : r.code), (error: Error) => error.message));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(outcomes).not.toContain('ok');
      expect(outcomes.at(-1)).toMatch(/worker threads cannot start: cannot load this worker/);
      expect(await pool.ready()).toBe(false);
    } finally {
      await pool.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closes cleanly: later calls are refused, ready() is false', async () => {
    const pool = createCompressionPool({ threads: 1, maxPixels: MAX_PIXELS });
    expect(await pool.ready()).toBe(true);
    const png = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#000' } }).png().toBuffer();
    const running = pool.compress(ownBuffer(png), { quality: 50, format: 'JPEG' });
    await pool.close();
    expectOk(await running); // work already handed over finishes
    expect(await pool.ready()).toBe(false);
    await expect(pool.compress(ownBuffer(png), { quality: 50, format: 'JPEG' })).rejects.toThrow(/closed/);
  });
});
