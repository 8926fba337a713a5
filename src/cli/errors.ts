/** The CLI's exit codes; `squeeze --help` documents them. */
export const EXIT = {
  OK: 0,
  /** The request ended FAILED or CANCELLED. */
  ENDED_BADLY: 1,
  /** The CSV or an option was refused. */
  BAD_INPUT: 2,
  NOT_FOUND: 3,
  /** The request has not ended, so there is no output yet. */
  NOT_READY: 4,
  /** The server cannot be reached, refused the API key, or answered with an error. */
  SERVER: 5,
  USAGE: 64,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure to report to the user: `message` is printed on stderr and the process exits with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    /** Further lines printed after the message (e.g. every problem in a CSV). */
    readonly details: readonly string[] = [],
  ) {
    super(message);
  }
}

/** Wrong use of the command line: printed with a pointer to the command's --help. */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(
    message: string,
    /** The command whose help to point to; undefined for the top level. */
    readonly command?: string,
  ) {
    super(EXIT.USAGE, message);
  }
}
