/**
 * The compression task, run in a Piscina worker thread (loaded through `compressImage.mjs`).
 * Bytes and options in, bytes (or, given `outputPath`, a written file) and metadata out. It never
 * throws: every failure of the image is a `{ ok: false, code, message }` result, so a bad image can
 * never take the thread down, and a failed write is `{ ok: false, writeFailed }`.
 *
 * Loaded through tsx's CommonJS hook inside the worker (see STACK-NOTES), so no top-level await here.
 */
import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import sharp from 'sharp';
import { Piscina, transferableSymbol, valueSymbol } from 'piscina';
import type { CompressFailureCode, CompressionOptions } from '../src/compress/compressionPool.ts';
import { temporaryPathFor } from '../src/storage/localStorage.ts';

/**
 * One libvips thread per pool thread: the pool itself is sized to the cores. (Process-wide setting;
 * sharp already defaults to 1 on glibc Linux without jemalloc, as here, but say it.)
 */
sharp.concurrency(1);
/**
 * libvips' operation cache only pays when the same image is processed again; every task here is a
 * new buffer, so it would only hold memory. Measured through the pool (2 threads, 30 × 12 MP JPEG →
 * JPEG q50, CPU time per image, machine shared with other jobs so wall times were noisy): default
 * 50 MB cache 120–145 ms, cache(false) 128–133 ms — no measurable difference. (Process-wide setting.)
 */
sharp.cache(false);

export type InputFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif' | 'tiff';
export type EncodedFormat = 'jpeg' | 'webp' | 'avif' | 'png';

/** What the main thread sends. `input` views an ArrayBuffer that was transferred, not copied. */
export interface CompressTask {
  input: Uint8Array;
  options: CompressionOptions;
  maxPixels: number;
  /** JPEG output: Huffman tables made for the image (JPEG_OPTIMIZE_CODING; see MOZJPEG below). */
  jpegOptimizeCoding: boolean;
  /** Write the output to this file (beside it first, then renamed) instead of sending it back. */
  outputPath?: string;
}

/** What comes back across the thread boundary: `data` views a transferred ArrayBuffer; none when written to outputPath. */
export type WorkerResult =
  | { ok: true; data: Uint8Array; width: number; height: number; format: EncodedFormat; inputFormat: InputFormat }
  | { ok: true; written: number; width: number; height: number; format: EncodedFormat; inputFormat: InputFormat }
  | { ok: false; code: CompressFailureCode; message: string }
  | { ok: false; writeFailed: string; errorCode?: string };

/**
 * mozjpeg (trellis quantisation, its own quantisation tables, progressive scans) vs plain
 * libjpeg-turbo, on this 2-core machine: three 4000×3000 photo-like JPEGs (blurred noise over
 * gradients, 1.9–2.9 MB at q92), decode + rotate + flatten + encode, one libvips thread:
 *   quality 50, mozjpeg off:  ~90–120 ms per image, 686 KB average output
 *   quality 50, mozjpeg on:   ~540–670 ms per image, 492 KB average output  (−28 %, ~5.5× the time)
 *   quality 80, mozjpeg off:  ~85–125 ms per image, 1 358 KB average output
 *   quality 80, mozjpeg on:   ~930–990 ms per image, 1 246 KB average output (−8 %, ~9× the time)
 * (At q50 most of the saving comes from mozjpeg's different quantisation tables, i.e. a different
 * visual quality at the same number; `quantisationTable: 3` alone gave 591 KB at ~140 ms.)
 * Throughput matters most here, so it is off; plain sharp also defaults to off.
 *
 * Huffman tables made for each image (libjpeg's optimize_coding, sharp's `optimiseCoding`, on by
 * default in sharp) cost a second pass over a buffer of every coefficient of the image, and save a few
 * per cent, losslessly. Measured on `npm run bench`'s photos (2 threads, quality 50), with → without:
 * outputs 1 038 → 1 070 KB on average (30 photos, +3 %); the pool alone 20.95–21.89 → 37.54–37.89
 * images/s (alternating runs); in `npm run bench` the limit 20.05–20.68 → 35.20 images/s and Squeeze
 * end to end on Postgres 18.02–19.36 → 31.00 (three runs → one; its ratio to the limit 0.895–0.912 →
 * 0.886, as its own work per image weighs more beside a cheaper compression). This VM makes that
 * buffer dearer than most machines would: its fresh pages are faulted in from the host (page faults
 * per image in the pool 1 030–1 870 with the tables, 190 without). The tables stay on by default,
 * as in sharp and in every earlier Squeeze, so no one's outputs grow on an upgrade; where compute costs
 * more than the bytes, JPEG_OPTIMIZE_CODING=false trades the 3 % for the throughput.
 */
