/**
 * BENCH_CPU_PROF=1: profiles a Squeeze child's main thread during one measured window, through the
 * inspector protocol (the child runs with --inspect=127.0.0.1:0), and summarises where the time went.
 */
import { writeFile } from 'node:fs/promises';
import WebSocket from 'ws';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A session on a child's inspector (the child runs with --inspect=127.0.0.1:0). */
export class InspectorSession {
  #socket: WebSocket;
  #nextId = 1;
  #pending = new Map<number, { resolve: (value: any) => void; reject: (error: Error) => void }>();

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
      const waiter = message.id === undefined ? undefined : this.#pending.get(message.id);
      if (!waiter) return;
      this.#pending.delete(message.id!);
      if (message.error) waiter.reject(new Error(message.error.message));
      else waiter.resolve(message.result);
    });
  }

  /** `output` is the child's stderr so far: it holds "Debugger listening on ws://…". */
  static async connect(output: () => string, timeoutMs = 10_000): Promise<InspectorSession> {
    const deadline = Date.now() + timeoutMs;
    let url: string | undefined;
    while (!(url = /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(output())?.[1])) {
      if (Date.now() > deadline) throw new Error('the child did not print its inspector URL');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return new InspectorSession(socket);
  }

  call(method: string, params: Record<string, unknown> = {}): Promise<any> {
    const id = this.#nextId++;
    this.#socket.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.#pending.set(id, { resolve, reject }));
  }

  async collectGarbage(): Promise<void> {
    await this.call('HeapProfiler.collectGarbage');
  }

  async memoryUsage(): Promise<NodeJS.MemoryUsage> {
    const answer = await this.call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true });
    return JSON.parse(answer.result.value as string) as NodeJS.MemoryUsage;
  }

  close(): void {
    this.#socket.close();
  }
}

/** CPU profiles of a child's main thread, through its inspector. */
export class Profiler {
  private constructor(private readonly session: InspectorSession) {}

  static async connect(output: () => string, timeoutMs = 10_000): Promise<Profiler> {
    const session = await InspectorSession.connect(output, timeoutMs);
    await session.call('Profiler.enable');
    await session.call('Profiler.setSamplingInterval', { interval: 500 });
    return new Profiler(session);
  }

  start(): Promise<void> {
    return this.session.call('Profiler.start');
  }

  async stop(): Promise<CpuProfile> {
    const { profile } = (await this.session.call('Profiler.stop')) as { profile: CpuProfile };
    return profile;
  }

  close(): void {
    this.session.close();
  }
}

/** Self time by package (node_modules/<name>, a project file, a node: module, or a VM state). */
export function summarise(profile: CpuProfile, top = 12): { totalMs: number; busyMs: number; byPackage: { name: string; ms: number }[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const byPackage = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    total += delta;
    if (!node) continue;
    const { url, functionName } = node.callFrame;
    let name: string;
    if (!url) name = functionName.startsWith('(') ? functionName : '(native)';
    else {
      const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
      name = match ? match[1]! : url.startsWith('node:') ? url.replace(/^node:internal\//, 'node:') : url.replace(/^file:\/\/.*?\/(src|schema|workers|drizzle)\//, '$1/');
    }
    byPackage.set(name, (byPackage.get(name) ?? 0) + delta);
  }
  const idle = byPackage.get('(idle)') ?? 0;
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round((total - idle) / 1000),
    byPackage: [...byPackage]
      .filter(([name]) => name !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: Math.round(us / 1000) })),
  };
}

export async function saveProfile(file: string, profile: CpuProfile): Promise<void> {
  await writeFile(file, JSON.stringify(profile));
}
