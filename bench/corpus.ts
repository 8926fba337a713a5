/**
 * The benchmark's images: generated photographs (cached under bench/.corpus/, keyed by the settings),
 * or every image in the folder named by BENCH_IMAGES.
 *
 * A generated "photograph" is a smooth colour field (a few dozen random colours upscaled with a cubic
 * kernel), soft shapes drawn over it (SVG), mid-frequency detail (noise at 1/6 resolution, upscaled)
 * and fine grain (full-resolution noise, blurred), so it compresses like a photo: about 0.2–0.6 bytes
 * per pixel at JPEG q90, not like a gradient (too small) or white noise (far too big).
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

export interface CorpusImage {
  /** File name as served (`/img/<name>`). */
  name: string;
  bytes: Buffer;
  width: number;
  height: number;
  format: string;
  megapixels: number;
  contentType: string;
}

export interface CorpusSpec {
  megapixels: number;
  format: 'jpeg' | 'png';
  /** A PNG cut-out on a transparent background, as product shots often are (flattened onto white by Squeeze). */
  alpha?: boolean;
}

/** Bump when the generator changes: the cache key includes it. */
const GENERATOR_VERSION = 3;
const CACHE_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '.corpus');

/** A small deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/**
 * The default mix: about 60 images, 1–18 MP, sum ≈ 370 MP (≈ 18 s of one core at ~50 ms/MP), 15 % PNG
 * (small ones: a noisy 8 MP PNG would pass the 25 MB download limit), in a shuffled order as a real CSV would be.
 */
export function defaultSpecs(short: boolean): CorpusSpec[] {
  const random = prng(short ? 7 : 42);
  const specs: CorpusSpec[] = [];
  const add = (count: number, megapixels: number, format: 'jpeg' | 'png' = 'jpeg', alpha = false) => {
    for (let i = 0; i < count; i++) specs.push({ megapixels, format, alpha });
  };
  if (short) {
    add(3, 1);
    add(2, 2);
    add(1, 4);
    add(1, 1, 'png', true);
    add(1, 2, 'png');
  } else {
    add(8, 1);
    add(9, 2);
    add(12, 4);
    add(10, 8);
    add(8, 12);
    add(6, 18);
    add(4, 1, 'png', true);
    add(1, 1, 'png');
    add(2, 2, 'png', true);
    add(2, 2, 'png');
  }
  return shuffle(specs, random);
}

const ASPECTS = [4 / 3, 3 / 2, 1, 16 / 9, 3 / 4, 2 / 3];

function dimensions(megapixels: number, random: () => number): { width: number; height: number } {
  const aspect = ASPECTS[Math.floor(random() * ASPECTS.length)]!;
  const pixels = megapixels * 1_000_000;
  const width = Math.round(Math.sqrt(pixels * aspect));
  return { width, height: Math.round(pixels / width) };
}

/** Noise bytes. (A simple xorshift left visible stripes after blurring; crypto's generator is fast and clean.) */
function noiseBytes(length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  for (let offset = 0; offset < length; offset += 65536) randomFillSync(out, offset, Math.min(65536, length - offset));
  return out;
}

/** Noise at 1/`scale` resolution, upscaled smoothly to width × height: detail at one spatial frequency. */
async function noiseOctave(width: number, height: number, scale: number, channels: 1 | 3, blur?: number): Promise<Buffer> {
  const w = Math.max(2, Math.round(width / scale));
  const h = Math.max(2, Math.round(height / scale));
  let image = sharp(noiseBytes(w * h * channels), { raw: { width: w, height: h, channels } });
  if (blur) image = image.blur(blur);
  if (scale !== 1) image = image.resize(width, height, { kernel: 'cubic', fit: 'fill' });
  // libvips would hand a one-band image back as sRGB (three bands); keep the bands we asked for.
  return image.toColourspace(channels === 1 ? 'b-w' : 'srgb').raw().toBuffer();
}

function colour(random: () => number): string {
  const c = () => Math.floor(random() * 256);
  return `rgb(${c()},${c()},${c()})`;
}

