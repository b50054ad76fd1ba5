/**
 * StrictModes on real files (we run as root, so chown to another uid is possible): the path and
 * every directory above it must be owned by root/the user and not writable by group or others.
 */
import { chmodSync, chownSync, lchownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTrustedPath, ensureTrustedDirectory, UntrustedPathError } from '../trusted-path';

const OTHER_UID = 4242;
const asRoot = { owners: [0] };

describe('checkTrustedPath', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    // mkdtemp: 0700 root, under /tmp (1777 root: the sticky parent is accepted)
    dir = mkdtempSync(join(tmpdir(), 'wth-trust-'));
    mkdirSync(join(dir, 'tls'), { mode: 0o755 });
    file = join(dir, 'tls', 'ca.crt');
    writeFileSync(file, 'pem\n', { mode: 0o644 });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a 0644 root file in 0755/0700 root directories under the root-owned sticky /tmp', () => {
    expect(() => checkTrustedPath(file, { what: 'CA certificate', ...asRoot })).not.toThrow();
    expect(() => checkTrustedPath(join(dir, 'tls'), { what: 'TLS directory', kind: 'directory', ...asRoot })).not.toThrow();
  });

  it('refuses a world-writable file, naming it and the fix', () => {
    chmodSync(file, 0o666);
    expect(() => checkTrustedPath(file, { what: 'CA certificate', ...asRoot })).toThrow(
      `CA certificate ${file} is writable by group and others (mode 0666); run: chmod go-w ${file}`,
    );
  });

  it('refuses a group-writable parent directory, naming that directory', () => {
    chmodSync(join(dir, 'tls'), 0o775);
    expect(() => checkTrustedPath(file, { what: 'CA certificate', ...asRoot })).toThrow(
      `CA certificate ${file}: ${join(dir, 'tls')} is writable by group (mode 0775); run: chmod go-w ${join(dir, 'tls')}`,
    );
  });

  it('refuses a file or a parent owned by another user, with chown root as the fix', () => {
    chownSync(file, OTHER_UID, 0);
    expect(() => checkTrustedPath(file, { what: 'private key', ...asRoot })).toThrow(`is owned by uid ${OTHER_UID}, not root; run: chown root ${file}`);
    chownSync(file, 0, 0);
    chownSync(dir, OTHER_UID, 0);
    expect(() => checkTrustedPath(file, { what: 'private key', ...asRoot })).toThrow(`${dir} is owned by uid ${OTHER_UID}, not root; run: chown root ${dir}`);
  });

  it('gives both fixes when owner and mode are wrong', () => {
    chownSync(file, OTHER_UID, 0);
    chmodSync(file, 0o646);
    expect(() => checkTrustedPath(file, { what: 'CA certificate', ...asRoot })).toThrow(`run: chown root ${file} && chmod go-w ${file}`);
  });

  it('accepts the user as owner when the user is in owners (the controller)', () => {
    chownSync(file, OTHER_UID, 0);
    chownSync(join(dir, 'tls'), OTHER_UID, 0);
    expect(() => checkTrustedPath(file, { what: 'CA certificate', owners: [OTHER_UID, 0] })).not.toThrow();
  });

  it('refuses a sticky world-writable directory that is not root-owned, and the sticky directory as the path itself', () => {
    const sticky = join(dir, 'sticky');
    mkdirSync(sticky);
    chmodSync(sticky, 0o1777);
    writeFileSync(join(sticky, 'journal.json'), '{}', { mode: 0o600 });
    expect(() => checkTrustedPath(join(sticky, 'journal.json'), { what: 'journal', ...asRoot })).not.toThrow();
    expect(() => checkTrustedPath(sticky, { what: 'state directory', kind: 'directory', ...asRoot })).toThrow('is writable by group and others (mode 1777)');
    chownSync(sticky, OTHER_UID, 0);
    expect(() => checkTrustedPath(join(sticky, 'journal.json'), { what: 'journal', ...asRoot })).toThrow(`${sticky} is owned by uid ${OTHER_UID}`);
  });

  it('refuses a sticky group-writable directory owned by root only as the target, not as a parent', () => {
    chmodSync(join(dir, 'tls'), 0o1775);
    expect(() => checkTrustedPath(file, { what: 'CA certificate', ...asRoot })).not.toThrow();
  });

  it('follows symlinks, checking the link owner and the directories it leads through', () => {
    const writable = join(dir, 'open');
    mkdirSync(writable);
    writeFileSync(join(writable, 'ca.crt'), 'pem\n', { mode: 0o644 });
    chmodSync(writable, 0o777);
    const link = join(dir, 'tls', 'linked.crt');
    symlinkSync(join(writable, 'ca.crt'), link);
    expect(() => checkTrustedPath(link, { what: 'CA certificate', ...asRoot })).toThrow(`${writable} is writable by group and others (mode 0777)`);
    chmodSync(writable, 0o755);
    expect(() => checkTrustedPath(link, { what: 'CA certificate', ...asRoot })).not.toThrow();
    lchownSync(link, OTHER_UID, 0);
    expect(() => checkTrustedPath(link, { what: 'CA certificate', ...asRoot })).toThrow(`${link} is owned by uid ${OTHER_UID}`);
  });

  it('follows relative symlinks and .. in their targets', () => {
    symlinkSync('../tls/./ca.crt', join(dir, 'tls', 'rel.crt'));
    expect(() => checkTrustedPath(join(dir, 'tls', 'rel.crt'), { what: 'CA certificate', ...asRoot })).not.toThrow();
    chmodSync(file, 0o666);
    expect(() => checkTrustedPath(join(dir, 'tls', 'rel.crt'), { what: 'CA certificate', ...asRoot })).toThrow(`: ${file} is writable by group and others`);
  });

  it('refuses a loop of symlinks and a missing path with a plain error', () => {
    symlinkSync('b', join(dir, 'a'));
    symlinkSync('a', join(dir, 'b'));
    expect(() => checkTrustedPath(join(dir, 'a'), { what: 'journal', ...asRoot })).toThrow('too many symbolic links');
    expect(() => checkTrustedPath(join(dir, 'none'), { what: 'journal', ...asRoot })).toThrow(`${join(dir, 'none')} does not exist`);
  });

  it('refuses a directory where a file is expected, and the reverse', () => {
    expect(() => checkTrustedPath(join(dir, 'tls'), { what: 'CA certificate', ...asRoot })).toThrow('is not a regular file');
    expect(() => checkTrustedPath(file, { what: 'TLS directory', kind: 'directory', ...asRoot })).toThrow('is not a directory');
  });

  it('quotes paths with spaces in the fix (macOS: /Library/Application Support)', () => {
    const spaced = join(dir, 'Application Support');
    mkdirSync(spaced, { mode: 0o777 });
    chmodSync(spaced, 0o777);
    writeFileSync(join(spaced, 'j'), '');
    expect(() => checkTrustedPath(join(spaced, 'j'), { what: 'journal', ...asRoot })).toThrow(`run: chmod go-w '${spaced}'`);
  });

  it('throws an UntrustedPathError carrying the offending path and the fix', () => {
    chmodSync(file, 0o664);
    let caught: unknown;
    try {
      checkTrustedPath(file, { what: 'CA certificate', ...asRoot });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(UntrustedPathError);
    expect(caught).toMatchObject({ path: file, offender: file, fix: `chmod go-w ${file}` });
  });
});

