/**
 * Replaces apps/wgctl/src/load-commands.ts in the release bundle (see lazy-commands.cjs).
 * The __WGCTL_…__ tokens are filled in at build time.
 *
 * On the first command: the commands section (a brotli+base64 comment at the end of this
 * file) is decoded and compiled. Both steps cost ~80 ms per run (V8 parses ~3 MB; brotli
 * ~15 ms), so the decoded source and V8's code cache (`vm.Script` `cachedData`; Node 20 has
 * no `module.enableCompileCache`) are kept under the user's cache directory, keyed by the
 * hash of the commands code (one code cache per command): later runs read both instead.
 *
 * The cache is an optimisation only: any problem (missing, stale, corrupt, foreign, not
 * writable) falls back to decoding the bundle, silently. Its files are trusted only if this
 * user owns them and nobody else can write them; the source must match the build-time
 * SHA-256, the code cache its own stored SHA-256 (V8 itself only checks length, version and
 * flags). WGCTL_CACHE_DIR overrides the directory; WGCTL_CACHE_DIR= (empty) disables it.
 */
const fs = require('node:fs');
const { join } = require('node:path');
const { Script } = require('node:vm');

const MARKER = __WGCTL_MARKER__;
const CODE_SHA256 = __WGCTL_CODE_SHA256__;
const CODE_BYTES = __WGCTL_CODE_BYTES__;
const WRAPPER_HEAD = '(function (exports, require, module, __filename, __dirname) {';
const WRAPPER_TAIL = '\n})';

let loaded;

/** `command` (e.g. 'status') picks the code cache: each holds what its command compiled. */
export function commands(command) {
  if (loaded) return loaded;
  const cache = cachePaths(command);
  let code = cache && readTrusted(cache.source, CODE_BYTES);
  const sourceCached = Boolean(code && sha256(code) === CODE_SHA256);
  code = sourceCached ? code.toString('utf8') : decodeFromBundle();
  const cachedData = sourceCached ? readCodeCache(cache.codeCache) : undefined;

  const script = new Script(WRAPPER_HEAD + code + WRAPPER_TAIL, {
    filename: __filename + ' [commands]',
    cachedData,
  });
  if (cache && (!sourceCached || !cachedData || script.cachedDataRejected)) {
    // At exit, so the cache also holds the functions the command compiled while it ran.
    process.once('exit', () => writeCache(cache, sourceCached ? undefined : code, script));
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, require, module, __filename, __dirname);
  loaded = module.exports;
  return loaded;
}

function decodeFromBundle() {
  const { brotliDecompressSync } = require('node:zlib');
  const text = fs.readFileSync(__filename, 'latin1');
  const start = text.lastIndexOf(MARKER);
  const end = text.indexOf('*/', start);
  if (start < 0 || end < 0) throw new Error('wgctl bundle is damaged: the commands section is missing (' + __filename + ')');
  return brotliDecompressSync(Buffer.from(text.slice(start + MARKER.length, end), 'base64')).toString('utf8');
}

function sha256(data) {
  return require('node:crypto').createHash('sha256').update(data).digest('hex');
}

/** The cache files, or undefined when there is no usable per-user cache directory. */
function cachePaths(command) {
  try {
    const env = process.env;
    let dir = env.WGCTL_CACHE_DIR;
    if (dir === '') return undefined;
    if (dir === undefined) {
      const home = env.HOME || require('node:os').homedir();
      // `sudo wgctl` with the user's HOME: root must neither trust nor create files there.
      if (!home || fs.statSync(home).uid !== currentUid()) return undefined;
      dir =
        process.platform === 'darwin'
          ? join(home, 'Library', 'Caches', 'wgctl')
          : join(env.XDG_CACHE_HOME || join(home, '.cache'), 'wgctl');
    }
    const stem = join(dir, 'commands-' + CODE_SHA256.slice(0, 16));
    const key = typeof command === 'string' && /^[a-z][a-z-]{0,31}$/.test(command) ? command : 'any';
    return { dir, source: stem + '.js', codeCache: stem + '-' + key + '.v8' };
  } catch {
    return undefined;
  }
}

function currentUid() {
  return typeof process.getuid === 'function' ? process.getuid() : -1;
}

/** The file's bytes if this user owns it and no one else may write it (and, given, of that size). */
function readTrusted(path, expectedBytes) {
  let fd;
  try {
    fd = fs.openSync(path, 'r');
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.uid !== currentUid() || (st.mode & 0o022) !== 0) return undefined;
    if (expectedBytes !== undefined && st.size !== expectedBytes) return undefined;
    const data = Buffer.allocUnsafe(st.size);
    let offset = 0;
    while (offset < st.size) {
      const n = fs.readSync(fd, data, offset, st.size - offset, offset);
      if (n === 0) return undefined;
      offset += n;
    }
    return data;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Code cache file: 64 hex chars of SHA-256 of the data, then the data. */
function readCodeCache(path) {
  const file = readTrusted(path);
  if (!file || file.length <= 64) return undefined;
  const data = file.subarray(64);
  return file.toString('latin1', 0, 64) === sha256(data) ? data : undefined;
}

function writeCache(cache, code, script) {
  try {
    fs.mkdirSync(cache.dir, { recursive: true, mode: 0o700 });
    if (code !== undefined) writeAtomically(cache.source, Buffer.from(code, 'utf8'));
    const data = script.createCachedData();
    writeAtomically(cache.codeCache, Buffer.concat([Buffer.from(sha256(data), 'latin1'), data]));
    removeOtherBuilds(cache);
  } catch {
    // read-only home, full disk, …: the next run decodes the bundle again
  }
}

/** Each build leaves its own files: keep only this one's. */
function removeOtherBuilds(cache) {
  const current = 'commands-' + CODE_SHA256.slice(0, 16);
  for (const name of fs.readdirSync(cache.dir)) {
    const build = /^(commands-[0-9a-f]{16})(?:-[a-z-]+)?\.(?:js|v8)$/.exec(name);
    if (build && build[1] !== current) fs.rmSync(join(cache.dir, name), { force: true });
  }
}

/** Readers see the old file or the whole new one, never a partial write. */
function writeAtomically(path, data) {
  const temp = path + '.' + process.pid + '.tmp';
  try {
    fs.writeFileSync(temp, data, { mode: 0o600 });
    fs.renameSync(temp, path);
  } catch (error) {
    try {
      fs.unlinkSync(temp);
    } catch {
      // nothing to remove
    }
    throw error;
  }
}
