import { BlockedAddressError, type AddressGuard } from '../net/addressGuard.ts';

/** Checks a webhook URL at upload: absolute http(s), and allowed by the network policy. */
export async function checkWebhookUrl(
  raw: string | null,
  guard: AddressGuard,
): Promise<{ code: 'INVALID_URL' | 'BLOCKED_ADDRESS'; message: string } | undefined> {
  if (raw === null || raw.trim() === '') return undefined;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    return { code: 'INVALID_URL', message: `webhookUrl must be an absolute http or https URL, got "${raw.slice(0, 200)}"` };
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
    return { code: 'INVALID_URL', message: `webhookUrl must be an absolute http or https URL, got "${raw.slice(0, 200)}"` };
  }
  try {
    await guard.resolve(url);
  } catch (error) {
    if (error instanceof BlockedAddressError) return { code: 'BLOCKED_ADDRESS', message: `webhookUrl is refused: ${error.message}` };
    // A name that does not resolve now may later; delivery checks it again.
  }
  return undefined;
}

export function checkCompressionOptions(options: {
  quality?: number | null;
  maxWidth?: number | null;
  maxHeight?: number | null;
}): { field: string; message: string } | undefined {
  const { quality, maxWidth, maxHeight } = options;
  if (quality !== null && quality !== undefined && (quality < 1 || quality > 100)) {
    return { field: 'options.quality', message: `quality must be from 1 to 100, got ${quality}` };
  }
  for (const [field, value] of [
    ['options.maxWidth', maxWidth],
    ['options.maxHeight', maxHeight],
  ] as const) {
    if (value !== null && value !== undefined && (value < 1 || value > 16_384)) {
      return { field, message: `${field.slice(8)} must be from 1 to 16384, got ${value}` };
    }
  }
  return undefined;
}
