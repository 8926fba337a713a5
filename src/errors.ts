/** An expected failure that reaches the client with its code (GraphQL `extensions.code`, REST status). */
export class ServiceError extends Error {
  override name = 'ServiceError';
  constructor(
    readonly code: 'NOT_FOUND' | 'BAD_REQUEST',
    message: string,
  ) {
    super(message);
  }
}
