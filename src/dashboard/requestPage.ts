/** One request: its summary, live progress, actions, and every product with before/after thumbnails. */
import { AuthRequiredError, ENDED, fetchProtectedFile, graphql, protectedFileUrl, IMAGE_FIELDS, REQUEST_FIELDS, watchProgress, type ImageInfo, type ProductInfo, type ProductPage, type RequestSummary } from './api.ts';
import { formatBytes, formatCount, formatDateTime, formatDuration, formatSaving } from './format.ts';
import { h, icon, replaceChildren, setText } from './dom.ts';
import { errorMessage, fileLink, notice, progressBar, statusBadge, updateBadge } from './widgets.ts';
import type { View } from './view.ts';

const PAGE_SIZE = 50;
/** Connections take `first` up to 1 000. */
const MAX_PAGE = 1000;

const PAGE_QUERY = `query RequestPage($id: ID!, $first: Int, $after: String) {
  request(id: $id) {
    ${REQUEST_FIELDS}
    products(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id serialNumber productName images { ${IMAGE_FIELDS} } } }
    }
  }
}`;
const CANCEL_MUTATION = `mutation CancelRequest($id: ID!) { cancelRequest(id: $id) { ${REQUEST_FIELDS} } }`;
const RETRY_MUTATION = `mutation RetryFailedImages($id: ID!) { retryFailedImages(requestId: $id) { ${REQUEST_FIELDS} } }`;

type PageData = { request: (RequestSummary & { products: ProductPage }) | null };

interface ImageView {
  element: HTMLElement;
  image: ImageInfo;
  update(image: ImageInfo): void;
}

const WAITING: Record<string, string> = { PENDING: 'Waiting', PROCESSING: 'Compressing…', FAILED: 'No output', CANCELLED: 'Cancelled', DONE: 'No output' };

function fileName(url: string): string {
  try {
    const parts = new URL(url).pathname.split('/').filter(Boolean);
    return decodeURIComponent(parts[parts.length - 1] ?? url);
  } catch {
    return url;
  }
}

/** `blobs` for Squeeze's own outputs (behind the API key when keys are on); null for input URLs. */
function thumbnail(url: string, alt: string, testid: string, blobs: BlobCache | null): HTMLElement {
  const img = h('img', { alt, loading: 'lazy', decoding: 'async', referrerpolicy: 'no-referrer', testid });
  const link = h('a', { class: 'thumb-image', href: url, target: '_blank', rel: 'noopener noreferrer', title: url }, img);
  img.addEventListener('error', () => link.replaceChildren(h('span', { class: 'thumb-placeholder' }, 'Not available')), { once: true });
  if (blobs && protectedFileUrl(url)) {
    // Behind the API key: fetched with it, shown from a blob: URL.
    blobs
      .get(url)
      .then((objectUrl) => {
        img.src = objectUrl ?? url;
        if (objectUrl) link.href = objectUrl;
      })
      .catch(() => (img.src = url));
  } else img.src = url;
  return link;
}

/** Blob URLs of files fetched with the API key, released when the page closes. */
class BlobCache {
  private readonly urls = new Map<string, Promise<string | null>>();

  get(url: string): Promise<string | null> {
    let entry = this.urls.get(url);
    if (!entry) {
      entry = fetchProtectedFile(url).then((blob) => (blob ? URL.createObjectURL(blob) : null));
      this.urls.set(url, entry);
    }
    return entry;
  }

  clear(): void {
    for (const entry of this.urls.values()) void entry.then((objectUrl) => objectUrl && URL.revokeObjectURL(objectUrl), () => undefined);
    this.urls.clear();
  }
}

