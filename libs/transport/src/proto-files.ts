/**
 * Where the .proto files are at run time. Server reflection needs the app protos (ts-proto
 * output carries no descriptors) and grpc.health.v1's proto. A bundle built by
 * tools/build/build.mjs carries them inside (the WGCTL_EMBEDDED_PROTOS define, read through
 * @wgctl/proto's embeddedProtos()); otherwise they are read from disk: protoDir() and the
 * grpc-health-check package.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type * as ProtoLoader from '@grpc/proto-loader';
import { embeddedProtos } from '@wgctl/proto';

const MARKER = join('wgctl', 'v1', 'common.proto');

const APP_PROTO_FILES = ['wgctl/v1/common.proto', 'wgctl/v1/vm_agent.proto', 'wgctl/v1/mac_agent.proto'];

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
  // Resolved at run time (createRequire hides it from bundlers), so a bundle that keeps
  // grpc-health-check external finds the installed package.
  const packageDir = dirname(createRequire(__filename).resolve('grpc-health-check/package.json'));
  const path = join(packageDir, 'proto', 'health', 'v1', 'health.proto');
  if (!existsSync(path)) throw new Error(`grpc-health-check is installed without its proto: ${path} is missing`);
  return path;
}

/** Include dir and file name of health.proto (its package path is health/v1/health.proto). */
function healthProtoInclude(): { includeDir: string; file: string } {
  const path = healthProtoPath();
  return { includeDir: resolve(dirname(path), '..', '..'), file: HEALTH_FILE };
}

/** Loaded on use: only servers (reflection) parse .proto files. */
function protoLoader(): typeof ProtoLoader {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('@grpc/proto-loader') as typeof ProtoLoader;
}

const LOAD_OPTIONS: ProtoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };
const HEALTH_FILE = 'health/v1/health.proto';

/** True inside a bundle whose build embedded the .proto sources. */
export function protosAreEmbedded(): boolean {
  return typeof WGCTL_EMBEDDED_PROTOS !== 'undefined' && Boolean(WGCTL_EMBEDDED_PROTOS);
}

/**
 * proto-loader reads files only, so embedded sources are written to a private temporary
 * directory for the duration of the load.
 */
function loadFromEmbedded(): ProtoLoader.PackageDefinition {
  const embedded = embeddedProtos();
  const dir = mkdtempSync(join(tmpdir(), 'wgctl-protos-'));
  try {
    const sources: Record<string, string> = {
      ...embedded.sources,
      [HEALTH_FILE]: embedded.health ?? readFileSync(healthProtoPath(), 'utf8'),
    };
    for (const [file, source] of Object.entries(sources)) {
      const path = join(dir, file);
      if (!path.startsWith(dir + '/')) throw new Error(`embedded proto has an unsafe name: ${file}`);
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, source, { mode: 0o600 });
    }
    return protoLoader().loadSync([...embedded.files, HEALTH_FILE], { ...LOAD_OPTIONS, includeDirs: [dir] });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Package definition of the wgctl services plus grpc.health.v1, for server reflection. */
export function loadReflectionPackageDefinition(): ProtoLoader.PackageDefinition {
  if (protosAreEmbedded()) return loadFromEmbedded();
  const health = healthProtoInclude();
  return protoLoader().loadSync([...APP_PROTO_FILES, health.file], {
    ...LOAD_OPTIONS,
    includeDirs: [protoDir(), health.includeDir],
  });
}