const MOZJPEG = false;

/**
 * sharp hands each output over in memory of its own (an "external" ArrayBuffer), which V8 counts
 * against the thread's heap until a garbage collection finds it dead. A compression thread allocates
 * almost nothing on its heap, so the cheap young-generation collection that would find it hardly ever
 * comes: instead V8 found the old generation's limit reached every ~9 MB of outputs and marked the
 * whole heap (10 MB of loaded code) each time, on its helper threads and then in a pause here. So this
 * thread collects its young generation itself, every 4 MB of outputs; one such collection of a nearly
 * empty young generation takes a few tenths of a millisecond. Measured with `npm run bench`'s photos
 * on Postgres (186 images per request, two threads, two servers in turn): full collections 10–14 →
 * 1 per request (more when V8's memory reducer runs, as it does after a pause); CPU of V8's helper
 * threads 1.0–1.5 → 0.8–1.1 ms per image; page faults 2 830–3 190 → 1 960–2 930 per image, as glibc
 * hands libvips back the output memory it just freed instead of fresh pages.
 */
const RELEASE_OUTPUTS_EVERY_BYTES = 4 * 1024 * 1024;
let outputBytesHeld = 0;
const collectYoungGeneration = youngGenerationCollector();

/** V8's `gc` with `{ type: 'minor' }` for this thread; undefined if it cannot be had (then V8 decides alone). */
function youngGenerationCollector(): (() => void) | undefined {
  type Gc = (options: { type: 'minor' | 'major' }) => void;
  try {
    let gc = (globalThis as { gc?: Gc }).gc;
    if (typeof gc !== 'function') {
      // A process-wide V8 flag, read when a context is made: the one made here has `gc`, and so will
      // threads started after this one (the server's other threads ignore it).
      v8.setFlagsFromString('--expose-gc');
      gc = vm.runInNewContext('gc') as Gc;
    }
    if (typeof gc !== 'function') return undefined;
    return () => gc({ type: 'minor' });
  } catch {
    return undefined;
  }
}

/** An output of `bytes` from sharp is no longer referenced: collect them every few megabytes. */
function outputReleased(bytes: number): void {
  outputBytesHeld += bytes;
  if (outputBytesHeld < RELEASE_OUTPUTS_EVERY_BYTES || !collectYoungGeneration) return;
  outputBytesHeld = 0;
  collectYoungGeneration();
}

const ACCEPTED = 'accepted formats are JPEG, PNG, WebP, GIF, AVIF and TIFF';

// ---------------------------------------------------------------------------------------------
// Format sniffing: from the bytes only, never from a content type or a file name.

export type Sniffed =
  | { supported: true; format: InputFormat; /** an ISO-BMFF HEIF-family file: must turn out to be AV1 */ heifFamily: boolean }
  | { supported: false; looksLike: string };

function ascii(bytes: Uint8Array, start: number, length: number): string {
  let out = '';
  const end = Math.min(bytes.length, start + length);
  for (let i = start; i < end; i++) out += String.fromCharCode(bytes[i]!);
  return out;
}

function startsWith(bytes: Uint8Array, signature: readonly number[], at = 0): boolean {
  if (bytes.length < at + signature.length) return false;
  for (let i = 0; i < signature.length; i++) if (bytes[at + i] !== signature[i]) return false;
  return true;
}