function createImageView(initial: ImageInfo, blobs: BlobCache): ImageView {
  const before = h('div', { class: 'thumb' }, thumbnail(initial.inputUrl, 'Before', 'thumb-before', null), h('span', { class: 'thumb-label' }, 'Before'));
  const afterSlot = h('div', { class: 'thumb-slot' });
  const after = h('div', { class: 'thumb thumb-after' }, afterSlot, h('span', { class: 'thumb-label' }, 'After'));
  const bytes = h('span', { class: 'image-bytes', testid: 'image-bytes' });
  const saved = h('span', { class: 'saving', testid: 'image-saved' });
  const sizeLine = h('div', { class: 'image-line' }, bytes, saved);
  const badge = statusBadge(initial.status, 'image-status');
  const details = h('span', { class: 'muted image-details' });
  const errorLine = h('div', { class: 'image-error', testid: 'image-error', hidden: true });
  const element = h(
    'figure',
    { class: 'image-card', testid: 'image', 'data-image-id': initial.id },
    h('div', { class: 'thumbs' }, before, after),
    h(
      'figcaption',
      null,
      h('div', { class: 'image-name', title: initial.inputUrl }, fileName(initial.inputUrl)),
      sizeLine,
      h('div', { class: 'image-line' }, badge, details),
      errorLine,
    ),
  );
  let shownOutput: string | null | undefined;

  const view: ImageView = {
    element,
    image: initial,
    update(image) {
      view.image = image;
      element.dataset.status = image.status;
      updateBadge(badge, image.status);
      if (image.outputUrl !== shownOutput) {
        shownOutput = image.outputUrl;
        afterSlot.replaceChildren(image.outputUrl ? thumbnail(image.outputUrl, 'After', 'thumb-after', blobs) : h('span', { class: 'thumb-placeholder' }, WAITING[image.status] ?? ''));
      } else if (!image.outputUrl) {
        const placeholder = afterSlot.firstElementChild;
        if (placeholder) setText(placeholder, WAITING[image.status] ?? '');
      }
      setText(bytes, image.outputBytes !== null ? `${formatBytes(image.inputBytes)} → ${formatBytes(image.outputBytes)}` : image.inputBytes !== null ? formatBytes(image.inputBytes) : '');
      const saving = formatSaving(image.inputBytes, image.outputBytes);
      setText(saved, saving?.text ?? '');
      sizeLine.hidden = !bytes.textContent;
      saved.className = `saving${saving ? ` saving-${saving.tone}` : ''}`;
      const facts: string[] = [];
      if (image.width && image.height) facts.push(`${image.width} × ${image.height}`);
      if (image.format) facts.push(image.format.toUpperCase());
      if (image.attempts > 1) facts.push(`${image.attempts} attempts`);
      setText(details, facts.join(' · '));
      if (image.error) {
        errorLine.hidden = false;
        errorLine.dataset.code = image.error.code;
        errorLine.replaceChildren(h('code', null, image.error.code), ' ', image.error.message);
        errorLine.classList.toggle('is-retrying', image.status !== 'FAILED');
      } else {
        errorLine.hidden = true;
        errorLine.replaceChildren();
      }
    },
  };
  view.update(initial);
  return view;
}

