/** The home page: the upload card beside the newest requests, whose progress bars move live. */
import { AuthRequiredError, ENDED, graphql, REQUEST_FIELDS, watchProgress, type RequestSummary } from './api.ts';
import { formatBytes, formatCount, formatDateTime, formatSaving, formatWhen, shortId } from './format.ts';
import { h, icon, replaceChildren, setText } from './dom.ts';
import type { UploadCard } from './upload.ts';
import { errorMessage, fileLink, notice, progressBar, statusBadge, updateBadge, type ProgressBar } from './widgets.ts';
import type { View } from './view.ts';

const REQUESTS_QUERY = `query Requests { requests(first: 50) { totalCount edges { node { ${REQUEST_FIELDS} } } } }`;
const REQUEST_QUERY = `query RequestSummary($id: ID!) { request(id: $id) { ${REQUEST_FIELDS} } }`;

interface Row {
  request: RequestSummary;
  element: HTMLLIElement;
  badge: HTMLElement;
  bar: ProgressBar;
  when: HTMLElement;
  saved: HTMLElement;
  output: HTMLElement;
  stop?: () => void;
}

export function homeView(upload: UploadCard, setUploadListener: (listener: (request: RequestSummary) => void) => void): View {
  const rows = new Map<string, Row>();
  let disposed = false;
  let loading = false;
  let again = false;

  const list = h('ul', { class: 'request-list', testid: 'request-list' });
  const count = h('span', { class: 'muted', testid: 'request-count' });
  const status = h('div', { class: 'list-status' });
  const refreshButton = h('button', { type: 'button', class: 'button button-ghost button-small', testid: 'refresh', title: 'Reload the list' }, icon('refresh', 16), 'Refresh');
  refreshButton.addEventListener('click', () => void load());

  const listCard = h(
    'section',
    { class: 'card list-card', 'aria-labelledby': 'requests-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'requests-title' }, 'Requests ', count), refreshButton),
    status,
    list,
  );

  const element = h('div', { class: 'home' }, upload.element, listCard);

  const renderOutput = (row: Row) => {
    const url = row.request.outputCsvUrl;
    if (url) replaceChildren(row.output, fileLink(url, 'CSV', { testid: 'row-output-csv', fileName: `squeeze-${row.request.id}.csv`, className: 'button button-ghost button-small', title: 'Download the output CSV' }));
    else replaceChildren(row.output);
  };

  const updateRow = (row: Row) => {
    updateBadge(row.badge, row.request.status);
    row.bar.update(row.request.progress, row.request.status);
    row.element.dataset.status = row.request.status;
    setText(row.when, formatWhen(row.request.createdAt));
    const saving = row.request.inputBytes ? formatSaving(row.request.inputBytes, row.request.outputBytes) : null;
    setText(row.saved, saving?.text ?? '');
    row.saved.className = `row-saved${saving ? ` saving-${saving.tone}` : ''}`;
    if (saving) row.saved.title = `${formatBytes(row.request.inputBytes)} → ${formatBytes(row.request.outputBytes)}`;
    renderOutput(row);
  };

  /** Once a request ends, its final summary (with the output CSV link) is read once more. */
  const refreshRow = async (row: Row) => {
    try {
      const data = await graphql<{ request: RequestSummary | null }>(REQUEST_QUERY, { id: row.request.id });
      if (!disposed && data.request) {
        row.request = data.request;
        updateRow(row);
      }
    } catch {
      // the list's next load corrects it
    }
  };

  const follow = (row: Row) => {
    if (ENDED.has(row.request.status) || row.stop) return;
    row.stop = watchProgress(row.request.id, {
      next: (event) => {
        row.request = { ...row.request, status: event.status, progress: event.progress };
        updateRow(row);
      },
      end: (error) => {
        row.stop = undefined;
        if (!error && !disposed) void refreshRow(row);
      },
    });
  };

  const makeRow = (request: RequestSummary): Row => {
    const href = `/requests/${encodeURIComponent(request.id)}`;
    const badge = statusBadge(request.status);
    const bar = progressBar('small');
    const when = h('time', { class: 'muted', datetime: request.createdAt, title: formatDateTime(request.createdAt) });
    const saved = h('span', { class: 'row-saved', testid: 'row-saved' });
    const output = h('span', { class: 'row-output' });
    const element = h(
      'li',
      { class: 'request-row', testid: 'request-row', 'data-request-id': request.id },
      h('a', { class: 'row-main', href, 'data-nav': true, testid: 'request-link' }, h('span', { class: 'mono row-id', title: request.id }, shortId(request.id)), h('span', { class: 'row-sub' }, when, saved)),
      badge,
      h('div', { class: 'row-progress' }, bar.element),
      output,
    );
    const row: Row = { request, element, badge, bar, when, saved, output };
    updateRow(row);
    return row;
  };

  const render = (requests: RequestSummary[], totalCount: number) => {
    const seen = new Set<string>();
    const elements: HTMLLIElement[] = [];
    for (const request of requests) {
      seen.add(request.id);
      let row = rows.get(request.id);
      if (row) {
        // Keep the live state when the list is older than the last event.
        const live = row.stop !== undefined && !ENDED.has(request.status);
        row.request = live ? { ...request, status: row.request.status, progress: row.request.progress } : request;
        updateRow(row);
      } else {
        row = makeRow(request);
        rows.set(request.id, row);
      }
      elements.push(row.element);
      follow(row);
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.stop?.();
        rows.delete(id);
      }
    }
    list.replaceChildren(...elements);
    setText(count, totalCount ? `${formatCount(totalCount)}` : '');
    if (requests.length === 0) replaceChildren(status, h('p', { class: 'empty', testid: 'empty-list' }, 'No requests yet. Upload a CSV to start one.'));
    else if (totalCount > requests.length) replaceChildren(status, h('p', { class: 'muted list-note' }, `The newest ${requests.length} of ${formatCount(totalCount)}.`));
    else replaceChildren(status);
  };

  const load = async () => {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    refreshButton.disabled = true;
    if (rows.size === 0) replaceChildren(status, h('p', { class: 'muted' }, 'Loading…'));
    try {
      const data = await graphql<{ requests: { totalCount: number; edges: { node: RequestSummary }[] } }>(REQUESTS_QUERY);
      if (!disposed) render(data.requests.edges.map((edge) => edge.node), data.requests.totalCount);
    } catch (error) {
      if (!disposed) {
        replaceChildren(
          status,
          error instanceof AuthRequiredError ? h('p', { class: 'muted', testid: 'needs-key' }, 'Enter an API key to see the requests.') : notice('error', `The requests could not be loaded: ${errorMessage(error)}`),
        );
      }
    } finally {
      loading = false;
      refreshButton.disabled = false;
      if (again && !disposed) {
        again = false;
        void load();
      }
    }
  };

  // Relative times ("2 minutes ago") stay true while the page is open.
  const clock = setInterval(() => {
    for (const row of rows.values()) setText(row.when, formatWhen(row.request.createdAt));
  }, 30_000);

  setUploadListener((request) => {
    if (disposed) return;
    // Shown at once, then the list is read again.
    if (!rows.has(request.id)) {
      const row = makeRow(request);
      rows.set(request.id, row);
      list.prepend(row.element);
      replaceChildren(status);
      follow(row);
    }
    void load();
  });
  void load();

  return {
    element,
    title: 'Squeeze',
    dispose() {
      disposed = true;
      clearInterval(clock);
      for (const row of rows.values()) row.stop?.();
      rows.clear();
    },
  };
}