function shapesSvg(width: number, height: number, random: () => number): Buffer {
  const parts: string[] = [];
  const count = 6 + Math.floor(random() * 18);
  const size = Math.min(width, height);
  for (let i = 0; i < count; i++) {
    const x = random() * width;
    const y = random() * height;
    const r = size * (0.03 + random() * 0.25);
    const fill = colour(random);
    const opacity = (0.25 + random() * 0.6).toFixed(2);
    const kind = random();
    if (kind < 0.45) {
      parts.push(`<ellipse cx="${x.toFixed(0)}" cy="${y.toFixed(0)}" rx="${r.toFixed(0)}" ry="${(r * (0.4 + random())).toFixed(0)}" fill="${fill}" fill-opacity="${opacity}"/>`);
    } else if (kind < 0.8) {
      const angle = (random() * 90).toFixed(0);
      parts.push(
        `<rect x="${(x - r).toFixed(0)}" y="${(y - r / 2).toFixed(0)}" width="${(2 * r).toFixed(0)}" height="${r.toFixed(0)}" fill="${fill}" fill-opacity="${opacity}" transform="rotate(${angle} ${x.toFixed(0)} ${y.toFixed(0)})"/>`,
      );
    } else {
      const points = Array.from({ length: 3 + Math.floor(random() * 4) }, () => `${(x + (random() - 0.5) * 2 * r).toFixed(0)},${(y + (random() - 0.5) * 2 * r).toFixed(0)}`).join(' ');
      parts.push(`<polygon points="${points}" fill="${fill}" fill-opacity="${opacity}" stroke="${colour(random)}" stroke-width="${(size / 300).toFixed(1)}"/>`);
    }
  }
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`);
}

/** One photograph-like image. */
export async function generateImage(spec: CorpusSpec, seed: number): Promise<{ bytes: Buffer; width: number; height: number }> {
  const random = prng(seed);
  const { width, height } = dimensions(spec.megapixels, random);

  // Smooth colour field: a handful of random colours upscaled with a cubic kernel.
  const gw = 4 + Math.floor(random() * 6);
  const gh = 3 + Math.floor(random() * 5);
  const grid = Buffer.from(Array.from({ length: gw * gh * 3 }, () => Math.floor(40 + random() * 180)));
  const field = await sharp(grid, { raw: { width: gw, height: gh, channels: 3 } })
    .resize(width, height, { kernel: 'cubic', fit: 'fill' })
    .composite([{ input: shapesSvg(width, height, random) }])
    .blur(0.6 + random() * 1.5)
    .removeAlpha()
    .raw()
    .toBuffer();

  // Detail at several spatial frequencies, as photographs have (roughly 1/f): colour clouds at 1/24
  // resolution, texture at 1/6 and 1/2, and fine grain at full resolution, blurred (sensor noise).
  const clouds = await noiseOctave(width, height, 24, 3, 1);
  const texture = await noiseOctave(width, height, 6, 1);
  const detail = await noiseOctave(width, height, 2, 1);
  const grain = await noiseOctave(width, height, 1, 1, 0.6 + random() * 0.4);
  const cloudAmp = 0.1 + random() * 0.15;
  const textureAmp = 0.15 + random() * 0.2;
  const detailAmp = 0.1 + random() * 0.15;
  const grainAmp = 0.25 + random() * 0.25;
  const pixels = Buffer.allocUnsafe(width * height * 3);
  for (let p = 0, q = 0; p < width * height; p++, q += 3) {
    const delta = (texture[p]! - 128) * textureAmp + (detail[p]! - 128) * detailAmp + (grain[p]! - 128) * grainAmp;
    for (let c = 0; c < 3; c++) {
      const v = field[q + c]! + delta + (clouds[q + c]! - 128) * cloudAmp;
      pixels[q + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }

  let image = sharp(pixels, { raw: { width, height, channels: 3 } });
  if (spec.format === 'png') {
    if (spec.alpha) {
      // A cut-out: opaque ellipse on a transparent background.
      const mask = Buffer.from(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><ellipse cx="${width / 2}" cy="${height / 2}" rx="${width * 0.42}" ry="${height * 0.45}" fill="#fff"/></svg>`,
      );
      const alpha = await sharp(mask).resize(width, height).extractChannel(3).raw().toBuffer();
      image = sharp(pixels, { raw: { width, height, channels: 3 } }).joinChannel(alpha, { raw: { width, height, channels: 1 } });
    }
    return { bytes: await image.png({ compressionLevel: 6 }).toBuffer(), width, height };
  }
  return { bytes: await image.jpeg({ quality: 90 }).toBuffer(), width, height };
}

const CONTENT_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  heif: 'image/avif',
  tiff: 'image/tiff',
};

async function describe(name: string, bytes: Buffer): Promise<CorpusImage> {
  const meta = await sharp(bytes).metadata();
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const format = meta.format ?? 'unknown';
  return { name, bytes, width, height, format, megapixels: (width * height) / 1e6, contentType: CONTENT_TYPES[format] ?? 'application/octet-stream' };
}

/** Generated images, from the cache when they are there. `log` reports progress of a first generation. */
export async function generatedCorpus(specs: CorpusSpec[], log: (line: string) => void): Promise<{ images: CorpusImage[]; dir: string; cached: boolean }> {
  const key = createHash('sha256').update(JSON.stringify({ v: GENERATOR_VERSION, specs })).digest('hex').slice(0, 12);
  const dir = path.join(CACHE_ROOT, key);
  const manifestPath = path.join(dir, 'manifest.json');
  const fileName = (spec: CorpusSpec, index: number) => `${String(index).padStart(3, '0')}-${spec.megapixels}mp${spec.alpha ? '-alpha' : ''}.${spec.format === 'png' ? 'png' : 'jpg'}`;

  let cached = true;
  try {
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { files: string[] };
    if (manifest.files.length !== specs.length) throw new Error('stale manifest');
  } catch {
    cached = false;
  }
  if (!cached) {
    const temp = `${dir}.${randomBytes(4).toString('hex')}.tmp`;
    await mkdir(temp, { recursive: true });
    const started = Date.now();
    const files: string[] = [];
    for (const [index, spec] of specs.entries()) {
      const { bytes } = await generateImage(spec, 1000 + index);
      const name = fileName(spec, index);
      await writeFile(path.join(temp, name), bytes);
      files.push(name);
      if ((index + 1) % 10 === 0 || index + 1 === specs.length) log(`  generated ${index + 1}/${specs.length} images (${((Date.now() - started) / 1000).toFixed(0)} s)`);
    }
    await writeFile(path.join(temp, 'manifest.json'), JSON.stringify({ version: GENERATOR_VERSION, specs, files }, null, 2));
    await rm(dir, { recursive: true, force: true });
    await rename(temp, dir);
  }
  const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as { files: string[] };
  const images: CorpusImage[] = [];
  for (const name of manifest.files) images.push(await describe(name, await readFile(path.join(dir, name))));
  return { images, dir, cached };
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff']);

/** Every image file in a folder (not recursive), in name order. */
export async function folderCorpus(dir: string): Promise<CorpusImage[]> {
  const names = (await readdir(dir)).filter((name) => IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase())).sort();
  if (names.length === 0) throw new Error(`BENCH_IMAGES=${dir} holds no .jpg, .png, .webp, .gif, .avif or .tiff files`);
  const images: CorpusImage[] = [];
  for (const name of names) images.push(await describe(name, await readFile(path.join(dir, name))));
  return images;
}
