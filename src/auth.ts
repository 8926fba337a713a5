import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Checks API keys in constant time: each key is compared as a SHA-256 digest, so neither the length nor
 * the content of a wrong key changes how long the comparison takes. With no keys configured, all pass.
 */
export function createKeyCheck(keys: readonly string[]) {
  const digests = keys.map((key) => createHash('sha256').update(key).digest());
  const matches = (presented: string | undefined): boolean => {
    if (digests.length === 0) return true;
    if (!presented) return false;
    const digest = createHash('sha256').update(presented).digest();
    let ok = false;
    for (const known of digests) ok = timingSafeEqual(known, digest) || ok;
    return ok;
  };
  return {
    enabled: digests.length > 0,
    /** `Authorization: Bearer <key>` on an HTTP request. */
    checkHeaders(headers: IncomingHttpHeaders): boolean {
      return matches(bearer(headers.authorization));
    },
    /** The graphql-ws `connection_init` payload: `{ authorization: 'Bearer <key>' }` or `{ apiKey: '<key>' }`. */
    checkConnectionParams(params: Readonly<Record<string, unknown>> | undefined): boolean {
      const authorization = params?.authorization ?? params?.Authorization;
      const presented = typeof authorization === 'string' ? bearer(authorization) : typeof params?.apiKey === 'string' ? params.apiKey : undefined;
      return matches(presented);
    },
  };
}

function bearer(value: string | undefined): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(value?.trim() ?? '');
  return match?.[1]?.trim();
}
