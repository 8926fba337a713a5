import type { RequestRow } from '../drizzle/schema.ts';
import { ingestCsv, type UploadOptions } from '../src/ingest/ingestCsv.ts';
import { checkWebhookUrl, checkCompressionOptions } from '../src/ingest/uploadChecks.ts';
import { builder } from './builder.ts';
import { CsvInvalidErrorRef, InvalidInputErrorRef, invalidInput, type CsvInvalid, type InvalidInput } from './errors.ts';
import { RequestRef } from './request.ts';

const OutputFormatEnum = builder.enumType('OutputFormat', { values: ['JPEG', 'WEBP', 'AVIF', 'PNG'] as const });

const CompressionOptionsInput = builder.inputType('CompressionOptions', {
  fields: (t) => ({
    quality: t.int({ defaultValue: 50, description: '1 to 100' }),
    format: t.field({ type: OutputFormatEnum, defaultValue: 'JPEG' }),
    maxWidth: t.int({ description: 'Shrinks wider images, keeping the aspect ratio; never enlarges' }),
    maxHeight: t.int({ description: 'Shrinks taller images, keeping the aspect ratio; never enlarges' }),
  }),
});

interface UploadSuccess {
  kind: 'UploadCsvSuccess';
  request: RequestRow;
}

const UploadCsvSuccessRef = builder.objectRef<UploadSuccess>('UploadCsvSuccess').implement({
  isTypeOf: (value) => (value as UploadSuccess).kind === 'UploadCsvSuccess',
  fields: (t) => ({ request: t.field({ type: RequestRef, resolve: (result) => result.request }) }),
});

const UploadCsvResultRef = builder.unionType('UploadCsvResult', {
  types: [UploadCsvSuccessRef, CsvInvalidErrorRef, InvalidInputErrorRef],
  resolveType: (value) => (value as { kind: string }).kind,
});

builder.mutationField('uploadCsv', (t) =>
  t.field({
    type: UploadCsvResultRef,
    description: 'Validates and stores a product CSV, then (unless autoStart is false) compresses its images in the background.',
    args: {
      file: t.arg({ type: 'Upload', required: true }),
      webhookUrl: t.arg.string(),
      options: t.arg({ type: CompressionOptionsInput }),
      autoStart: t.arg.boolean({ defaultValue: true }),
    },
    resolve: async (_root, args, ctx): Promise<UploadSuccess | CsvInvalid | InvalidInput> => {
      const { services } = ctx;
      const optionsProblem = checkCompressionOptions(args.options ?? {});
      if (optionsProblem) return invalidInput(optionsProblem.field, 'INVALID_OPTIONS', optionsProblem.message);
      const webhookProblem = await checkWebhookUrl(args.webhookUrl ?? null, services.guard);
      if (webhookProblem) return invalidInput('webhookUrl', webhookProblem.code, webhookProblem.message);

      let file;
      try {
        file = await args.file;
      } catch (error) {
        return invalidInput('file', 'TOO_LARGE', (error as Error).message);
      }
      const options: UploadOptions = {
        quality: args.options?.quality ?? 50,
        format: args.options?.format ?? 'JPEG',
        ...(args.options?.maxWidth ? { maxWidth: args.options.maxWidth } : {}),
        ...(args.options?.maxHeight ? { maxHeight: args.options.maxHeight } : {}),
      };
      const result = await ingestCsv(services, {
        source: file.createReadStream(),
        webhookUrl: args.webhookUrl ?? null,
        options,
        autoStart: args.autoStart ?? true,
        origin: 'graphql',
      });
      if (!result.ok) {
        if (result.reason === 'tooLarge') return invalidInput('file', 'TOO_LARGE', result.message);
        const count = result.problems.length;
        return {
          kind: 'CsvInvalidError',
          code: 'CSV_INVALID',
          message: `The CSV has ${count === 1 ? '1 problem' : `${count} problems`}; nothing was stored`,
          problems: result.problems,
        };
      }
      if (result.request.status === 'PROCESSING') services.workQueued();
      services.logger.info({ requestId: result.request.id, images: result.request.total }, 'request uploaded');
      return { kind: 'UploadCsvSuccess', request: result.request };
    },
  }),
);
