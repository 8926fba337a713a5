/** Small pieces shared by the pages: status badges, progress bars, notices. */
import type { ImageStatus, Progress, RequestStatus } from './api.ts';
import { formatCount } from './format.ts';
import { h, setText } from './dom.ts';

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
