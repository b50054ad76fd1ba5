import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { failedPrecondition, invalidArgument, isStatusError, toStatusError } from '../index';

const KEY = 'yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=';

describe('toStatusError', () => {
  it('passes status errors through with redacted details', () => {
    expect(toStatusError(failedPrecondition('tunnel is down'))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'tunnel is down' });
    const mapped = toStatusError({ code: grpc.status.NOT_FOUND, details: `peer private_key=${KEY} missing` });
    expect(mapped.code).toBe(grpc.status.NOT_FOUND);
    expect(mapped.details).not.toContain(KEY);
  });

  it('maps ZodError to INVALID_ARGUMENT naming the fields', () => {
    const result = z.object({ port: z.number().max(10), name: z.string() }).safeParse({ port: 11, name: 3 });
    const mapped = toStatusError(result.error);
    expect(mapped.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(mapped.details).toMatch(/^port: .*; name: /);
  });

  it('maps everything else to INTERNAL with a redacted message', () => {
    const mapped = toStatusError(new Error(`wg failed: PrivateKey = ${KEY}`));
    expect(mapped.code).toBe(grpc.status.INTERNAL);
    expect(mapped.details).toContain('wg failed');
    expect(mapped.details).not.toContain(KEY);
    expect(toStatusError('boom')).toMatchObject({ code: grpc.status.INTERNAL, details: 'boom' });
    // Not gRPC codes: errno strings, HTTP-ish numbers, and a bogus OK.
    expect(toStatusError(Object.assign(new Error('nope'), { code: 'ENOENT' })).code).toBe(grpc.status.INTERNAL);
    expect(toStatusError({ code: 404, message: 'x' }).code).toBe(grpc.status.INTERNAL);
    expect(toStatusError({ code: 0, message: 'x' }).code).toBe(grpc.status.INTERNAL);
  });

  it('recognises status errors', () => {
    expect(isStatusError(invalidArgument('bad'))).toBe(true);
  });
});
