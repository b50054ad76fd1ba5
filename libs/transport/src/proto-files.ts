/**
 * Where the .proto files are at run time. Server reflection needs the app protos (ts-proto
 * output carries no descriptors) and the health proto; bundles ship proto/ next to themselves
 * and keep grpc-health-check / @grpc/reflection as external packages.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';

const MARKER = join('wgctl', 'v1', 'common.proto');

export const APP_PROTO_FILES = ['wgctl/v1/common.proto', 'wgctl/v1/vm_agent.proto', 'wgctl/v1/mac_agent.proto'];

function candidateProtoDirs(): string[] {
  const candidates: string[] = [];
  if (process.env.WGCTL_PROTO_DIR) candidates.push(process.env.WGCTL_PROTO_DIR);
  // In an esbuild bundle __dirname is the bundle's directory; the entry script's too.
  candidates.push(join(__dirname, 'proto'));
  const entry = require.main?.filename ?? process.argv[1];
  if (entry) candidates.push(join(dirname(entry), 'proto'));
  // Running from the repository (tests, ts sources): walk up to the repo's proto/.
  for (let dir = __dirname, i = 0; i < 8; i++, dir = dirname(dir)) {
    candidates.push(join(dir, 'proto'));
    if (dirname(dir) === dir) break;
  }
  return candidates;
}

/**
 * The directory holding wgctl/v1/*.proto: $WGCTL_PROTO_DIR, else <bundle dir>/proto, else the
 * repository's proto/. Throws listing where it looked.
 */
export function protoDir(): string {
  const candidates = candidateProtoDirs();
  if (process.env.WGCTL_PROTO_DIR) {
    const dir = resolve(process.env.WGCTL_PROTO_DIR);
    if (existsSync(join(dir, MARKER))) return dir;
    throw new Error(`WGCTL_PROTO_DIR=${process.env.WGCTL_PROTO_DIR} does not contain ${MARKER}`);
  }
  for (const dir of candidates) {
    if (existsSync(join(dir, MARKER))) return resolve(dir);
  }
  throw new Error(`cannot find the wgctl .proto files (${MARKER}); looked in: ${candidates.join(', ')}; set WGCTL_PROTO_DIR`);
}

/** Absolute path of grpc.health.v1's health.proto inside the grpc-health-check package. */
export function healthProtoPath(): string {
  // Resolved at run time, so a bundle that keeps grpc-health-check external finds it.
  const packageDir = dirname(require.resolve('grpc-health-check/package.json'));
  const path = join(packageDir, 'proto', 'health', 'v1', 'health.proto');
  if (!existsSync(path)) throw new Error(`grpc-health-check is installed without its proto: ${path} is missing`);
  return path;
}

/** Include dir and file name of health.proto (its package path is health/v1/health.proto). */
function healthProtoInclude(): { includeDir: string; file: string } {
  const path = healthProtoPath();
  return { includeDir: resolve(dirname(path), '..', '..'), file: 'health/v1/health.proto' };
}

/** Package definition of the wgctl services plus grpc.health.v1, for server reflection. */
export function loadReflectionPackageDefinition(): protoLoader.PackageDefinition {
  const health = healthProtoInclude();
  return protoLoader.loadSync([...APP_PROTO_FILES, health.file], {
    includeDirs: [protoDir(), health.includeDir],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}
