/** Talking to Squeeze: GraphQL over fetch, CSV uploads (multipart request spec), progress over graphql-ws. */
import { createClient, type Client } from 'graphql-ws';

// The server's own definitions (types only: nothing of the server's code goes into the page).
export type { ImageStatus, Progress, RequestStatus } from '../statuses.ts';
import type { ImageStatus, Progress, RequestStatus } from '../statuses.ts';
export type OutputFormat = 'JPEG' | 'WEBP' | 'AVIF' | 'PNG';

export interface RequestSummary {
  id: string;
  status: RequestStatus;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  webhookUrl: string | null;
  outputCsvUrl: string | null;
  /** A CSV of the failed images with their errors; set at the end when some failed. */
  errorsCsvUrl: string | null;
  /** Bytes in and out over the images that are DONE. */
  inputBytes: number;
  outputBytes: number;
  savedPercent: number | null;
  progress: Progress;
}

export interface ImageInfo {
  id: string;
  position: number;
  inputUrl: string;
  outputUrl: string | null;
  status: ImageStatus;
  attempts: number;
  inputBytes: number | null;
  outputBytes: number | null;
  width: number | null;
  height: number | null;
  format: string | null;
  error: { code: string; message: string } | null;
}

export interface ProductInfo {
  id: string;
  serialNumber: number;
  productName: string;
  images: ImageInfo[];
}

export interface ProductPage {
  totalCount: number;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
  edges: { node: ProductInfo }[];
}

export interface ProgressEvent {
  requestId: string;
  status: RequestStatus;
  progress: Progress;
  image: ImageInfo | null;
}

export interface CsvProblem {
  line: number;
  column: string | null;
  message: string;
}

export type UploadResult =
  | { __typename: 'UploadCsvSuccess'; request: RequestSummary }
  | { __typename: 'CsvInvalidError'; code: string; message: string; problems: CsvProblem[] }
  | { __typename: 'InvalidInputError'; code: string; message: string; field: string | null };

export interface UploadVariables {
  webhookUrl: string | null;
  options: { quality: number; format: OutputFormat; maxWidth: number | null; maxHeight: number | null };
}

export const ENDED: ReadonlySet<RequestStatus> = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

export const REQUEST_FIELDS = `id status createdAt startedAt completedAt webhookUrl outputCsvUrl errorsCsvUrl inputBytes outputBytes savedPercent progress { total done failed cancelled pending }`;
export const IMAGE_FIELDS = `id position inputUrl outputUrl status attempts inputBytes outputBytes width height format error { code message }`;

const UPLOAD_MUTATION = `mutation UploadCsv($file: Upload!, $webhookUrl: String, $options: CompressionOptions) {
  uploadCsv(file: $file, webhookUrl: $webhookUrl, options: $options) {
    __typename
    ... on UploadCsvSuccess { request { ${REQUEST_FIELDS} } }
    ... on CsvInvalidError { code message problems { line column message } }
    ... on InvalidInputError { code message field }
  }
}`;

// ── API key ──────────────────────────────────────────────────────────────────────────────────────

const KEY_STORAGE = 'squeeze.apiKey';

export function getApiKey(): string | null {
  try {
    return localStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function setApiKey(key: string | null): void {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lasts until the page closes
  }
  resetSocket();
}

function authHeaders(): Record<string, string> {
  const key = getApiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Thrown (after the key form is asked for) when Squeeze answers 401 or closes the socket with 4403. */
export class AuthRequiredError extends Error {
  constructor() {
    super('An API key is required');
    this.name = 'AuthRequiredError';
  }
}

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'GraphQLRequestError';
  }
}

type AuthListener = () => void;
const authListeners = new Set<AuthListener>();

/** Called whenever a call is refused for want of a (valid) key. */
export function onAuthRequired(listener: AuthListener): void {
  authListeners.add(listener);
}

function authRequired(): AuthRequiredError {
  for (const listener of authListeners) listener();
  return new AuthRequiredError();
}

// ── GraphQL over HTTP ────────────────────────────────────────────────────────────────────────────

interface GraphQLBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

function unwrap<T>(status: number, body: GraphQLBody<T> | null): T {
  const error = body?.errors?.[0];
  if (error) throw new GraphQLRequestError(error.message, error.extensions?.code);
  if (!body?.data) throw new Error(status >= 400 ? `Squeeze answered HTTP ${status}` : 'Squeeze sent an empty answer');
  return body.data;
}

export async function graphql<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
  let response: Response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new Error('Squeeze cannot be reached');
  }
  if (response.status === 401) throw authRequired();
  const body = (await response.json().catch(() => null)) as GraphQLBody<T> | null;
  return unwrap(response.status, body);
}

/**
 * Uploads a CSV through the GraphQL multipart request spec (operations, map, then the file), with the
 * CSRF header Squeeze asks of multipart requests. XMLHttpRequest rather than fetch: it reports upload progress.
 */
