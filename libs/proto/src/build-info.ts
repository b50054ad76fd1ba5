/**
 * Facts the build (tools/build/build.mjs) embeds in each bundle; in tests and dev runs they
 * fall back to the repository's files.
 */
/// <reference path="./build-globals.d.ts" />
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export const PROTOCOL_VERSION = 'wgctl.v1';

export function wgctlVersion(): string {
  if (typeof WGCTL_VERSION !== 'undefined' && WGCTL_VERSION) return WGCTL_VERSION;
  try {
    return JSON.parse(readFileSync(resolve(__dirname, '../../../package.json'), 'utf8')).version;
  } catch {
    return '0.0.0-dev';
  }
}

export interface EmbeddedProtos {
  /** Paths relative to the proto root, e.g. "wgctl/v1/common.proto". */
  files: string[];
  sources: Record<string, string>;
  /** grpc.health.v1 health.proto, for reflection. */
  health?: string;
}

function listProtos(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listProtos(join(dir, e.name)) : e.name.endsWith('.proto') ? [join(dir, e.name)] : [],
  );
}

/** The .proto sources of wgctl.v1: embedded in bundles, read from proto/ otherwise. */
export function embeddedProtos(): EmbeddedProtos {
  if (typeof WGCTL_EMBEDDED_PROTOS !== 'undefined' && WGCTL_EMBEDDED_PROTOS) return JSON.parse(WGCTL_EMBEDDED_PROTOS);
  const dir = process.env.WGCTL_PROTO_DIR ?? resolve(__dirname, '../../../proto');
  const files = listProtos(dir).map((f) => relative(dir, f));
  return { files, sources: Object.fromEntries(files.map((f) => [f, readFileSync(join(dir, f), 'utf8')])) };
}
