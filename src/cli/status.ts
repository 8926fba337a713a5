import { CONNECTION_HELP, CONNECTION_OPTIONS, HELP_OPTION, connect, expectPositionals, parseCommand } from './args.ts';
import type { SqueezeClient } from './client.ts';
import { describeProgress, type Command, type Progress } from './command.ts';
import { CliError, EXIT } from './errors.ts';

const OPTIONS = { ...CONNECTION_OPTIONS, ...HELP_OPTION, json: { type: 'boolean' } } as const;

const STATUS = `query Status($id: ID!) {
  request(id: $id) {
    id status createdAt startedAt completedAt webhookUrl
    progress { total done failed cancelled pending }
    outputCsvUrl
  }
}`;

export interface RequestState {
  id: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  webhookUrl: string | null;
  progress: Progress;
  outputCsvUrl: string | null;
}

export const status: Command = {
  name: 'status',
  summary: "show a request's status, progress counts and output CSV URL",
  help: `Usage: squeeze status <id> [--json]

Shows a request's status, its image counts and, once it has ended, the output CSV's URL.

Options:
  --json           print the request as JSON: id, status, createdAt, startedAt, completedAt,
                   webhookUrl, progress { total done failed cancelled pending }, outputCsvUrl

${CONNECTION_HELP}

Exits 0, or 3 when there is no request with that id.`,

  async run(args) {
    const { values, positionals } = parseCommand('status', args, OPTIONS);
    if (values.help) {
      process.stdout.write(`${status.help}\n`);
      return EXIT.OK;
    }
    const [id] = expectPositionals('status', positionals, ['id']);
    const client = connect('status', values);
    const request = await getRequest(client, id!);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(request, null, 2)}\n`);
      return EXIT.OK;
    }
    const rows: [string, string][] = [
      ['Request', request.id],
      ['Status', request.status],
      ['Images', describeProgress(request.progress)],
      ['Created', request.createdAt],
      ['Started', request.startedAt ?? (request.status === 'PENDING' ? 'not yet (uploaded with --no-start)' : '-')],
      ['Ended', request.completedAt ?? '-'],
      ...(request.webhookUrl ? ([['Webhook', request.webhookUrl]] as [string, string][]) : []),
      ['Output CSV', request.outputCsvUrl ?? 'not yet: written when the request ends'],
    ];
    process.stdout.write(rows.map(([label, value]) => `${label.padEnd(11)} ${value}\n`).join(''));
    return EXIT.OK;
  },
};

/** The request, or a CliError (exit 3) naming the id and the server when there is none. */
export async function getRequest(client: SqueezeClient, id: string): Promise<RequestState> {
  const { request } = await client.query<{ request: RequestState | null }>(STATUS, { id });
  if (!request) throw new CliError(EXIT.NOT_FOUND, `no request with id "${id}" on ${client.server}`);
  return request;
}
