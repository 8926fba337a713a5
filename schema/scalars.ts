import { GraphQLError } from 'graphql';
import { GraphQLUpload } from 'graphql-upload-minimal';
import { builder } from './builder.ts';

builder.scalarType('DateTime', {
  description: 'ISO 8601 date and time, UTC',
  serialize: (value) => value.toISOString(),
  parseValue: (value) => {
    const date = typeof value === 'string' ? new Date(value) : undefined;
    if (!date || Number.isNaN(date.getTime())) throw new GraphQLError('DateTime must be an ISO 8601 string');
    return date;
  },
});

builder.addScalarType('Upload', GraphQLUpload, {});
