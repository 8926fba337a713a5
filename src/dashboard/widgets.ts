/** Small pieces shared by the pages: status badges, progress bars, notices. */
import { fetchProtectedFile, protectedFileUrl, type ImageStatus, type Progress, type RequestStatus } from './api.ts';
import { formatCount } from './format.ts';
import { h, icon, setText, type IconName } from './dom.ts';

const STATUS_LABELS: Record<RequestStatus | ImageStatus, string> = {
  PENDING: 'Pending',
  PROCESSING: 'Processing',
  COMPLETED: 'Completed',
  DONE: 'Done',
  FAILED: 'Failed',
  CANCELLED: 'Cancelled',
};

export function statusBadge(status: RequestStatus | ImageStatus, testid = 'status'): HTMLSpanElement {
  const badge = h('span', { testid });
  updateBadge(badge, status);
  return badge;
}

export function updateBadge(badge: HTMLElement, status: RequestStatus | ImageStatus): void {
  const className = `badge badge-${status.toLowerCase()}`;
  if (badge.className !== className) badge.className = className;
  badge.dataset.status = status;
  setText(badge, STATUS_LABELS[status] ?? status);
}

export interface ProgressBar {
  element: HTMLElement;
  update(progress: Progress, status: RequestStatus): void;
}

/** A bar of ended images (done, failed, cancelled segments) with "3 / 4 images · 75 %" beside it. */
export function progressBar(size: 'small' | 'large' = 'small'): ProgressBar {
  const done = h('span', { class: 'segment segment-done' });
  const failed = h('span', { class: 'segment segment-failed' });
  const cancelled = h('span', { class: 'segment segment-cancelled' });
  const track = h(
    'div',
    { class: 'progress-track', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-label': 'Images finished', testid: 'progress-bar' },
    done,
    failed,
    cancelled,
  );
  const text = h('span', { class: 'progress-text', testid: 'progress-text' });
  const element = h('div', { class: `progress progress-${size}` }, track, text);
  return {
    element,
    update(progress, status) {
      const ended = progress.done + progress.failed + progress.cancelled;
      const percent = progress.total > 0 ? Math.floor((ended / progress.total) * 100) : status === 'PENDING' || status === 'PROCESSING' ? 0 : 100;
      const share = (n: number) => (progress.total > 0 ? `${(n / progress.total) * 100}%` : '0%');
      done.style.width = share(progress.done);
      failed.style.width = share(progress.failed);
      cancelled.style.width = share(progress.cancelled);
      track.setAttribute('aria-valuenow', String(percent));
      track.classList.toggle('is-active', status === 'PROCESSING' || status === 'PENDING');
      element.dataset.percent = String(percent);
      const parts = [`${formatCount(ended)} / ${formatCount(progress.total)} images`, `${percent} %`];
      if (progress.failed) parts.push(`${formatCount(progress.failed)} failed`);
      setText(text, parts.join(' · '));
    },
  };
}

export function notice(tone: 'error' | 'success' | 'info', ...children: (Node | string)[]): HTMLDivElement {
  return h('div', { class: `notice notice-${tone}`, role: tone === 'error' ? 'alert' : 'status' }, ...children);
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A link that downloads a Squeeze file (output CSV, errors CSV). With an API key stored, the click
 * fetches the file with the key and saves it from a blob: URL, since a plain link cannot send the header.
 */
export function fileLink(url: string, label: string, options: { testid: string; fileName: string; className?: string; iconName?: IconName; title?: string }): HTMLAnchorElement {
  const link = h('a', { href: url, download: options.fileName, class: options.className ?? 'button', testid: options.testid, title: options.title }, icon(options.iconName ?? 'download', 16), label);
  link.addEventListener('click', (event) => {
    if (!protectedFileUrl(url) || link.dataset.busy) return;
    event.preventDefault();
    link.dataset.busy = 'true';
    fetchProtectedFile(url)
      .then((blob) => {
        if (!blob) {
          // Not on this origin: let the browser follow the link itself.
          window.open(url, '_blank', 'noopener');
          return;
        }
        const objectUrl = URL.createObjectURL(blob);
        const save = h('a', { href: objectUrl, download: options.fileName, hidden: true });
        document.body.append(save);
        save.click();
        save.remove();
        setTimeout(() => URL.revokeObjectURL(objectUrl), 60_000);
      })
      .catch(() => undefined)
      .finally(() => delete link.dataset.busy);
  });
  return link;
}
