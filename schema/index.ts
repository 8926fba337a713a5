import { lexicographicSortSchema } from 'graphql';
import { builder } from './builder.ts';
import './scalars.ts';
import './errors.ts';
import './product.ts';
import './request.ts';
import './upload.ts';
import './progress.ts';
import './webhook.ts';

export const schema = lexicographicSortSchema(builder.toSchema());
