import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';

/** Where outputs live. Keys are relative paths like `requests/<id>/<image>.jpg`; the same key always overwrites. */
export interface Storage {
  write(key: string, data: Buffer | string): Promise<void>;
  /**
   * The file a key is kept in, when the storage is a folder of this machine: other threads of this
   * process may then write it themselves (beside it, then renamed over it, as write does).
   */
  localPath?(key: string): string;
  /** A readable stream and size, or undefined when the key has no file. */
  open(key: string): Promise<{ stream: Readable; size: number } | undefined>;
  /** The absolute URL clients fetch the key from. */
  url(key: string): string;
  /** Removes half-written files older than `maxAgeMs` (left by an instance killed mid-write). */
  sweepTemporaryFiles(maxAgeMs: number): Promise<number>;
}

/**
 * Where a file is written before it is renamed over `target`: beside it, so the rename stays on one
 * file system; sweepTemporaryFiles finds what a killed writer left by the `.tmp` ending.
 */
export function temporaryPathFor(target: string): string {
  return `${target}.${randomBytes(6).toString('hex')}.tmp`;
}

const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

export function isValidKey(key: string): boolean {
  return KEY_PATTERN.test(key) && !key.split('/').some((part) => part === '..' || part === '.');
}

/** Files under a directory, served by Squeeze itself at `<publicUrl>/files/<key>`. */
export function createLocalStorage(root: string, publicUrl: string): Storage {
  const filePath = (key: string) => {
    if (!isValidKey(key)) throw new Error(`Invalid storage key: ${key}`);
    return path.join(root, key);
  };
  // Directories already made by this process: one mkdir per request folder, not one per image.
  const made = new Set<string>();
  return {
    localPath: filePath,
    async write(key, data) {
      const target = filePath(key);
      const dir = path.dirname(target);
      if (!made.has(dir)) {
        await mkdir(dir, { recursive: true });
        made.add(dir);
      }
      // Write beside the target and rename: a reader never sees half a file, and a re-run replaces it whole.
      const temp = temporaryPathFor(target);
      try {
        await writeFile(temp, data);
      } catch (error) {
        // The folder went away since it was made (cleaned by hand): make it again, once.
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        await mkdir(dir, { recursive: true });
        await writeFile(temp, data);
      }
      await rename(temp, target);
    },
    async open(key) {
      if (!isValidKey(key)) return undefined;
      const target = filePath(key);
      try {
        const info = await stat(target);
        if (!info.isFile()) return undefined;
        return { stream: createReadStream(target), size: info.size };
      } catch {
        return undefined;
      }
    },
    url(key) {
      return `${publicUrl}/files/${key}`;
    },
    async sweepTemporaryFiles(maxAgeMs) {
      let removed = 0;
      const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        if (!entry.isFile() || !entry.name.endsWith('.tmp')) continue;
        const file = path.join(entry.parentPath, entry.name);
        const info = await stat(file).catch(() => undefined);
        // Young ones may belong to another instance writing right now.
        if (info && Date.now() - info.mtimeMs > maxAgeMs) {
          await rm(file, { force: true });
          removed++;
        }
      }
      return removed;
    },
  };
}

const CONTENT_TYPES: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  avif: 'image/avif',
  csv: 'text/csv; charset=utf-8',
};

export function contentTypeOf(key: string): string {
  return CONTENT_TYPES[path.extname(key).slice(1).toLowerCase()] ?? 'application/octet-stream';
}