const HEIF_BRANDS = new Set(['avif', 'avis', 'heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs', 'mif1', 'msf1', 'mif2', 'miaf']);

function sniffIsoBmff(bytes: Uint8Array): Sniffed {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxSize = bytes.length >= 4 ? view.getUint32(0) : 0;
  const brands = [ascii(bytes, 8, 4)];
  const end = Math.min(bytes.length, boxSize >= 16 ? boxSize : 16, 256);
  for (let i = 16; i + 4 <= end; i += 4) brands.push(ascii(bytes, i, 4));
  if (brands.some((brand) => HEIF_BRANDS.has(brand))) return { supported: true, format: 'avif', heifFamily: true };
  const major = brands[0]!.trim();
  if (major === 'qt') return { supported: false, looksLike: 'a QuickTime video' };
  if (['crx'].includes(major)) return { supported: false, looksLike: 'a Canon raw image (CR3)' };
  if (['M4A', 'M4B', 'M4P'].includes(major)) return { supported: false, looksLike: 'MPEG-4 audio' };
  return { supported: false, looksLike: `an ISO media file (ftyp "${major}", e.g. MP4 video)` };
}

/** True when the start of the data reads as text (ASCII or UTF-8, no control characters). */
function looksLikeText(bytes: Uint8Array): boolean {
  const sample = bytes.subarray(0, 1024);
  if (sample.length === 0) return false;
  let i = 0;
  while (i < sample.length) {
    const b = sample[i]!;
    if (b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d || (b >= 0x20 && b < 0x7f)) {
      i++;
      continue;
    }
    // A UTF-8 multi-byte sequence (a sequence cut by the sample's end is accepted).
    const extra = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (extra < 0) return false;
    for (let k = 1; k <= extra; k++) {
      if (i + k >= sample.length) return true;
      const c = sample[i + k]!;
      if (c < 0x80 || c > 0xbf) return false;
    }
    i += extra + 1;
  }
  return true;
}

/** Names markup: SVG, HTML, XML. `text` is the start of the data, BOM and leading blanks removed, lower-cased. */
function sniffMarkup(text: string): string | undefined {
  if (!text.startsWith('<')) return undefined;
  if (text.includes('<svg')) return 'an SVG image';
  if (/^<(!doctype html|html|head|body|meta|title|script|div|p[\s>]|!--)/.test(text) || text.includes('<html')) {
    return 'an HTML page';
  }
  if (text.startsWith('<?xml') || text.startsWith('<!doctype') || text.startsWith('<!--')) return 'an XML document';
  return 'markup (HTML or XML)';
}

