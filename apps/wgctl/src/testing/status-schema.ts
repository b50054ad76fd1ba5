/**
 * What the tests validate `wgctl status --json` with: the product's zod schema
 * (../status-schema.ts) AND the published docs/status.schema.json through a real JSON Schema
 * validator (ajv, draft 2020-12, with formats). `statusReportSchema` here is the zod schema with
 * ajv's verdict added, so every test that parses a status document checks both.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { statusReportSchema as productSchema, STATUS_JSON_SCHEMA_FILE } from '../status-schema';

export { macSideSchema, vmSideSchema } from '../status-schema';

const ROOT = join(__dirname, '../../../..');

/** The checked-in file (not a fresh generation): what users get is what is validated. */
export function publishedStatusJsonSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, STATUS_JSON_SCHEMA_FILE), 'utf8')) as Record<string, unknown>;
}

let compiled: ReturnType<Ajv2020['compile']> | undefined;

/** ajv's errors for `doc` against docs/status.schema.json ('/vm/health/state: must be equal to one of …'); [] = valid. */
export function publishedSchemaErrors(doc: unknown): string[] {
  if (!compiled) {
    // strict: a keyword ajv does not know (a typo in the generator) is an error, not ignored.
    const ajv = new Ajv2020({ allErrors: true, strict: true });
    addFormats(ajv);
    compiled = ajv.compile(publishedStatusJsonSchema());
  }
  if (compiled(doc)) return [];
  return (compiled.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? e.keyword}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
}

export const statusReportSchema = productSchema.superRefine((doc, ctx) => {
  for (const error of publishedSchemaErrors(doc)) ctx.addIssue({ code: 'custom', message: `docs/status.schema.json (ajv): ${error}` });
});
