export const REQUEST_STATUSES = ['PENDING', 'PROCESSING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
export const IMAGE_STATUSES = ['PENDING', 'PROCESSING', 'DONE', 'FAILED', 'CANCELLED'] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

export const IMAGE_ERROR_CODES = [
  'BLOCKED_ADDRESS',
  'DOWNLOAD_TIMEOUT',
  'HTTP_ERROR',
  'NETWORK_ERROR',
  'TOO_LARGE',
  'TOO_MANY_PIXELS',
  'UNSUPPORTED_FORMAT',
  'DECODE_ERROR',
] as const;
export type ImageErrorCode = (typeof IMAGE_ERROR_CODES)[number];

export function hasEnded(status: RequestStatus): boolean {
  return status === 'COMPLETED' || status === 'FAILED' || status === 'CANCELLED';
}

export interface Progress {
  total: number;
  done: number;
  failed: number;
  cancelled: number;
  pending: number;
}

export function progressOf(counts: { total: number; done: number; failed: number; cancelled: number }): Progress {
  const { total, done, failed, cancelled } = counts;
  return { total, done, failed, cancelled, pending: total - done - failed - cancelled };
}