export function requestView(id: string): View {
  let disposed = false;
  let request: RequestSummary | null = null;
  const products: ProductInfo[] = [];
  let pageInfo = { hasNextPage: false, endCursor: null as string | null };
  let totalProducts = 0;
  const imageViews = new Map<string, ImageView>();
  const blobs = new BlobCache();
  let stopWatch: (() => void) | undefined;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;

  const back = h('a', { href: '/', 'data-nav': true, class: 'back-link', testid: 'back-link' }, icon('back', 16), 'All requests');
  const body = h('div', { class: 'request-page' }, h('p', { class: 'muted' }, 'Loading…'));
  const element = h('div', { class: 'page' }, back, body);

  // Summary parts, built once the request is known.
  const badge = statusBadge('PENDING', 'request-status');
  const bar = progressBar('large');
  const meta = h('dl', { class: 'meta' });
  const counts = h('div', { class: 'counts', testid: 'counts' });
  const totals = h('div', { class: 'totals', testid: 'totals' });
  const actions = h('div', { class: 'actions' });
  const actionStatus = h('div', { class: 'action-status' });
  const productList = h('div', { class: 'products', testid: 'products' });
  const productCount = h('span', { class: 'muted' });
  const more = h('div', { class: 'more' });

  const cancelButton = h('button', { type: 'button', class: 'button button-danger', testid: 'cancel-button' }, icon('stop', 16), 'Cancel request');
  const retryButton = h('button', { type: 'button', class: 'button button-primary', testid: 'retry-button' }, icon('retry', 16), 'Retry failed images');

  const renderSummary = () => {
    if (!request) return;
    updateBadge(badge, request.status);
    bar.update(request.progress, request.status);
    renderTotals();
    const p = request.progress;
    replaceChildren(
      counts,
      h('span', { class: 'count count-done' }, h('strong', null, formatCount(p.done)), ' done'),
      h('span', { class: 'count count-failed' }, h('strong', null, formatCount(p.failed)), ' failed'),
      p.cancelled ? h('span', { class: 'count count-cancelled' }, h('strong', null, formatCount(p.cancelled)), ' cancelled') : null,
      h('span', { class: 'count count-pending' }, h('strong', null, formatCount(p.pending)), ' pending'),
    );
    const duration = formatDuration(request.startedAt, request.completedAt);
    const entry = (term: string, value: Node | string) => h('div', { class: 'meta-item' }, h('dt', null, term), h('dd', null, value));
    replaceChildren(
      meta,
      entry('Created', formatDateTime(request.createdAt)),
      request.startedAt ? entry('Started', formatDateTime(request.startedAt)) : null,
      request.completedAt ? entry('Ended', `${formatDateTime(request.completedAt)}${duration ? ` (took ${duration})` : ''}`) : null,
      request.webhookUrl ? entry('Webhook', h('span', { class: 'mono break' }, request.webhookUrl)) : null,
    );
    const running = request.status === 'PENDING' || request.status === 'PROCESSING';
    replaceChildren(
      actions,
      request.outputCsvUrl
        ? fileLink(request.outputCsvUrl, 'Output CSV', { testid: 'output-csv-link', fileName: `squeeze-${id}.csv`, className: 'button button-primary' })
        : h('span', { class: 'muted small' }, 'The output CSV is ready when the request ends.'),
      request.errorsCsvUrl
        ? fileLink(request.errorsCsvUrl, 'Errors CSV', { testid: 'errors-csv-link', fileName: `squeeze-${id}-errors.csv` })
        : null,
      running ? cancelButton : null,
      request.status === 'FAILED' ? retryButton : null,
    );
  };

  const renderTotals = () => {
    if (!request || !request.inputBytes) return replaceChildren(totals);
    const saving = formatSaving(request.inputBytes, request.outputBytes);
    replaceChildren(
      totals,
      h('span', { class: 'totals-bytes', testid: 'total-bytes' }, `${formatBytes(request.inputBytes)} → ${formatBytes(request.outputBytes)}`),
      saving ? h('span', { class: `saving saving-${saving.tone}`, testid: 'total-saved' }, saving.text) : null,
      h('span', { class: 'muted small' }, `over ${formatCount(request.progress.done)} compressed image${request.progress.done === 1 ? '' : 's'}`),
    );
  };

  const productCard = (product: ProductInfo) => {
    const views = product.images.map((image) => {
      let view = imageViews.get(image.id);
      if (view) view.update(image);
      else {
        view = createImageView(image, blobs);
        imageViews.set(image.id, view);
      }
      return view.element;
    });
    return h(
      'article',
      { class: 'product', testid: 'product', 'data-product-id': product.id },
      h(
        'header',
        { class: 'product-head' },
        h('span', { class: 'serial' }, `#${product.serialNumber}`),
        h('h3', { class: 'product-name' }, product.productName),
        h('span', { class: 'muted small' }, `${product.images.length} image${product.images.length === 1 ? '' : 's'}`),
      ),
      h('div', { class: 'image-grid' }, views),
    );
  };

  const renderProducts = () => {
    productList.replaceChildren(...products.map(productCard));
    setText(productCount, totalProducts ? formatCount(totalProducts) : '');
    if (pageInfo.hasNextPage) {
      const button = h('button', { type: 'button', class: 'button button-ghost', testid: 'load-more' }, `Show more products (${formatCount(products.length)} of ${formatCount(totalProducts)})`);
      button.addEventListener('click', () => {
        button.disabled = true;
        void loadPage(pageInfo.endCursor).finally(() => (button.disabled = false));
      });
      replaceChildren(more, button);
    } else replaceChildren(more);
  };

  const follow = () => {
    if (!request || ENDED.has(request.status) || stopWatch) return;
    stopWatch = watchProgress(id, {
      next: (event) => {
        if (!request) return;
        request = { ...request, status: event.status, progress: event.progress };
        renderSummary();
        if (event.image) {
          const view = imageViews.get(event.image.id);
          view?.update(event.image);
        }
        // Events may be coalesced (a newer state replaces one not yet sent), so the shown products are read again now and then.
        scheduleRefresh(1500);
      },
      end: (error) => {
        stopWatch = undefined;
        if (!error) scheduleRefresh(0);
      },
    });
  };

  const scheduleRefresh = (delay: number) => {
    if (disposed) return;
    if (refreshTimer !== undefined) {
      if (delay > 0) return;
      clearTimeout(refreshTimer);
    }
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      void refresh();
    }, delay);
  };

  /** Reads the request and the products shown so far again. */
  const refresh = async () => {
    const first = Math.min(Math.max(products.length, PAGE_SIZE), MAX_PAGE);
    try {
      const data = await graphql<PageData>(PAGE_QUERY, { id, first });
      if (disposed || !data.request) return;
      const { products: page, ...summary } = data.request;
      // A live event newer than this answer keeps its state; an ended state is final.
      if (!(stopWatch && !ENDED.has(summary.status) && request && summary.progress.total - summary.progress.pending < request.progress.total - request.progress.pending)) request = summary;
      const fresh = page.edges.map((edge) => edge.node);
      products.splice(0, fresh.length, ...fresh);
      totalProducts = page.totalCount;
      if (fresh.length >= products.length) pageInfo = page.pageInfo;
      renderSummary();
      renderProducts();
      follow();
    } catch {
      // the next event or refresh tries again
    }
  };

  const loadPage = async (after: string | null) => {
    try {
      const data = await graphql<PageData>(PAGE_QUERY, { id, first: PAGE_SIZE, after });
      if (disposed) return;
      if (!data.request) {
        replaceChildren(body, h('div', { class: 'card' }, h('h1', null, 'Request not found'), h('p', { class: 'muted', testid: 'not-found' }, `No request has the id ${id}.`)));
        return;
      }
      const { products: page, ...summary } = data.request;
      if (!request) {
        request = summary;
        buildPage();
      } else if (!stopWatch || ENDED.has(summary.status)) request = summary;
      products.push(...page.edges.map((edge) => edge.node));
      pageInfo = page.pageInfo;
      totalProducts = page.totalCount;
      renderSummary();
      renderProducts();
      follow();
    } catch (error) {
      if (disposed) return;
      if (!request) {
        replaceChildren(
          body,
          error instanceof AuthRequiredError ? h('p', { class: 'muted', testid: 'needs-key' }, 'Enter an API key to see this request.') : notice('error', `The request could not be loaded: ${errorMessage(error)}`),
        );
      } else replaceChildren(more, notice('error', `More products could not be loaded: ${errorMessage(error)}`));
    }
  };

  const act = async (button: HTMLButtonElement, mutation: string, field: 'cancelRequest' | 'retryFailedImages', verb: string) => {
    button.disabled = true;
    replaceChildren(actionStatus);
    try {
      const data = await graphql<Record<typeof field, RequestSummary>>(mutation, { id });
      if (disposed) return;
      request = data[field];
      stopWatch?.();
      stopWatch = undefined;
      renderSummary();
      follow();
      scheduleRefresh(0);
    } catch (error) {
      if (!disposed) replaceChildren(actionStatus, notice('error', `Could not ${verb}: ${errorMessage(error)}`));
    } finally {
      button.disabled = false;
    }
  };
  cancelButton.addEventListener('click', () => void act(cancelButton, CANCEL_MUTATION, 'cancelRequest', 'cancel the request'));
  retryButton.addEventListener('click', () => void act(retryButton, RETRY_MUTATION, 'retryFailedImages', 'retry the failed images'));

  const buildPage = () => {
    replaceChildren(
      body,
      h(
        'section',
        { class: 'card summary', testid: 'request-summary', 'data-request-id': id },
        h('div', { class: 'summary-head' }, h('div', null, h('p', { class: 'eyebrow' }, 'Request'), h('h1', { class: 'mono request-id', testid: 'request-id' }, id)), badge),
        bar.element,
        h('div', { class: 'summary-row' }, counts, totals),
        h('div', { class: 'summary-foot' }, meta, actions),
        actionStatus,
      ),
      h('section', { class: 'products-section', 'aria-labelledby': 'products-title' }, h('h2', { id: 'products-title' }, 'Products ', productCount), productList, more),
    );
  };

  void loadPage(null);

  return {
    element,
    title: `Request ${id.slice(0, 8)} · Squeeze`,
    dispose() {
      disposed = true;
      stopWatch?.();
      clearTimeout(refreshTimer);
      blobs.clear();
    },
  };
}
