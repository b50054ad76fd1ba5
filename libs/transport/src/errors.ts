/**
 * gRPC status errors for handlers, and the mapping of anything a handler throws to a status
 * that is safe to send (no secrets, no stack traces).
 */
import * as grpc from '@grpc/grpc-js';
import { cutText, redactText } from '@wgctl/logging';
import { formatZodError } from '@wgctl/config';
import { ZodError } from 'zod';

/** What handlers throw (or pass to callbacks); grpc-js reads `code` and `details`. */
export interface StatusError extends Error {
  code: grpc.status;
  details: string;
  metadata?: grpc.Metadata;
}

/**
 * Longest status message sent. It travels in the HTTP/2 trailers (grpc-message), which grpc-js
 * writes through encodeURI (up to 3 bytes per byte), and clients cap trailers: gRPC's
 * PROTOCOL-HTTP2.md suggests 8 KiB (C core and Java keep it); a grpc-js client on Node 20 lost
 * the status past ~85 kB encoded (measured: DEADLINE_EXCEEDED or UNAVAILABLE, not the real
 * code). 1 KiB, at most 3 KiB encoded, fits all of them with room for the other trailers.
 */
export const MAX_STATUS_DETAILS_BYTES = 1024;

/** Every status made here is bounded (see MAX_STATUS_DETAILS_BYTES); toStatusError maps the rest here. */
export function statusError(code: grpc.status, message: string): StatusError {
  const details = cutText(message, MAX_STATUS_DETAILS_BYTES);
  const error = new Error(details) as StatusError;
  error.name = `GrpcStatus(${grpc.status[code] ?? code})`;
  error.code = code;
  error.details = details;
  return error;
}

export const invalidArgument = (message: string): StatusError => statusError(grpc.status.INVALID_ARGUMENT, message);
export const failedPrecondition = (message: string): StatusError => statusError(grpc.status.FAILED_PRECONDITION, message);
export const permissionDenied = (message: string): StatusError => statusError(grpc.status.PERMISSION_DENIED, message);
export const unavailable = (message: string): StatusError => statusError(grpc.status.UNAVAILABLE, message);
export const aborted = (message: string): StatusError => statusError(grpc.status.ABORTED, message);
const internal = (message: string): StatusError => statusError(grpc.status.INTERNAL, message);

/** A failure status: 1 (CANCELLED) … 16 (UNAUTHENTICATED). An error claiming OK (0) is not one. */
function isGrpcStatusCode(value: unknown): value is grpc.status {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 16;
}

/** True for objects carrying a numeric gRPC failure `code` (server- or client-side errors). */
export function isStatusError(value: unknown): value is { code: grpc.status; details?: string; message?: string } {
  return typeof value === 'object' && value !== null && isGrpcStatusCode((value as { code?: unknown }).code);
}

/**
 * Maps whatever a handler threw to a status error: objects with a gRPC `code` pass through
 * (details redacted), ZodError → INVALID_ARGUMENT naming the fields, anything else → INTERNAL
 * with the redacted message.
 */
export function toStatusError(thrown: unknown): StatusError {
  if (isStatusError(thrown)) {
    const details = redactText(String(thrown.details ?? thrown.message ?? grpc.status[thrown.code]));
    const error = statusError(thrown.code, details);
    const metadata = (thrown as { metadata?: unknown }).metadata;
    if (metadata instanceof grpc.Metadata) error.metadata = metadata;
    return error;
  }
  if (thrown instanceof ZodError) {
    return invalidArgument(redactText(formatZodError(thrown).split('\n').join('; ')));
  }
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return internal(redactText(message || 'internal error'));
}