describe('ensureTrustedDirectory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-trust-state-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a missing state directory 0700 and accepts it', () => {
    const state = join(dir, 'var', 'state');
    ensureTrustedDirectory(state, 'state directory', [0]);
    expect(() => checkTrustedPath(state, { what: 'x', kind: 'directory', owners: [0] })).not.toThrow();
  });

  it('refuses a writable state directory, and a writable or foreign journal in it', () => {
    const state = join(dir, 'state');
    mkdirSync(state, { mode: 0o700 });
    chmodSync(state, 0o777);
    expect(() => ensureTrustedDirectory(state, 'state directory', [0])).toThrow(`state directory ${state} is writable by group and others (mode 0777); run: chmod go-w ${state}`);
    chmodSync(state, 0o700);
    writeFileSync(join(state, 'journal.json'), '{}', { mode: 0o600 });
    chmodSync(join(state, 'journal.json'), 0o620);
    expect(() => ensureTrustedDirectory(state, 'state directory', [0])).toThrow(`file in the state directory ${join(state, 'journal.json')} is writable by group`);
    chmodSync(join(state, 'journal.json'), 0o600);
    chownSync(join(state, 'journal.json'), OTHER_UID, 0);
    expect(() => ensureTrustedDirectory(state, 'state directory', [0])).toThrow(`run: chown root ${join(state, 'journal.json')}`);
  });
});
