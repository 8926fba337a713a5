import { describe, expect, it } from 'vitest';
import { createInputBuffers } from '../src/compress/inputBuffers.ts';

const MiB = 1 << 20;

describe('input buffers', () => {
  it('hands out exact-size views of shared memory and reuses what comes back', () => {
    const buffers = createInputBuffers(2);
    const a = buffers.take(300_000);
    expect(a.length).toBe(300_000);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    a.fill(1);
    buffers.give(a);
    expect(buffers.idleBytes).toBe(MiB);
    // The same memory again, for any size that fits.
    const b = buffers.take(MiB);
    expect(b.buffer).toBe(a.buffer);
    expect(buffers.idleBytes).toBe(0);
    buffers.give(b);
  });

  it('takes the smallest idle buffer that fits, and makes a larger one when none does', () => {
    const buffers = createInputBuffers(4);
    const small = buffers.take(MiB);
    const large = buffers.take(5 * MiB);
    buffers.give(small);
    buffers.give(large);
    expect(buffers.take(100).buffer).toBe(small.buffer);
    expect(buffers.take(100).buffer).toBe(large.buffer);
    const larger = buffers.take(5 * MiB + 1);
    expect(larger.buffer.byteLength).toBe(6 * MiB);
  });

  it('keeps no more than its capacity: at capacity, a too-small idle buffer makes way for a larger one', () => {
    const buffers = createInputBuffers(2);
    const one = buffers.take(MiB);
    const two = buffers.take(MiB);
    buffers.give(one);
    // One in use, one idle (too small): the idle one is dropped for the new 3 MiB one.
    const three = buffers.take(3 * MiB);
    expect(buffers.idleBytes).toBe(0);
    buffers.give(two);
    buffers.give(three);
    expect(buffers.idleBytes).toBe(4 * MiB);
    // More in use at once than the capacity: what comes back beyond it goes, smallest first.
    const all = [buffers.take(0), buffers.take(MiB), buffers.take(2 * MiB)];
    for (const buffer of all) buffers.give(buffer);
    expect(buffers.idleBytes).toBe(3 * MiB + 2 * MiB);
  });

  it('clear drops the idle buffers', () => {
    const buffers = createInputBuffers(2);
    buffers.give(buffers.take(10));
    expect(buffers.idleBytes).toBe(MiB);
    buffers.clear();
    expect(buffers.idleBytes).toBe(0);
    expect(() => buffers.give(Buffer.alloc(10))).toThrow(TypeError);
  });
});
