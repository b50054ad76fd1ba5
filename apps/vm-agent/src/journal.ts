/**
 * The journal: what the agent changed on the system, written *before* each change
 * (write-ahead), so that after a crash, a kill -9 or a reboot a new process knows exactly
 * what is its own to remove and which values to restore.
 *
 * Written atomically: temporary file (0600) → fsync → rename → fsync of the directory.
 * A reader sees either the old or the new record, never a torn one.
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';

export const TABLES = ['filter', 'nat', 'mangle'] as const;
export type FirewallTable = (typeof TABLES)[number];

const tableSchema = z.enum(TABLES);

export const journalSchema = z.object({
  version: z.literal(1),
  /** applying: an Up is (or was, when it crashed) in progress; up: Up completed; removing: a Down is in progress. */
  phase: z.enum(['applying', 'up', 'removing']),
  interface: z.string().min(1),
  configPath: z.string().min(1),
  /** Canonical CIDR of the Mac's source address. */
  macSource: z.string(),
  lanInterface: z.string(),
  tunnelAddress: z.string(),
  backend: z
    .object({ kind: z.enum(['nft', 'legacy']), iptables: z.string(), save: z.string(), version: z.string() })
    .nullable(),
  /** Tables (filter/nat/mangle) in which the agent created its chain. */
  chains: z.array(tableSchema),
  /** nft-backed tables that did not exist before the agent's first rule: deleted again when left empty. */
  createdTables: z.array(tableSchema),
  /** ip_forward as found before the agent changed it, and the value it wrote. */
  ipForward: z.object({ previous: z.string(), applied: z.string() }).nullable(),
  /** Set when the agent brought the WireGuard interface up (so Down takes it down). */
  wgInterface: z
    .object({
      method: z.enum(['wg-quick', 'systemd-unit', 'systemd-run']),
      /** src_valid_mark before wg-quick (full-tunnel configs set it to 1 and never restore it). */
      srcValidMarkPrevious: z.string().nullable(),
    })
    .nullable(),
  updatedAtMs: z.number(),
});

export type JournalRecord = z.infer<typeof journalSchema>;

export class JournalError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JournalError';
  }
}

export class JournalStore {
  readonly path: string;

  constructor(stateDir: string, fileName = 'journal.json') {
    this.path = join(stateDir, fileName);
  }

  /** The record, or null when there is none. A corrupt file is an error (never silently ignored). */
  async read(): Promise<JournalRecord | null> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new JournalError(`${this.path} is not valid JSON (${(e as Error).message}); inspect it, then remove it to start over`);
    }
    const parsed = journalSchema.safeParse(data);
    if (!parsed.success) {
      const first = parsed.error.issues[0];
      throw new JournalError(`${this.path}: ${first.path.join('.') || '(root)'}: ${first.message}; inspect it, then remove it to start over`);
    }
    return parsed.data;
  }

  async write(record: JournalRecord): Promise<void> {
    const valid = journalSchema.parse(record);
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.tmp-${process.pid}`;
    const file = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
    try {
      await file.chmod(0o600); // O_CREAT's mode is masked by the umask; be explicit
      await file.writeFile(`${JSON.stringify(valid, null, 2)}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, this.path);
    await syncDir(dir);
  }

  async remove(): Promise<void> {
    await rm(this.path, { force: true });
    await syncDir(dirname(this.path));
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
