/** The Squeeze dashboard: upload CSVs, follow requests live, look at every image before and after. */
import './styles.css';
import { getApiKey, onAuthRequired, setApiKey, type RequestSummary } from './api.ts';
import { h, icon } from './dom.ts';
import { homeView } from './home.ts';
import { requestView } from './requestPage.ts';
import { createUploadCard } from './upload.ts';
import type { View } from './view.ts';

const app = document.getElementById('app')!;

// ── Header ───────────────────────────────────────────────────────────────────────────────────────

const forgetKey = h('button', { type: 'button', class: 'button button-ghost button-small', testid: 'forget-key', hidden: true, title: 'Remove the API key kept in this browser' }, icon('key', 16), 'Forget key');
const header = h(
  'header',
  { class: 'topbar' },
  h(
    'div',
    { class: 'topbar-inner' },
    h('a', { class: 'brand', href: '/', 'data-nav': true }, h('span', { class: 'brand-mark' }, icon('squeeze', 18)), h('span', null, 'Squeeze')),
    h('span', { class: 'brand-tagline muted' }, 'Product images, compressed in bulk'),
    h('nav', { class: 'topbar-nav' }, forgetKey, h('a', { class: 'button button-ghost button-small', href: '/graphql', target: '_blank', rel: 'noopener' }, 'GraphQL API')),
  ),
);
const main = h('main', { class: 'main', id: 'main' });
app.append(header, main);

const syncKeyButton = () => {
  forgetKey.hidden = !getApiKey();
};
forgetKey.addEventListener('click', () => {
  setApiKey(null);
  syncKeyButton();
  render();
});

// ── The API key form, shown when a call is refused ───────────────────────────────────────────────

const keyInput = h('input', { type: 'password', id: 'api-key', autocomplete: 'off', spellcheck: 'false', required: true, testid: 'key-input', placeholder: 'Paste the key' });
const keyError = h('p', { class: 'key-error', role: 'alert', testid: 'key-error', hidden: true }, 'That key was refused. Check it and try again.');
const keyForm = h(
  'form',
  { class: 'key-dialog card', testid: 'key-form', 'aria-labelledby': 'key-title' },
  h('div', { class: 'key-icon' }, icon('key', 22)),
  h('h2', { id: 'key-title' }, 'API key required'),
  h('p', { class: 'muted' }, 'This Squeeze asks for an API key. It is kept in this browser only and sent with every call as a Bearer token.'),
  keyError,
  h('label', { for: 'api-key', class: 'visually-hidden' }, 'API key'),
  keyInput,
  h('button', { type: 'submit', class: 'button button-primary', testid: 'key-submit' }, 'Use this key'),
);
const keyOverlay = h('div', { class: 'overlay', hidden: true, testid: 'key-overlay' }, keyForm);
document.body.append(keyOverlay);

let keySubmitted = false;
onAuthRequired(() => {
  if (!keyOverlay.hidden) return;
  // Asked again right after a key was entered: that key is wrong.
  keyError.hidden = !(keySubmitted || getApiKey());
  keyOverlay.hidden = false;
  keyInput.value = '';
  keyInput.focus();
});
keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = keyInput.value.trim();
  if (!key) return;
  keySubmitted = true;
  keyOverlay.hidden = true;
  // Stop the page's subscriptions before the socket with the old key goes away, then start again.
  current?.dispose();
  current = null;
  setApiKey(key);
  syncKeyButton();
  render();
});

// ── Routing (History API; the server answers index.html for /requests/<id>) ─────────────────────

let uploadListener: (request: RequestSummary) => void = () => undefined;
// The upload card lives across pages, so a chosen file and options survive navigation and a key change.
const uploadCard = createUploadCard((request) => uploadListener(request));
let current: View | null = null;

function render(): void {
  current?.dispose();
  const match = /^\/requests\/([^/]+)\/?$/.exec(location.pathname);
  let id: string | null = null;
  try {
    id = match?.[1] ? decodeURIComponent(match[1]) : null;
  } catch {
    id = null;
  }
  current = id ? requestView(id) : homeView(uploadCard, (listener) => (uploadListener = listener));
  document.title = current.title;
  main.replaceChildren(current.element);
}

export function navigate(path: string): void {
  if (path === location.pathname + location.search) return;
  history.pushState(null, '', path);
  render();
  window.scrollTo(0, 0);
}

document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = (event.target as Element | null)?.closest?.('a[data-nav]');
  if (!(link instanceof HTMLAnchorElement) || link.origin !== location.origin) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener('popstate', render);

syncKeyButton();
render();
