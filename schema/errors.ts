import { createGraphQLError } from 'graphql-yoga';
import { ServiceError } from '../src/errors.ts';
import type { CsvProblem } from '../src/ingest/parseProductCsv.ts';
import { builder } from './builder.ts';

export interface CsvInvalid {
  kind: 'CsvInvalidError';
  message: string;
  code: string;
  problems: CsvProblem[];
}
export interface InvalidInput {
  kind: 'InvalidInputError';
  message: string;
  code: string;
  field: string | null;
}

export const ErrorInterface = builder.interfaceRef<{ message: string; code: string }>('Error').implement({
  description: 'An expected failure, returned as a value: `code` is stable, `message` is for people.',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.exposeString('code'),
  }),
});

const CsvProblemRef = builder.objectRef<CsvProblem>('CsvProblem').implement({
  description: 'One thing wrong in an uploaded CSV.',
  fields: (t) => ({
    line: t.exposeInt('line', { description: '1-based line number in the file' }),
    column: t.exposeString('column', { nullable: true, description: 'The header of the column, when the problem is in one cell' }),
    message: t.exposeString('message'),
  }),
});

export const CsvInvalidErrorRef = builder.objectRef<CsvInvalid>('CsvInvalidError').implement({
  description: 'The CSV breaks the rules; nothing was stored.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => (value as CsvInvalid).kind === 'CsvInvalidError',
  fields: (t) => ({
    problems: t.field({ type: [CsvProblemRef], resolve: (error) => error.problems }),
  }),
});

export const InvalidInputErrorRef = builder.objectRef<InvalidInput>('InvalidInputError').implement({
  description: 'An argument is wrong (`field` names it); nothing was stored.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => (value as InvalidInput).kind === 'InvalidInputError',
  fields: (t) => ({
    field: t.exposeString('field', { nullable: true }),
  }),
});

export function invalidInput(field: string | null, code: string, message: string): InvalidInput {
  return { kind: 'InvalidInputError', field, code, message };
}

/** Runs a service call and turns its expected failures into GraphQL errors with `extensions.code`. */
export async function withServiceErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ServiceError) throw createGraphQLError(error.message, { extensions: { code: error.code } });
    throw error;
  }
}

export function badRequest(message: string) {
  return createGraphQLError(message, { extensions: { code: 'BAD_REQUEST' } });
}

export function notFound(message: string) {
  return createGraphQLError(message, { extensions: { code: 'NOT_FOUND' } });
}
