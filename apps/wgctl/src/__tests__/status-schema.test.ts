/** docs/status-schema.md documents every field of the zod schema of `status --json` (status-schema.ts). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { macSideSchema, statusReportSchema, vmSideSchema } from '../status-schema';

function keysOf(schema: z.ZodType, prefix = ''): string[] {
  const def = (schema as unknown as { _zod: { def: { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; element?: z.ZodType; options?: z.ZodType[] } } })._zod.def;
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape ?? {}).flatMap(([k, v]) => [`${prefix}${k}`, ...keysOf(v, `${prefix}${k}.`)]);
    case 'nullable':
    case 'optional':
      return keysOf(def.innerType!, prefix);
    case 'array':
      return keysOf(def.element!, '');
    case 'union':
      return (def.options ?? []).flatMap((o) => keysOf(o, prefix));
    default:
      return [];
  }
}

describe('status schema documentation', () => {
  const doc = readFileSync(join(__dirname, '../../../../docs/status-schema.md'), 'utf8');

  it.each([
    ['top level', statusReportSchema],
    ['vm side', vmSideSchema],
    ['mac side', macSideSchema],
  ])('every %s field is in docs/status-schema.md', (_name, schema) => {
    const keys = [...new Set(keysOf(schema as z.ZodType))];
    expect(keys.length).toBeGreaterThan(5);
    const missing = keys.filter((k) => {
      const leaf = k.split('.').pop()!;
      return !doc.includes(`\`${k}\``) && !doc.includes(`\`${leaf}\``) && !new RegExp(`\\.${leaf}\`|\`${leaf}\\b`).test(doc);
    });
    expect(missing).toEqual([]);
  });
});
