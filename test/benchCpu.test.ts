import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { EXITED_THREADS, cpuByThreadName, processCpu, type ProcessCpu } from '../bench/support.ts';

const reading = (total: number, main: number, threads: [string, string, number][]): ProcessCpu => ({
  total,
  main,
  threads: new Map(threads.map(([tid, name, seconds]) => [tid, { name, seconds }])),
});

describe('the bench counts CPU by thread name', () => {
  it('diffs each thread by id, and reports what threads that exited used', () => {
    const before = reading(10, 1, [
      ['101', 'libvips worker', 4],
      ['102', 'libvips worker', 3], // exits before the second reading
      ['103', 'node', 2],
    ]);
    const after = reading(20, 1.5, [
      ['101', 'libvips worker', 6], // +2
      ['104', 'libvips worker', 1.5], // new: +1.5
      ['103', 'node', 3], // +1
    ]);
    // 10 s in all: 0.5 main + 3.5 libvips + 1 node live, so 5 s were used by threads gone by now.
    expect(cpuByThreadName(before, after)).toEqual({ 'libvips worker': 3.5, node: 1, [EXITED_THREADS]: 5 });
  });

  it('leaves exited threads out when every second is on a live thread', () => {
    const before = reading(5, 1, [['7', 'node', 1]]);
    const after = reading(6, 1.25, [['7', 'node', 1.75]]);
    expect(cpuByThreadName(before, after)).toEqual({ node: 0.75 });
  });

  it('keeps the CPU of a real worker thread that ended between two readings of this process', async () => {
    const before = processCpu(process.pid);
    // Spins until it has used 0.3 s of CPU itself (by its own /proc counters), however busy the machine.
    const spin = new Worker(
      `const { readFileSync } = require('node:fs');
       const cpu = () => { const f = readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1].split(' '); return (Number(f[11]) + Number(f[12])) / 100; };
       const end = Date.now() + 10_000;
       while (cpu() < 0.3 && Date.now() < end);`,
      { eval: true },
    );
    await new Promise((resolve) => spin.once('exit', resolve));
    const byName = cpuByThreadName(before, processCpu(process.pid));
    // The worker used 0.3 s of CPU and is gone; its time must not vanish with it.
    expect(byName[EXITED_THREADS] ?? 0).toBeGreaterThanOrEqual(0.25);
  });
});
