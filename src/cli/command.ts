/** What every command module exports. */
export interface Command {
  name: string;
  /** One line for the top-level command list. */
  summary: string;
  /** The text of `squeeze <name> --help`. */
  help: string;
  /**
   * Runs the command with the arguments after its name (global flags included). Resolves to the exit
   * code (serve: when the server has stopped).
   */
  run(args: string[]): Promise<number>;
}

import type { Progress } from '../statuses.ts';

export type { Progress };

export const ENDED_STATUSES = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

export function describeProgress(progress: Progress): string {
  const ended = progress.done + progress.failed + progress.cancelled;
  return `${ended} of ${progress.total} images ended (${progress.done} done, ${progress.failed} failed, ${progress.cancelled} cancelled, ${progress.pending} pending)`;
}
