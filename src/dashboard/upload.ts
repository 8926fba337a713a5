/** The upload card: a CSV by drag-and-drop or file picker, compression options, and what Squeeze answered. */
import { AuthRequiredError, uploadCsv, type OutputFormat, type RequestSummary, type UploadResult } from './api.ts';
import { formatBytes, formatCount, shortId } from './format.ts';
import { h, icon, replaceChildren, setText } from './dom.ts';
import { errorMessage, notice } from './widgets.ts';

const FORMATS: OutputFormat[] = ['JPEG', 'WEBP', 'AVIF', 'PNG'];

const FIELD_LABELS: Record<string, string> = {
  webhookUrl: 'Webhook URL',
  file: 'CSV file',
  quality: 'Quality',
  'options.quality': 'Quality',
  maxWidth: 'Max width',
  'options.maxWidth': 'Max width',
  maxHeight: 'Max height',
  'options.maxHeight': 'Max height',
  format: 'Format',
  'options.format': 'Format',
};

export interface UploadCard {
  element: HTMLElement;
}

export function createUploadCard(onUploaded: (request: RequestSummary) => void): UploadCard {
  let file: File | null = null;
  let busy = false;

  const input = h('input', { type: 'file', accept: '.csv,text/csv', class: 'visually-hidden', tabindex: -1, testid: 'file-input', 'aria-hidden': 'true' });
  const fileLine = h('span', { class: 'dropzone-file', testid: 'chosen-file' });
  const dropzone = h(
    'div',
    { class: 'dropzone', role: 'button', tabindex: 0, testid: 'dropzone', 'aria-label': 'Choose a CSV file or drop one here' },
    h('span', { class: 'dropzone-icon' }, icon('upload', 22)),
    h('span', { class: 'dropzone-title' }, 'Drop a CSV here or ', h('span', { class: 'link' }, 'choose a file')),
    h('span', { class: 'dropzone-hint' }, 'Columns: S. No., Product Name, Input Image Urls'),
    fileLine,
  );

  const quality = h('input', { type: 'number', min: 1, max: 100, step: 1, value: 50, id: 'opt-quality', inputmode: 'numeric', testid: 'quality' });
  const qualitySlider = h('input', { type: 'range', min: 1, max: 100, step: 1, value: 50, 'aria-label': 'Quality', tabindex: -1 });
  quality.addEventListener('input', () => {
    if (quality.value) qualitySlider.value = quality.value;
  });
  qualitySlider.addEventListener('input', () => {
    quality.value = qualitySlider.value;
  });
  const formatOptions = FORMATS.map((name) =>
    h('label', { class: 'segment-option' }, h('input', { type: 'radio', name: 'format', value: name, checked: name === 'JPEG', testid: `format-${name.toLowerCase()}` }), h('span', null, name)),
  );
  const format = h('div', { class: 'segmented', role: 'radiogroup', 'aria-labelledby': 'opt-format-label', testid: 'format' }, ...formatOptions);
  const chosenFormat = (): OutputFormat => (format.querySelector<HTMLInputElement>('input:checked')?.value as OutputFormat | undefined) ?? 'JPEG';
  const maxWidth = h('input', { type: 'number', min: 1, step: 1, id: 'opt-max-width', placeholder: 'original', inputmode: 'numeric', testid: 'max-width' });
  const maxHeight = h('input', { type: 'number', min: 1, step: 1, id: 'opt-max-height', placeholder: 'original', inputmode: 'numeric', testid: 'max-height' });
  const webhook = h('input', { type: 'url', id: 'opt-webhook', placeholder: 'https://hooks.example/squeeze', autocomplete: 'url', spellcheck: 'false', testid: 'webhook-url' });

  const fields: Record<string, HTMLElement> = { quality, format, maxWidth, maxHeight, webhookUrl: webhook, file: dropzone };

  const buttonLabel = h('span', null, 'Compress images');
  const button = h('button', { type: 'submit', class: 'button button-primary', testid: 'upload-button', disabled: true }, icon('squeeze', 18), buttonLabel);
  const uploadProgress = h('span', { class: 'upload-progress muted', 'aria-live': 'polite' });
  const result = h('div', { class: 'upload-result', testid: 'upload-result' });

  const field = (label: string, forId: string, control: HTMLElement, hint?: string) =>
    h('div', { class: 'field' }, h('label', { for: forId }, label), control, hint ? h('span', { class: 'field-hint' }, hint) : null);

  const form = h(
    'form',
    { class: 'upload-form', novalidate: true, testid: 'upload-form' },
    dropzone,
    input,
    h(
      'div',
      { class: 'options' },
      h('div', { class: 'field field-quality' }, h('label', { for: 'opt-quality' }, 'Quality'), h('div', { class: 'quality-row' }, qualitySlider, quality)),
      h('div', { class: 'field field-wide' }, h('span', { class: 'field-label', id: 'opt-format-label' }, 'Format'), format),
      field('Max width', 'opt-max-width', maxWidth, 'px'),
      field('Max height', 'opt-max-height', maxHeight, 'px'),
      h('div', { class: 'field field-wide' }, h('label', { for: 'opt-webhook' }, 'Webhook URL ', h('span', { class: 'muted' }, '(optional)')), webhook),
    ),
    h('div', { class: 'form-actions' }, button, uploadProgress),
    result,
  );

  const element = h(
    'section',
    { class: 'card upload-card', 'aria-labelledby': 'upload-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'upload-title' }, 'New request')),
    h('p', { class: 'card-intro muted' }, 'Every image URL in the file is downloaded, compressed and stored; you get an output CSV with the new URLs.'),
    form,
  );

  const refresh = () => {
    button.disabled = busy || !file;
    dropzone.classList.toggle('has-file', Boolean(file));
    if (file) replaceChildren(fileLine, icon('file', 16), h('strong', null, file.name), h('span', { class: 'muted' }, ` · ${formatBytes(file.size)}`));
    else replaceChildren(fileLine);
  };

  const choose = (chosen: File | undefined | null) => {
    if (!chosen) return;
    file = chosen;
    clearInvalid();
    replaceChildren(result);
    refresh();
  };

  const clearInvalid = () => {
    for (const control of Object.values(fields)) control.removeAttribute('aria-invalid');
  };

  dropzone.addEventListener('click', () => input.click());
  dropzone.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener('change', () => {
    choose(input.files?.[0]);
    input.value = '';
  });
  let depth = 0;
  dropzone.addEventListener('dragenter', (event) => {
    event.preventDefault();
    depth++;
    dropzone.classList.add('is-dragging');
  });
  dropzone.addEventListener('dragover', (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
  });
  dropzone.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) dropzone.classList.remove('is-dragging');
  });
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    depth = 0;
    dropzone.classList.remove('is-dragging');
    choose(event.dataTransfer?.files[0]);
  });
  // A file dropped beside the zone would otherwise make the browser navigate away to it.
  window.addEventListener('dragover', (event) => event.preventDefault());
  window.addEventListener('drop', (event) => event.preventDefault());

  const optionalInt = (control: HTMLInputElement): number | null => (control.value.trim() === '' ? null : Number(control.value));

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!file || busy) return;
    busy = true;
    clearInvalid();
    replaceChildren(result);
    refresh();
    setText(buttonLabel, 'Uploading…');
    setText(uploadProgress, '');
    const sent = file;
    uploadCsv(
      sent,
      {
        webhookUrl: webhook.value.trim() || null,
        options: {
          quality: quality.value.trim() === '' ? 50 : Number(quality.value),
          format: chosenFormat(),
          maxWidth: optionalInt(maxWidth),
          maxHeight: optionalInt(maxHeight),
        },
      },
      (fraction) => setText(uploadProgress, fraction < 1 ? `${Math.round(fraction * 100)} % sent` : 'Checking the file…'),
    )
      .then((answer) => show(answer, sent))
      .catch((error: unknown) => {
        replaceChildren(
          result,
          notice('error', error instanceof AuthRequiredError ? 'Squeeze needs an API key. Enter it, then upload again.' : `The upload failed: ${errorMessage(error)}`),
        );
      })
      .finally(() => {
        busy = false;
        setText(buttonLabel, 'Compress images');
        setText(uploadProgress, '');
        refresh();
      });
  });

  const show = (answer: UploadResult, sent: File) => {
    switch (answer.__typename) {
      case 'UploadCsvSuccess': {
        const request = answer.request;
        file = null;
        replaceChildren(
          result,
          notice(
            'success',
            h('strong', null, 'Uploaded. '),
            `${formatCount(request.progress.total)} image${request.progress.total === 1 ? '' : 's'} from ${sent.name} queued as request `,
            h('a', { href: `/requests/${encodeURIComponent(request.id)}`, 'data-nav': true, class: 'mono', testid: 'uploaded-request-link' }, shortId(request.id)),
            '.',
          ),
        );
        onUploaded(request);
        return;
      }
      case 'CsvInvalidError': {
        fields.file?.setAttribute('aria-invalid', 'true');
        replaceChildren(
          result,
          h(
            'div',
            { class: 'notice notice-error', role: 'alert', testid: 'csv-invalid' },
            h('strong', null, answer.message),
            h(
              'div',
              { class: 'table-scroll' },
              h(
                'table',
                { class: 'problems', testid: 'csv-problems' },
                h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Line'), h('th', { scope: 'col' }, 'Column'), h('th', { scope: 'col' }, 'Problem'))),
                h(
                  'tbody',
                  null,
                  answer.problems.map((problem) =>
                    h(
                      'tr',
                      { testid: 'csv-problem' },
                      h('td', { class: 'num' }, String(problem.line)),
                      h('td', null, problem.column ?? '—'),
                      h('td', null, problem.message),
                    ),
                  ),
                ),
              ),
            ),
          ),
        );
        return;
      }
      case 'InvalidInputError': {
        const name = answer.field ?? '';
        const control = fields[name] ?? fields[name.replace(/^options\./, '')];
        control?.setAttribute('aria-invalid', 'true');
        const label = FIELD_LABELS[name] ?? (name || null);
        replaceChildren(
          result,
          h(
            'div',
            { class: 'notice notice-error', role: 'alert', testid: 'input-error', 'data-field': name, 'data-code': answer.code },
            label ? h('strong', null, `${label}: `) : null,
            answer.message,
          ),
        );
        control?.focus();
        return;
      }
    }
  };

  refresh();
  return { element };
}
