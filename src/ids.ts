import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;
// Random bytes are drawn 32 KB at a time: one randomFillSync per id cost 1.1 s of 400 000 ids at
// ingest, refilling a pool cost 0.3 s.
const POOL = 32 * 1024;
const pool = Buffer.alloc(POOL);
let offset = POOL;

/** The character code of each hex digit. */
const HEX = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));
const DASH = 45;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then a 12-bit counter and random bits.
 * Time-ordered keys append to the primary-key index; random v4 keys touched a random page per row.
 * The counter keeps ids made in the same millisecond in order.
 * Written in one String.fromCharCode: through Buffer views, `toString('hex')` and concatenation, each
 * id allocated ~700 bytes, half of all the allocation of an ingest of 400 000 ids (and of its GC).
 */
export function uuidv7(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
  }
  if (offset + 8 > POOL) {
    randomFillSync(pool);
    offset = 0;
  }
  const r = offset;
  offset += 8;
  const ms = lastMs;
  // Bits 47–16 and 15–0 of the milliseconds (beyond 32 bits, so no bitwise operators on the whole).
  const high = Math.floor(ms / 0x10000);
  const low = ms % 0x10000;
  const variant = (pool[r]! & 0x3f) | 0x80;
  // One call with every character: no intermediate strings.
  return String.fromCharCode(
    HEX[high >>> 28]!, HEX[(high >>> 24) & 15]!, HEX[(high >>> 20) & 15]!, HEX[(high >>> 16) & 15]!,
    HEX[(high >>> 12) & 15]!, HEX[(high >>> 8) & 15]!, HEX[(high >>> 4) & 15]!, HEX[high & 15]!,
    DASH,
    HEX[low >>> 12]!, HEX[(low >>> 8) & 15]!, HEX[(low >>> 4) & 15]!, HEX[low & 15]!,
    DASH,
    HEX[7]!, HEX[counter >>> 8]!, HEX[(counter >>> 4) & 15]!, HEX[counter & 15]!,
    DASH,
    HEX[variant >>> 4]!, HEX[variant & 15]!, HEX[pool[r + 1]! >>> 4]!, HEX[pool[r + 1]! & 15]!,
    DASH,
    HEX[pool[r + 2]! >>> 4]!, HEX[pool[r + 2]! & 15]!, HEX[pool[r + 3]! >>> 4]!, HEX[pool[r + 3]! & 15]!,
    HEX[pool[r + 4]! >>> 4]!, HEX[pool[r + 4]! & 15]!, HEX[pool[r + 5]! >>> 4]!, HEX[pool[r + 5]! & 15]!,
    HEX[pool[r + 6]! >>> 4]!, HEX[pool[r + 6]! & 15]!, HEX[pool[r + 7]! >>> 4]!, HEX[pool[r + 7]! & 15]!,
  );
}