/** Identify the data from its first bytes. */
export function sniffFormat(bytes: Uint8Array): Sniffed {
  if (bytes.length === 0) return { supported: false, looksLike: 'empty data' };
  const b = bytes;

  // Accepted formats.
  if (startsWith(b, [0xff, 0xd8, 0xff])) return { supported: true, format: 'jpeg', heifFamily: false };
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return { supported: true, format: 'png', heifFamily: false };
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 4) === 'WEBP') return { supported: true, format: 'webp', heifFamily: false };
  if (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a') return { supported: true, format: 'gif', heifFamily: false };
  if (
    startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a]) || // TIFF
    startsWith(b, [0x49, 0x49, 0x2b, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2b]) // BigTIFF
  ) {
    return { supported: true, format: 'tiff', heifFamily: false };
  }
  if (ascii(b, 4, 4) === 'ftyp') return sniffIsoBmff(b);

  // Everything else gets a name, for the error message.
  const binary: [readonly number[] | string, string][] = [
    ['%PDF', 'a PDF document'],
    ['%!PS', 'a PostScript document'],
    [[0xc5, 0xd0, 0xd3, 0xc6], 'an EPS document'],
    ['8BPS', 'a Photoshop document (PSD)'],
    [[0x00, 0x00, 0x01, 0x00], 'an ICO icon'],
    [[0x00, 0x00, 0x02, 0x00], 'a CUR cursor'],
    [[0xff, 0x0a], 'a JPEG XL image'],
    [[0x00, 0x00, 0x00, 0x0c, 0x4a, 0x58, 0x4c, 0x20], 'a JPEG XL image'],
    [[0x00, 0x00, 0x00, 0x0c, 0x6a, 0x50, 0x20, 0x20], 'a JPEG 2000 image'],
    [[0xff, 0x4f, 0xff, 0x51], 'a JPEG 2000 codestream'],
    ['qoif', 'a QOI image'],
    [[0x76, 0x2f, 0x31, 0x01], 'an OpenEXR image'],
    ['#?RADIANCE', 'a Radiance HDR image'],
    ['#?RGBE', 'a Radiance HDR image'],
    ['DDS ', 'a DirectDraw surface (DDS)'],
    ['gimp xcf', 'a GIMP image (XCF)'],
    ['SIMPLE  =', 'a FITS image'],
    [[0xd7, 0xcd, 0xc6, 0x9a], 'a Windows metafile (WMF)'],
    [[0x01, 0x00, 0x00, 0x00], 'an EMF metafile or other binary data'],
    [[0x50, 0x4b, 0x03, 0x04], 'a ZIP archive (or an Office document)'],
    [[0x1f, 0x8b], 'gzip-compressed data'],
    ['Rar!', 'a RAR archive'],
    [[0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c], 'a 7-Zip archive'],
    [[0x42, 0x5a, 0x68], 'bzip2-compressed data'],
    [[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], 'xz-compressed data'],
    [[0x28, 0xb5, 0x2f, 0xfd], 'zstd-compressed data'],
    [[0x1a, 0x45, 0xdf, 0xa3], 'a Matroska/WebM video'],
    ['OggS', 'an Ogg media file'],
    ['fLaC', 'a FLAC audio file'],
    ['ID3', 'an MP3 audio file'],
    [[0x7f, 0x45, 0x4c, 0x46], 'an ELF executable'],
    ['MZ', 'a Windows executable'],
    [[0x00, 0x61, 0x73, 0x6d], 'a WebAssembly module'],
    [[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1], 'an old-style Office document'],
  ];
  for (const [signature, name] of binary) {
    const matches = typeof signature === 'string' ? ascii(b, 0, signature.length) === signature : startsWith(b, signature);
    if (matches) return { supported: false, looksLike: name };
  }
  if (ascii(b, 0, 4) === 'RIFF') {
    const kind = ascii(b, 8, 4);
    return { supported: false, looksLike: kind === 'WAVE' ? 'a WAV audio file' : kind === 'AVI ' ? 'an AVI video' : `a RIFF file ("${kind}")` };
  }
  if (ascii(b, 0, 2) === 'BM' && b.length >= 26 && [12, 40, 52, 56, 64, 108, 124].includes(b[14]!) && b[15] === 0) {
    return { supported: false, looksLike: 'a BMP image' };
  }
  if (/^P[1-7]\s/.test(ascii(b, 0, 3))) return { supported: false, looksLike: 'a Netpbm image (PBM/PGM/PPM)' };

  if (looksLikeText(b)) {
    const text = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, 2048))
      .toString('utf8')
      .replace(/^\uFEFF/, '')
      .trimStart()
      .toLowerCase();
    const markup = sniffMarkup(text);
    if (markup) return { supported: false, looksLike: markup };
    if (text.startsWith('{') || text.startsWith('[')) return { supported: false, looksLike: 'JSON text' };
    return { supported: false, looksLike: 'text' };
  }
  return { supported: false, looksLike: 'unrecognised binary data' };
}

// ---------------------------------------------------------------------------------------------
// The task.

const SHARP_FORMAT: Record<InputFormat, string> = { jpeg: 'jpeg', png: 'png', webp: 'webp', gif: 'gif', avif: 'heif', tiff: 'tiff' };