export function uploadCsv(file: File, variables: UploadVariables, onProgress: (fraction: number) => void): Promise<UploadResult> {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.set('operations', JSON.stringify({ query: UPLOAD_MUTATION, variables: { ...variables, file: null } }));
    form.set('map', JSON.stringify({ 0: ['variables.file'] }));
    form.set('0', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/graphql');
    xhr.setRequestHeader('x-graphql-yoga-csrf', '1');
    xhr.setRequestHeader('accept', 'application/graphql-response+json, application/json');
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status === 401) return reject(authRequired());
      let body: GraphQLBody<{ uploadCsv: UploadResult }> | null = null;
      try {
        body = JSON.parse(xhr.responseText) as GraphQLBody<{ uploadCsv: UploadResult }>;
      } catch {
        // not JSON: reported below by status
      }
      try {
        resolve(unwrap(xhr.status, body).uploadCsv);
      } catch (error) {
        reject(error);
      }
    });
    xhr.addEventListener('error', () => reject(new Error('The upload did not reach Squeeze (network error)')));
    xhr.addEventListener('abort', () => reject(new Error('The upload was cancelled')));
    xhr.send(form);
  });
}

// ── Files behind the API key ─────────────────────────────────────────────────────────────────────

/**
 * With API keys on, Squeeze's own `/files/...` (outputs, output CSVs) need the Authorization header too,
 * which an <img> or a plain link cannot send. Such a file is fetched with the header instead and shown
 * from a blob: URL. Returns the URL to fetch, or null when a plain <img>/<a> will do (no key stored,
 * or a file on other storage). An output URL naming this server by another host name (PUBLIC_URL
 * localhost vs 127.0.0.1, a proxy) is fetched from this origin, and from its own URL should that fail.
 */
export function protectedFileUrl(url: string): string | null {
  if (!getApiKey()) return null;
  let parsed: URL;
  try {
    parsed = new URL(url, location.href);
  } catch {
    return null;
  }
  if (parsed.origin === location.origin) return parsed.href;
  if (parsed.pathname.startsWith('/files/')) return `${location.origin}${parsed.pathname}${parsed.search}`;
  return null;
}

/** Fetches a file with the API key; resolves to a blob, or null when this origin does not have it. */
export async function fetchProtectedFile(url: string): Promise<Blob | null> {
  const local = protectedFileUrl(url);
  if (!local) return null;
  const response = await fetch(local, { headers: authHeaders() });
  if (response.status === 401) throw authRequired();
  if (!response.ok) return null;
  return response.blob();
}

// ── Live progress over graphql-ws ────────────────────────────────────────────────────────────────

const FORBIDDEN = 4403;
let socket: Client | null = null;

function isCloseEvent(value: unknown): value is { code: number } {
  return typeof value === 'object' && value !== null && typeof (value as { code?: unknown }).code === 'number';
}

function client(): Client {
  if (!socket) {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    socket = createClient({
      url: `${scheme}//${location.host}/graphql`,
      // Read at every connection, so a key entered later is used by the next socket.
      connectionParams: () => authHeaders(),
      lazy: true,
      retryAttempts: 5,
      shouldRetry: (event) => !(isCloseEvent(event) && event.code === FORBIDDEN),
    });
  }
  return socket;
}

function resetSocket(): void {
  const old = socket;
  socket = null;
  void old?.dispose();
}

const PROGRESS_SUBSCRIPTION = `subscription RequestProgress($id: ID!) {
  requestProgress(requestId: $id) { requestId status progress { total done failed cancelled pending } image { ${IMAGE_FIELDS} } }
}`;

const PROGRESS_QUERY = `query RequestProgressPoll($id: ID!) { request(id: $id) { id status progress { total done failed cancelled pending } } }`;

export interface ProgressWatch {
  next(event: ProgressEvent): void;
  /** The request has ended (after its final event) or the watch failed for good. */
  end(error?: unknown): void;
}

/**
 * Follows a request with the `requestProgress` subscription. Should the WebSocket fail (a proxy that
 * drops upgrades, say), it falls back to polling the request every two seconds. Returns a stop function.
 */
export function watchProgress(requestId: string, watch: ProgressWatch): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const poll = async () => {
    if (stopped) return;
    try {
      const data = await graphql<{ request: { id: string; status: RequestStatus; progress: Progress } | null }>(PROGRESS_QUERY, { id: requestId });
      if (stopped) return;
      if (!data.request) return watch.end(new GraphQLRequestError('Request not found', 'NOT_FOUND'));
      watch.next({ requestId, status: data.request.status, progress: data.request.progress, image: null });
      if (ENDED.has(data.request.status)) return watch.end();
    } catch (error) {
      if (error instanceof AuthRequiredError) return watch.end(error);
    }
    timer = setTimeout(() => void poll(), 2000);
  };

  const unsubscribe = client().subscribe<{ requestProgress: ProgressEvent }>(
    { query: PROGRESS_SUBSCRIPTION, variables: { id: requestId } },
    {
      next: (result) => {
        if (!stopped && result.data) watch.next(result.data.requestProgress);
      },
      error: (error) => {
        if (stopped) return;
        if (isCloseEvent(error) && error.code === FORBIDDEN) return watch.end(authRequired());
        if (Array.isArray(error)) {
          const first = (error as { message: string; extensions?: { code?: string } }[])[0];
          return watch.end(new GraphQLRequestError(first?.message ?? 'Subscription failed', first?.extensions?.code));
        }
        void poll();
      },
      complete: () => {
        if (!stopped) watch.end();
      },
    },
  );

  return () => {
    stopped = true;
    clearTimeout(timer);
    unsubscribe();
  };
}
