/**
 * The single-file bundle (esbuild + the lazy-commands plugin): it runs, and `--help` does not
 * carry the heavy modules in the part V8 parses at start-up.
 */
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { BUNDLE_ENV, buildWgctlBundle, lazyCommandsModule, REPO_ROOT } from '../testing/bundle';

const root = REPO_ROOT;
let dir: string;
let bundle: string;
const runner = new ExecRunner();
// Each test names its commands cache directory; never the user's own.
const env: Record<string, string> = { ...BUNDLE_ENV };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wgctl-bundle-'));
  bundle = join(dir, 'wgctl.js');
  expect(lazyCommandsModule().MARKER).toBe('/*WGCTL-COMMANDS:');
  await buildWgctlBundle(bundle);
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const node = (args: string[], input?: string, extraEnv: Record<string, string> = {}) =>
  runner.run([process.execPath, bundle, ...args], { allowFailure: true, timeoutMs: 30_000, env: { ...env, ...extraEnv }, input, cwd: dir, readOnly: true });

describe('bundled wgctl', () => {
  it('--help works and the start-up part holds commander but none of the heavy modules', async () => {
    const r = await node(['--help']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^Usage: wgctl/);
    const text = readFileSync(bundle, 'utf8');
    const cut = text.lastIndexOf('/*WGCTL-COMMANDS:');
    expect(cut).toBeGreaterThan(0);
    const startup = text.slice(0, cut);
    expect(startup).toContain('node_modules/commander/');
    for (const heavy of ['@grpc/grpc-js', 'listr2', 'zod', '@peculiar', 'winston', 'libs/parsers', 'libs/transport']) {
      expect(startup).not.toContain(`node_modules/${heavy}/`);
      expect(startup).not.toContain(`// ${heavy}/`);
    }
    // The start-up part is small; the rest is one compressed comment.
    expect(startup.length).toBeLessThan(250_000);
  });

  it('commands load from the compressed section: debug parse, its error path, init', async () => {
    const ok = await node(['debug', 'parse', 'resolv-conf', '-'], 'nameserver 192.0.2.53\nsearch example.net\n');
    expect(ok.stderr).toBe('');
    expect(ok.exitCode).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ nameservers: ['192.0.2.53'], search: ['example.net'] });

    const bad = await node(['debug', 'parse', 'wg-dump', '-'], 'nonsense\n');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toMatch(/^wgctl: debug parse wg-dump: stdin: /);
    expect(bad.stderr).not.toMatch(/^\s+at /m);

    const init = await node(['--json', 'init', '--dir', join(dir, 'cfg'), '--vm-address', '192.0.2.10']);
    expect(init.stderr).toBe('');
    expect(init.exitCode).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({ command: 'init', newCa: true });

    const parseHelp = await node(['debug', 'parse', '--help']);
    expect(parseHelp.stdout).toMatch(/^ {2}wg-dump +wg show IF dump/m);
  });

  it('keeps the decoded commands and a V8 code cache per user, and survives a stale, corrupt or unwritable cache', async () => {
    const cacheDir = join(dir, 'cache');
    const parse = () => node(['debug', 'parse', 'resolv-conf', '-'], 'nameserver 192.0.2.53\n', { WGCTL_CACHE_DIR: cacheDir });
    const expectParsed = (r: { exitCode: number; stdout: string; stderr: string }) => {
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ nameservers: ['192.0.2.53'] });
    };
    const files = () => readdirSync(cacheDir).sort();

    expectParsed(await parse());
    const written = files();
    // The decoded source, and the code cache of the command that ran (one per command).
    expect(written).toEqual([expect.stringMatching(/^commands-[0-9a-f]{16}-debug-parse\.v8$/), expect.stringMatching(/^commands-[0-9a-f]{16}\.js$/)]);
    const [codeCache, source] = written.map((f) => join(cacheDir, f));
    const cachedBytes = readFileSync(codeCache);
    expectParsed(await parse());
    expect(readFileSync(codeCache).equals(cachedBytes)).toBe(true); // accepted: not rewritten

    // Flipped bytes in the code cache: refused by its checksum, rewritten.
    const corrupt = Buffer.from(cachedBytes);
    for (let i = 100; i < corrupt.length; i += 997) corrupt[i] ^= 0xff;
    writeFileSync(codeCache, corrupt);
    expectParsed(await parse());
    expect(readFileSync(codeCache).subarray(0, 64).toString()).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(codeCache).equals(corrupt)).toBe(false);

    // A source of the right size but other content (an older build, damage): not run.
    const text = readFileSync(source, 'utf8');
    writeFileSync(source, text.replace('nameservers', 'NAMESERVERS'));
    expectParsed(await parse());
    expect(readFileSync(source, 'utf8')).toBe(text);

    // Writable by others: not trusted (and not run), whatever it holds.
    writeFileSync(source, text.replace('nameservers', 'NAMESERVERS'));
    chmodSync(source, 0o666);
    expectParsed(await parse());

    // Files of another build are removed when this build writes its own.
    rmSync(cacheDir, { recursive: true, force: true });
    expectParsed(await parse());
    writeFileSync(join(cacheDir, 'commands-0123456789abcdef-status.v8'), 'old');
    writeFileSync(join(cacheDir, 'commands-0123456789abcdef.js'), 'old');
    rmSync(codeCache);
    expectParsed(await parse());
    expect(files()).toEqual(written);

    // Another command gets its own code cache next to the first.
    expect((await node(['debug', 'parse', '--help'], undefined, { WGCTL_CACHE_DIR: cacheDir })).exitCode).toBe(0);
    await node(['--json', 'init', '--dir', join(dir, 'cfg2'), '--vm-address', '192.0.2.10'], undefined, { WGCTL_CACHE_DIR: cacheDir });
    expect(files()).toEqual([...written.slice(0, 1), expect.stringMatching(/^commands-[0-9a-f]{16}-init\.v8$/), ...written.slice(1)]);

    // A cache directory that cannot be created: commands still run.
    writeFileSync(join(dir, 'not-a-dir'), '');
    expectParsed(await node(['debug', 'parse', 'resolv-conf', '-'], 'nameserver 192.0.2.53\n', { WGCTL_CACHE_DIR: join(dir, 'not-a-dir', 'cache') }));
  });
});
