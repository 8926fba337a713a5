import type { IncomingMessage, ServerResponse } from 'node:http';
import { getOperationAST, type ExecutionResult } from 'graphql';
import { createGraphQLError, type YogaServerInstance } from 'graphql-yoga';

/**
 * The short way for the call clients make most: a JSON POST of one `query` operation, polled while a
 * request runs. Yoga answers it through a fetch-API layer (a Request and a Response object, header
 * objects, promise helpers, its parameter and accept checks), which cost more of the main thread than
 * the query itself; here the same enveloped parse, validate (graphql-armor's limits included),
 * context and execute (the page budget included) run on the Node request directly.
 * `request` query from 50 clients while a request is processing (npm run bench): see README's
 * Benchmarks for the figures before and after.
 *
 * Only the plain case takes it: every other call, and any whose outcome is not a clean result (a
 * parse or validation error, a mutation, a subscription, an error in the result), is handed to Yoga
 * with the body already parsed, so Yoga's own answers (status codes, error masking, formats) stay the
 * only ones. Queries change nothing, so one that Yoga runs again after an error here does no harm.
 */

/** What Yoga gets when the fast path declines: the parsed body, or the error Yoga gives for a body that is not JSON. */
export type ParsedJsonBody = { params: unknown } | { error: Error };

/** True when the request may take the fast path, judged from its method and headers alone. */
export function isPlainJsonQueryCall(req: IncomingMessage): boolean {
  if (req.method !== 'POST') return false;
  if (mediaType(req.headers['content-type']) !== 'application/json') return false;
  // Browsers send Origin: Yoga's CORS handling answers those.
  if (req.headers.origin !== undefined) return false;
  // Yoga's answer for these is application/json; other accept lists may choose another format.
  const accept = mediaType(req.headers.accept);
  return accept === '' || accept === '*/*' || accept === 'application/json';
}

function mediaType(header: string | undefined): string {
  if (header === undefined) return '';
  const semicolon = header.indexOf(';');
  return (semicolon === -1 ? header : header.slice(0, semicolon)).trim().toLowerCase();
}

/** Reads a request body of at most `limit` bytes; undefined when it is longer. */
export async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8');
}

export function parseJsonBody(text: string): ParsedJsonBody {
  try {
    return { params: JSON.parse(text) };
  } catch (error) {
    // Worded as Yoga's fetch layer words it (@whatwg-node/node-fetch Body.json()).
    if (error instanceof SyntaxError) error.message += `, "${text}" is not valid JSON`;
    return { error: error as Error };
  }
}

/** The parameters Yoga's JSON parser would have made of `body`, or the error it would have thrown. */
export function yogaParamsOf(body: ParsedJsonBody): unknown {
  // As graphql-yoga's post-json parser words them (plugins/request-parser/post-json.js).
  const badRequest = (message: string) => createGraphQLError(message, { extensions: { http: { status: 400 }, code: 'BAD_REQUEST' } });
  if ('error' in body) {
    throw createGraphQLError('POST body sent invalid JSON.', {
      extensions: {
        http: { spec: true, status: 400 },
        code: 'BAD_REQUEST',
        originalError: { name: body.error.name, message: body.error.message },
      },
    });
  }
  if (body.params == null) throw badRequest(`POST body is expected to be object but received ${body.params}`);
  if (typeof body.params !== 'object') throw badRequest(`POST body is expected to be object but received ${typeof body.params}`);
  return body.params;
}

interface QueryParams {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
  extensions?: Record<string, unknown> | null;
}

const PARAM_KEYS = new Set(['query', 'variables', 'operationName', 'extensions']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The shapes Yoga's parameter check accepts without a word; anything else goes to Yoga for its error. */
function plainParams(params: unknown): QueryParams | undefined {
  if (!isObject(params) || typeof params.query !== 'string') return undefined;
  for (const key in params) if (!PARAM_KEYS.has(key)) return undefined;
  const { variables, operationName, extensions } = params;
  if (variables != null && !isObject(variables)) return undefined;
  if (operationName != null && typeof operationName !== 'string') return undefined;
  if (extensions != null && !isObject(extensions)) return undefined;
  return params as unknown as QueryParams;
}

/**
 * Answers `params` when it is one query operation that runs without errors, and returns true; returns
 * false, having written nothing, for everything Yoga should answer.
 */
export async function answerPlainQuery<Server extends object, Context extends object>(
  yoga: YogaServerInstance<Server, Context>,
  serverContext: Server,
  params: unknown,
  res: ServerResponse,
): Promise<boolean> {
  const query = plainParams(params);
  if (!query) return false;
  let result: ExecutionResult;
  try {
    const enveloped = yoga.getEnveloped({ ...serverContext, params: query } as Parameters<typeof yoga.getEnveloped>[0]);
    const document = enveloped.parse(query.query);
    if (enveloped.validate(enveloped.schema, document).length > 0) return false;
    if (getOperationAST(document, query.operationName)?.operation !== 'query') return false;
    const contextValue = await enveloped.contextFactory();
    const outcome = await enveloped.execute({
      schema: enveloped.schema,
      document,
      contextValue,
      variableValues: query.variables,
      operationName: query.operationName,
    });
    if (Symbol.asyncIterator in outcome) return false;
    result = outcome;
  } catch {
    return false;
  }
  if (result.errors?.length || result.extensions !== undefined) return false;
  const text = JSON.stringify({ data: result.data });
  res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return true;
}
