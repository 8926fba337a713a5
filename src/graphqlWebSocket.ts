import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { GraphQLContext } from './services.ts';

/** The app's Yoga: HTTP requests arrive with the Node request and response (and a streamed upload). */
export type SqueezeYoga = YogaServerInstance<{ req: IncomingMessage; res: ServerResponse; uploadBody?: unknown }, GraphQLContext>;

/** Yoga's enveloped execute and subscribe, which travel to graphql-ws in rootValue (Yoga's recipe). */
interface EnvelopedRoot {
  execute(args: ExecutionArgs): unknown;
  subscribe(args: ExecutionArgs): Promise<AsyncIterable<ExecutionResult> | ExecutionResult> | AsyncIterable<ExecutionResult> | ExecutionResult;
}

/**
 * GraphQL over WebSocket (the graphql-ws protocol) through Yoga's envelope, so both transports share one
 * schema, one context and every plugin: auth in `canConnect` (graphql-ws closes the socket with 4403
 * when it says no), parsing, validation, masking.
 *
 * graphql-ws still does everything but one thing: a subscription's `next` messages are written here.
 * graphql-ws pulled each result itself, copied it, awaited an onNext hook, validated the message and
 * JSON-stringified it, for each subscriber: 7.7 µs of main-thread self time per delivery in a profiled
 * bench:progress run (1 207 ms for 156 244). Here every subscriber sharing a result (see
 * sharedSubscriptionResultsPlugin) shares its JSON too, and the message is that JSON with the id around
 * it, byte for byte what graphql-ws would send. graphql-ws gets an iterator that yields nothing and ends
 * when the results end (then it sends `complete`) or fails when they fail (then it sends `error`); its
 * return (the client's `complete`, a closed socket) stops the writing. So graphql-ws's onNext hook and
 * jsonMessageReplacer never see these messages: set neither here without moving them into writeNexts.
 */
export function serveGraphqlWebSocket(
  wss: WebSocketServer,
  yoga: SqueezeYoga,
  canConnect: (connectionParams: Readonly<Record<string, unknown>> | undefined) => boolean,
) {
  // graphql-ws hands the object onSubscribe returned to subscribe: that is how subscribe finds its socket.
  const targets = new WeakMap<object, { socket: WebSocket; id: string }>();
  return useServer(
    {
      execute: ((args: ExecutionArgs & { rootValue: EnvelopedRoot }) => args.rootValue.execute(args)) as never,
      subscribe: (async (args: ExecutionArgs & { rootValue: EnvelopedRoot }) => {
        const results = await args.rootValue.subscribe(args);
        const target = targets.get(args);
        if (!target || !isAsyncIterable(results)) return results;
        return writeNexts(results, target.socket, target.id);
      }) as never,
      onConnect: (ctx) => canConnect(ctx.connectionParams),
      onSubscribe: async (ctx, id, params) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
        });
        const args = {
          schema,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        targets.set(args, { socket: ctx.extra.socket, id });
        return args;
      },
    },
    wss,
  );
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<ExecutionResult> =>
  typeof value === 'object' && value !== null && Symbol.asyncIterator in value;

/** The JSON of a result's `next` payload, made once per result object however many subscribers it reaches. */
const payloads = new WeakMap<ExecutionResult, string>();
function payloadJson(result: ExecutionResult): string {
  let json = payloads.get(result);
  if (json === undefined) {
    // graphql-ws's own shape: the result without errors, then the errors (if any) as JSON.
    const { errors, ...rest } = result;
    json = JSON.stringify(errors ? { ...rest, errors: errors.map((error) => error.toJSON()) } : rest);
    payloads.set(result, json);
  }
  return json;
}

/** graphql-ws's own send on ws: nothing once the socket is no longer open; settles when the frame is written. */
function send(socket: WebSocket, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.readyState !== socket.OPEN) return resolve();
    socket.send(data, (error) => (error ? reject(error) : resolve()));
  });
}

/**
 * Writes each result as a `next` message, one at a time (the next result is pulled once the frame is
 * written, so a slow socket still holds its subscriber back and progress coalesces for it).
 */
function writeNexts(results: AsyncIterable<ExecutionResult>, socket: WebSocket, id: string): AsyncIterableIterator<never> {
  const source = results[Symbol.asyncIterator]();
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  let closed = false;
  let writing: Promise<IteratorResult<never>> | undefined;
  const write = async (): Promise<IteratorResult<never>> => {
    while (!closed) {
      const step = await source.next();
      if (step.done || closed) break;
      try {
        await send(socket, prefix + payloadJson(step.value) + '}');
      } catch (error) {
        // As a for await loop would: a failed write closes the results before the error goes up.
        closed = true;
        await source.return?.();
        throw error;
      }
    }
    closed = true;
    return { done: true, value: undefined };
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next: () => (writing ??= write()),
    async return() {
      if (!closed) {
        closed = true;
        await source.return?.();
      }
      return { done: true, value: undefined };
    },
  };
}
