import { rename, rm } from 'node:fs/promises';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { CONNECTION_HELP, CONNECTION_OPTIONS, HELP_OPTION, connect, expectPositionals, parseCommand } from './args.ts';
import { describeProgress, type Command } from './command.ts';
import { CliError, EXIT, UsageError } from './errors.ts';
import { getRequest } from './status.ts';

const OPTIONS = { ...CONNECTION_OPTIONS, ...HELP_OPTION, output: { type: 'string', short: 'o' } } as const;

export const download: Command = {
  name: 'download',
  summary: "download a request's output CSV (to stdout, or a file with -o)",
  help: `Usage: squeeze download <id> [-o out.csv]

Downloads the output CSV of a request that has ended: one row per input row, with the columns
S. No., Product Name, Input Image Urls and Output Image Urls.

Options:
  -o, --output FILE   write the CSV to FILE instead of stdout

${CONNECTION_HELP}

Exits 0, 3 when there is no request with that id, or 4 when the request has not ended yet
(the output CSV is written when it ends).`,

  async run(args) {
    const { values, positionals } = parseCommand('download', args, OPTIONS);
    if (values.help) {
      process.stdout.write(`${download.help}\n`);
      return EXIT.OK;
    }
    const [id] = expectPositionals('download', positionals, ['id']);
    if (values.output !== undefined && values.output.trim() === '') throw new UsageError('-o needs a file name', 'download');
    const client = connect('download', values);
    const request = await getRequest(client, id!);
    if (!request.outputCsvUrl) {
      const why =
        request.status === 'PENDING' && !request.startedAt
          ? 'it has not been started (it was uploaded with --no-start)'
          : `it is ${request.status}, ${describeProgress(request.progress)}`;
      throw new CliError(EXIT.NOT_READY, `request ${request.id} has no output CSV yet: ${why}. The output CSV is written when the request ends; check with: squeeze status ${request.id}`);
    }

    const response = await client.fetchFile(request.outputCsvUrl);
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    if (values.output === undefined) {
      await pipeline(body, process.stdout, { end: false });
      return EXIT.OK;
    }
    // Written beside the target and renamed, so a failed download never leaves half a CSV behind.
    const partial = `${values.output}.part-${process.pid}`;
    try {
      await pipeline(body, createWriteStream(partial));
      await rename(partial, values.output);
    } catch (error) {
      await rm(partial, { force: true });
      throw new CliError(EXIT.SERVER, `cannot save the output CSV to ${values.output}: ${(error as Error).message}`);
    }
    process.stderr.write(`Saved the output CSV of request ${request.id} (${request.status}) to ${values.output}\n`);
    return EXIT.OK;
  },
};
