import {
  createSourceEventStream,
  execute,
  print,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
} from 'graphql';
import { isAsyncIterable, type Plugin } from 'graphql-yoga';

export interface SharedSubscriptionResultsOptions<TContext> {
  /**
   * The object one source event shares with every subscriber it reaches, or undefined when the payload
   * is this subscriber's own (a snapshot): a result is shared only between payloads naming the same object.
   */
  sharedEventOf(payload: unknown): object | undefined;
  /**
   * What in the context can change a result. Subscribers whose contexts give different strings never
   * share a result; a context that holds nothing per caller gives ''.
   */
  contextKey(context: TContext): string;
  /**
   * Told how each event's result was had: executed for the first subscriber of a shared event, reused
   * for every other, own for a payload nobody shares.
   */
  observe?(outcome: 'executed' | 'reused' | 'own'): void;
  /**
   * The transport's own writer for this subscription, if it has one (see DirectWriter); the args are
   * the ones the transport gave to the enveloped subscribe.
   */
  directWriterOf?(args: ExecutionArgs): DirectWriter | undefined;
}

/**
 * A transport that writes a subscriber's messages itself (graphqlWebSocket.ts) can take the shared results
 * without errors straight from here, past the envelope's per-result hooks: with 1 000 subscribers those
 * hooks (error masking, the only one this app has, which leaves a result without errors as it is) made
 * about a dozen promises per (subscriber, event) for nothing. Results with errors, and each subscriber's
 * own results (its snapshot), still go through every hook to the transport as usual; one subscriber's
 * results are written one at a time and in order either way, since the next event is pulled only once
 * the previous result is written. A plugin whose per-result hook changes results WITHOUT errors would be
 * skipped for shared results: do not give directWriterOf to this plugin in an app that has one.
 */
export interface DirectWriter {
  /** Writes a `next` for the result, then calls written (with the error if the write failed). */
  write(result: ExecutionResult, written: (error?: Error) => void): void;
}

/** A result per (operation, variables, context key), for one shared event. */
type ResultsOfEvent = Map<string, Promise<ExecutionResult> | ExecutionResult>;

/**
 * Executes a subscription's selection once per shared source event and hands the same ExecutionResult
 * to every subscriber with the same document, operation, variables and context key. Without it, graphql
 * executed the selection for each subscriber separately: with 1 000 subscribers to one request, 63–76 µs
 * of main-thread CPU per (subscriber, event) delivery, most of it that execution; with it (and the
 * iterator in requestProgress and the direct writes in graphqlWebSocket.ts), 29–32 µs, of which the
 * socket write itself is about half (bench:progress, before and after run alternately on one machine).
 *
 * It replaces the engine's subscribe for subscription operations (graphql-js createSourceEventStream, then
 * a memoised graphql-js execute per event, as graphql-js's own subscribe does); the result then goes
 * through every later hook as before, error masking included, so errors read exactly as they did.
 * Errors raised before the subscribe resolver ran (bad variables) are left to the engine's subscribe,
 * which words them its own way. Results are kept in a WeakMap keyed by the shared event, so they go when
 * the last subscriber has let go of the event.
 */
export function sharedSubscriptionResultsPlugin<TContext extends object>(options: SharedSubscriptionResultsOptions<TContext>): Plugin<TContext> {
  const resultsByEvent = new WeakMap<object, ResultsOfEvent>();
  const documentText = new WeakMap<DocumentNode, string>();

  const operationKey = (args: ExecutionArgs): string => {
    let text = documentText.get(args.document);
    if (text === undefined) documentText.set(args.document, (text = print(args.document)));
    // JSON.stringify gives distinct strings to distinct values (variables arrive as JSON); the parts are
    // themselves JSON strings, so no two different triples join into one key.
    return JSON.stringify([text, args.operationName ?? null, args.variableValues ?? null, options.contextKey(args.contextValue as TContext)]);
  };

  const resultFor = (args: ExecutionArgs, key: string, payload: unknown, event: object | undefined) => {
    if (!event) {
      options.observe?.('own');
      return execute({ ...args, rootValue: payload });
    }
    let results = resultsByEvent.get(event);
    if (!results) resultsByEvent.set(event, (results = new Map()));
    let result = results.get(key);
    if (result) {
      options.observe?.('reused');
      return result;
    }
    options.observe?.('executed');
    results.set(key, (result = execute({ ...args, rootValue: payload })));
    return result;
  };

  return {
    onSubscribe({ subscribeFn: engineSubscribe, setSubscribeFn }) {
      setSubscribeFn(async (args) => {
        const stream = await createSourceEventStream(args);
        if (!isAsyncIterable(stream)) {
          // No error with a path means the resolver never ran: the engine reports it as it always has.
          if (stream.errors?.every((error) => !error.path)) return engineSubscribe(args);
          return stream;
        }
        const key = operationKey(args);
        const writer = options.directWriterOf?.(args);
        return mapEvents(stream[Symbol.asyncIterator](), (payload) => {
          const event = options.sharedEventOf(payload);
          return { result: resultFor(args, key, payload, event), direct: writer && event ? writer : undefined };
        });
      });
    },
  };
}

/**
 * Maps a source stream's events to results, one at a time; closing it closes the source. A result that
 * comes with a direct writer and has no errors is written by that writer, and the next event is pulled
 * once it is written, all inside one pending `next`. Written with callbacks rather than async/await: it
 * runs once per (subscriber, event), and every async step was another promise and resumption.
 */
function mapEvents<T>(
  source: AsyncIterator<T>,
  map: (event: T) => { result: Promise<ExecutionResult> | ExecutionResult; direct: DirectWriter | undefined },
): AsyncIterableIterator<ExecutionResult> {
  const close = async () => {
    await source.return?.();
  };
  const DONE: IteratorResult<ExecutionResult> = { done: true, value: undefined };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      return new Promise<IteratorResult<ExecutionResult>>((resolve, reject) => {
        const fail = (error: unknown) => {
          void close().then(
            () => reject(error),
            () => reject(error),
          );
        };
        const pull = () => void source.next().then(onStep, reject);
        const written = (error?: Error) => (error ? fail(error) : pull());
        const onStep = (step: IteratorResult<T>) => {
          if (step.done) return resolve(DONE);
          let mapped: ReturnType<typeof map>;
          try {
            mapped = map(step.value);
          } catch (error) {
            return fail(error);
          }
          const { result, direct } = mapped;
          const take = (value: ExecutionResult) => {
            if (direct && !value.errors) direct.write(value, written);
            else resolve({ done: false, value });
          };
          if (result instanceof Promise) result.then(take, fail);
          else take(result);
        };
        pull();
      });
    },
    async return() {
      await close();
      return DONE;
    },
    async throw(error: unknown) {
      await close();
      throw error;
    },
  };
}