function fail(code: CompressFailureCode, message: string): WorkerResult {
  return { ok: false, code, message };
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Classify a sharp/libvips error. Whatever it is, the image is not usable. */
function failureFromError(error: unknown): WorkerResult {
  const message = errorMessage(error).trim() || 'Image could not be decoded';
  if (/exceeds pixel limit/i.test(message)) return fail('TOO_MANY_PIXELS', message);
  if (/unsupported image format/i.test(message)) return fail('UNSUPPORTED_FORMAT', message);
  return fail('DECODE_ERROR', message);
}

export async function compressImage(task: CompressTask): Promise<WorkerResult> {
  const { input, options, maxPixels, jpegOptimizeCoding } = task;

  const sniffed = sniffFormat(input);
  if (!sniffed.supported) {
    return fail('UNSUPPORTED_FORMAT', `Unsupported image format: the data looks like ${sniffed.looksLike}; ${ACCEPTED}`);
  }

  try {
    // The header only: no pixel is decoded, so a decompression bomb is caught here, cheaply. (With
    // limitInputPixels set, sharp would refuse the header too, but with a message without numbers.)
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    if (meta.format !== SHARP_FORMAT[sniffed.format]) {
      return fail('UNSUPPORTED_FORMAT', `Unsupported image format: the data starts like ${sniffed.format.toUpperCase()} but decodes as ${meta.format}; ${ACCEPTED}`);
    }
    if (sniffed.heifFamily && meta.compression !== 'av1') {
      return fail('UNSUPPORTED_FORMAT', `Unsupported image format: a HEIF image compressed with ${meta.compression ?? 'an unknown codec'} (HEIC); only AV1 (AVIF) is accepted; ${ACCEPTED}`);
    }
    const width = meta.width;
    const height = meta.pageHeight ?? meta.height;
    if (!width || !height) return fail('DECODE_ERROR', 'The image header has no dimensions');
    const animated = (sniffed.format === 'gif' || sniffed.format === 'webp') && (meta.pages ?? 1) > 1;
    const pixels = width * height * (animated ? meta.pages! : 1);
    if (pixels > maxPixels) {
      const frames = animated ? ` × ${meta.pages} frames` : '';
      return fail('TOO_MANY_PIXELS', `The image has ${width}×${height}${frames} = ${pixels} pixels, over the limit of ${maxPixels}`);
    }

    const image = sharp(input, {
      // Still enforced by libvips, in case the header lied.
      limitInputPixels: maxPixels,
      // A truncated or corrupt image fails instead of coming out half grey. 'warning' (sharp's
      // default) would also refuse the many real photos with harmless warnings (extra bytes, bad markers).
      failOn: 'truncated',
      // Animated input: first frame only.
      pages: 1,
      page: 0,
    });
    // EXIF orientation applied; metadata is stripped because withMetadata() is never called.
    let pipeline = image.rotate();
    const maxWidth = options.maxWidth ?? undefined;
    const maxHeight = options.maxHeight ?? undefined;
    if (maxWidth !== undefined || maxHeight !== undefined) {
      pipeline = pipeline.resize({ width: maxWidth, height: maxHeight, fit: 'inside', withoutEnlargement: true });
    }
    const quality = options.quality;
    switch (options.format) {
      case 'JPEG':
        pipeline = pipeline.flatten({ background: '#ffffff' }).jpeg({ quality, mozjpeg: MOZJPEG, optimiseCoding: jpegOptimizeCoding });
        break;
      case 'WEBP':
        pipeline = pipeline.webp({ quality });
        break;
      case 'AVIF':
        pipeline = pipeline.avif({ quality, effort: 2 });
        break;
      case 'PNG':
        pipeline = pipeline.png({ compressionLevel: 9, palette: quality < 100, quality });
        break;
      default:
        return fail('DECODE_ERROR', `Unknown output format ${String(options.format)}`);
    }
    const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
    const format = info.format === 'heif' ? 'avif' : (info.format as EncodedFormat);

    if (task.outputPath !== undefined) {
      // Written here, from libvips' own buffer: the bytes never cross to the main thread. There, each
      // output was a new ArrayBuffer, counted as external memory of its heap: in a bench run (175 MB
      // of outputs) the main thread's heap was marked in full every 0.65 s, none without them.
      const failed = writeOutput(task.outputPath, data);
      outputReleased(data.byteLength);
      if (failed) return failed;
      return { ok: true, written: data.byteLength, width: info.width, height: info.height, format, inputFormat: sniffed.format };
    }

    // sharp's output Buffer wraps memory libvips allocated, and Node refuses to transfer such
    // "external" ArrayBuffers: listed in a transferList they are silently cloned (twice: serialised,
    // then copied again on the receiving side). One copy into a plain ArrayBuffer here, which is
    // then transferred, is the cheapest way across.
    const out = new Uint8Array(new ArrayBuffer(data.byteLength));
    out.set(data);
    outputReleased(data.byteLength);
    const value: WorkerResult = { ok: true, data: out, width: info.width, height: info.height, format, inputFormat: sniffed.format };
    // Piscina's transferable interface: `value` is posted, `out.buffer` goes in the transferList.
    // (Piscina.move on a plain object would try to transfer the object itself and crash.)
    // The main thread receives the plain `value`.
    return Piscina.move({ [transferableSymbol]: out.buffer, [valueSymbol]: value }) as unknown as WorkerResult;
  } catch (error) {
    return failureFromError(error);
  }
}

/**
 * Outputs are written 64 KiB at a time rather than in one write. Given a whole output (0.9 MB on
 * average in npm run bench) in one write, Linux (6.x, ext4) puts it in large page-cache folios, and
 * on this bench machine copying into those cost three to four times the CPU: most likely because it
 * is a VM whose balloon reports free blocks of 2 MB and more back to the host, which then has to
 * fault them in again when they are first written. Smaller writes get small folios. Per write, CPU
 * of the compression thread (/proc/thread-self/schedstat, 248 writes, Postgres end to end):
 * one write 1.0–1.3 ms, 256 KiB pieces 0.49–0.62 ms, 64 KiB 0.27–0.31 ms, 16 KiB 0.29–0.39 ms,
 * 4 KiB 0.49 ms. Where free memory stays with the machine the pieces cost about 0.05 ms more per
 * output (the extra system calls; 0.39–0.44 → 0.44 ms in a loop of writes alone).
 */
const WRITE_PIECE_BYTES = 64 * 1024;

function writeInPieces(file: string, data: Uint8Array): void {
  const fd = openSync(file, 'w');
  try {
    for (let at = 0; at < data.length; ) {
      const wrote = writeSync(fd, data, at, Math.min(WRITE_PIECE_BYTES, data.length - at));
      if (wrote <= 0) throw new Error(`writing ${file} stopped at byte ${at} of ${data.length}`);
      at += wrote;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * The output written beside its file, then renamed over it: a reader never sees half a file, and a
 * re-run replaces it whole (as LocalStorage.write does; its sweep removes what a killed process left).
 * Synchronous: this thread has nothing else to do meanwhile.
 */
function writeOutput(target: string, data: Uint8Array): { ok: false; writeFailed: string; errorCode?: string } | undefined {
  const temp = temporaryPathFor(target);
  try {
    try {
      writeInPieces(temp, data);
    } catch (error) {
      // The folder is new (the request's first image) or went away: make it, once.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      mkdirSync(path.dirname(target), { recursive: true });
      writeInPieces(temp, data);
    }
    renameSync(temp, target);
    return undefined;
  } catch (error) {
    try {
      rmSync(temp, { force: true });
    } catch {
      // Nothing was written there (the folder is not one).
    }
    const { code, message } = error as NodeJS.ErrnoException;
    return { ok: false, writeFailed: `Writing the output to ${target} failed: ${message}`, ...(code ? { errorCode: code } : {}) };
  }
}

/**
 * The download thread's code (workers/downloads.ts), for the bootstrap: here only so that `npm start`'s
 * compiled bundle of this file carries it. Loaded when called, never by the compression threads.
 */
export function loadDownloads(): Promise<typeof import('./downloads.ts')> {
  return import('./downloads.ts');
}

/** A trivial task, for readiness checks. */
export function ping(): boolean {
  return true;
}

export default compressImage;
