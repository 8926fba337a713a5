/**
 * Shows a request's progress on stderr: a bar redrawn in place on a terminal, or a plain line per
 * change when stderr is a file or a pipe (logs, CI).
 */
import { describeProgress, type Progress } from './command.ts';

export interface ProgressDisplay {
  update(status: string, progress: Progress): void;
  /** A line of its own (e.g. an image that failed), printed above the bar. */
  note(line: string): void;
  /** Ends the bar's line. */
  finish(): void;
}

export function createProgressDisplay(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  const tty = stream.isTTY === true;
  let last = '';

  if (!tty) {
    return {
      update(status, progress) {
        const line = `${status}: ${describeProgress(progress)}`;
        if (line === last) return;
        last = line;
        stream.write(`${line}\n`);
      },
      note: (line) => stream.write(`${line}\n`),
      finish: () => undefined,
    };
  }

  return {
    update(status, progress) {
      const ended = progress.done + progress.failed + progress.cancelled;
      const text = ` ${ended}/${progress.total} images · ${progress.done} done · ${progress.failed} failed · ${status}`;
      const width = Math.max(10, Math.min(40, (stream.columns ?? 80) - text.length - 3));
      const filled = progress.total === 0 ? width : Math.round((ended / progress.total) * width);
      const line = `[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]${text}`;
      if (line === last) return;
      last = line;
      stream.write(`\r${line}\x1b[K`);
    },
    note(line) {
      stream.write(`\r\x1b[K${line}\n${last}`);
    },
    finish() {
      if (last) stream.write('\n');
      last = '';
    },
  };
}
