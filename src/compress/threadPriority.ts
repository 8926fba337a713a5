/**
 * Compression is batch work; answering a status query or sending a progress event is interactive.
 * On a machine with as many compression threads as cores, libvips keeps every core busy, and the main
 * thread (HTTP, GraphQL, WebSocket, the database driver) got only its fair share of a core: with 50
 * clients polling status while a request was processing, p99 was 143 ms against 66 ms on an idle
 * server (npm run bench). Linux schedules threads, and a thread's nice value is its own, so the threads
 * libvips computes on ("libvips worker") are given a lower priority: they still use every idle cycle,
 * and yield the core whenever the main thread, the database or anything else has work.
 *
 * Raising a thread's nice value needs no privilege. libvips creates its workers lazily and new threads
 * inherit the nice value of the thread that creates them, so the threads are looked for again
 * periodically. Only Linux exposes threads this way; elsewhere this does nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const TASKS = '/proc/self/task';

/**
 * What earlier scans learned about threads, by thread id: 'done' for a thread handled for good (an image
 * thread given its nice value, or a thread seen under another name twice: a thread's name is set as it
 * starts), else how many scans saw it under another name. The periodic scan read every thread's name
 * each second (35 threads in a server: 140 system calls a second on its main thread); with this it
 * reads only new threads'.
 */
export type ThreadsSeen = Map<string, 'done' | number>;

/** Gives every "libvips worker" thread of this process at least `nice`; returns how many it changed. */
export function deprioritiseImageThreads(nice: number, seen?: ThreadsSeen): number {
  if (process.platform !== 'linux' || nice <= 0) return 0;
  let changed = 0;
  let tids: string[];
  try {
    tids = readdirSync(TASKS);
  } catch {
    return 0;
  }
  if (seen) {
    // Threads that ended are forgotten (their ids may come back, for new threads).
    const live = new Set(tids);
    for (const tid of seen.keys()) if (!live.has(tid)) seen.delete(tid);
  }
  for (const tid of tids) {
    const known = seen?.get(tid);
    if (known === 'done') continue;
    try {
      const name = readFileSync(`${TASKS}/${tid}/comm`, 'latin1').trim();
      if (!name.startsWith('libvips')) {
        const scans = (known ?? 0) + 1;
        seen?.set(tid, scans >= 2 ? 'done' : scans);
        continue;
      }
      const id = Number(tid);
      if (os.getPriority(id) < nice) {
        os.setPriority(id, nice);
        changed++;
      }
      seen?.set(tid, 'done');
    } catch {
      // The thread ended meanwhile, or the system refused: it keeps its priority (and is tried again).
    }
  }
  return changed;
}

/** Keeps image threads at `nice` until the returned function is called. */
export function keepImageThreadsDeprioritised(nice: number, everyMs = 1_000): () => void {
  if (process.platform !== 'linux' || nice <= 0) return () => undefined;
  const seen: ThreadsSeen = new Map();
  const timer = setInterval(() => deprioritiseImageThreads(nice, seen), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
