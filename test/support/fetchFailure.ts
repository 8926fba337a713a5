import { expect } from 'vitest';
import { FetchFailure } from '../../src/net/safeFetch.ts';

/** The FetchFailure a download rejects with (the test fails when it resolves, or rejects with anything else). */
export async function failure(promise: Promise<unknown>): Promise<FetchFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(FetchFailure);
  return error as FetchFailure;
}
