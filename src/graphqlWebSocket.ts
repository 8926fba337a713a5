import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ExecutionArgs, ExecutionResult } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import type { WebSocket, WebSocketServer } from 'ws';
import type { DirectWriter } from '../schema/sharedSubscriptionResults.ts';
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
 * it, byte for byte what graphql-ws would send. Shared results without errors are handed to the
 * subscription's writer by that plugin directly (directNextWriterOf); the rest come through the envelope
 * to writeNexts. graphql-ws gets an iterator that yields nothing and ends when the results end (then it
 * sends `complete`) or fails when they fail (then it sends `error`); its return (the client's `complete`,
 * a closed socket) stops the writing. So graphql-ws's onNext hook and jsonMessageReplacer never see these
 * messages: set neither here without moving them into nextWriter.
 *
 * With the direct writes (bench:progress, 1 000 subscribers × 300 images, quiet machine): main-thread
 * CPU per delivery 22.9 → 17.1 µs in profiled runs, 14–18 µs unprofiled, where the kernel's loopback
 * write is about 10 µs; the delay p99 went from 87–143 ms (three runs) to 58–94 ms (eleven runs).
 */
export function serveGraphqlWebSocket(
  wss: WebSocketServer,
  yoga: SqueezeYoga,
  canConnect: (connectionParams: Readonly<Record<string, unknown>> | undefined) => boolean,
) {
  return useServer(
    {
      execute: ((args: ExecutionArgs & { rootValue: EnvelopedRoot }) => args.rootValue.execute(args)) as never,
      subscribe: (async (args: ExecutionArgs & { rootValue: EnvelopedRoot }) => {
        const results = await args.rootValue.subscribe(args);
        const writer = writers.get(args);
        if (!writer || !isAsyncIterable(results)) return results;
        return writeNexts(results, writer);
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
        writers.set(args, nextWriter(ctx.extra.socket, id));
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

/**
 * The subscriptions this module writes for, by the execution args graphql-ws hands to subscribe (the
 * object onSubscribe returned): how subscribe, and sharedSubscriptionResultsPlugin through
 * directNextWriterOf, find the socket and id.
 */
const writers = new WeakMap<object, NextWriter>();

/** The writer of a WebSocket subscription's `next` messages, for sharedSubscriptionResultsPlugin. */
export const directNextWriterOf = (args: ExecutionArgs): DirectWriter | undefined => writers.get(args);

interface NextWriter extends DirectWriter {
  readonly socket: WebSocket;
}

/**
 * Writes a subscription's `next` messages on its socket, as graphql-ws's own send does: nothing once the
 * socket is no longer open; `written` is called once the frame is written.
 */
function nextWriter(socket: WebSocket, id: string): NextWriter {
  const prefix = `{"id":${JSON.stringify(id)},"type":"next","payload":`;
  return {
    socket,
    write(result, written) {
      if (socket.readyState !== socket.OPEN) return written();
      socket.send(prefix + payloadJson(result) + '}', written);
    },
  };
}

/**
 * Writes each result as a `next` message, one at a time: the next result is pulled once the frame is
 * written (ws's write callback), so a slow socket still holds its subscriber back and progress coalesces
 * for it.
 *
 * A loop of callbacks, not an async function awaiting a promise per message: this ran once per
 * (subscriber, event), and the promise, its callback and the async resumption were about 3 µs of the
 * 24 µs of main-thread CPU per delivery in a profiled bench:progress run. (Shared results without errors
 * no longer come this way: sharedSubscriptionResultsPlugin writes them with the same writer.)
 */
function writeNexts(results: AsyncIterable<ExecutionResult>, writer: NextWriter): AsyncIterableIterator<never> {
  const source = results[Symbol.asyncIterator]();
  const DONE: IteratorResult<never> = { done: true, value: undefined };
  let closed = false;
  let writing: Promise<IteratorResult<never>> | undefined;

  const write = () =>
    new Promise<IteratorResult<never>>((resolve, reject) => {
      const fail = (error: unknown) => {
        // As a for await loop would: a failed write closes the results before the error goes up.
        closed = true;
        Promise.resolve(source.return?.()).then(
          () => reject(error),
          () => reject(error),
        );
      };
      const pull = () => {
        if (closed) return resolve(DONE);
        source.next().then(onStep, (error: unknown) => {
          closed = true;
          reject(error);
        });
      };
      const written = (error?: Error) => (error ? fail(error) : pull());
      const onStep = (step: IteratorResult<ExecutionResult>) => {
        if (step.done || closed) {
          closed = true;
          return resolve(DONE);
        }
        writer.write(step.value, written);
      };
      pull();
    });

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
      return DONE;
    },
  };
}
