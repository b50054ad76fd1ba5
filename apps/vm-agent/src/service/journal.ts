/**
 * The journal: what the agent changed on the system, written *before* each change
 * (write-ahead), so that after a crash, a kill -9 or a reboot a new process knows exactly
 * what is its own to remove and which values to restore.
 *
 * Written atomically (@wgctl/state: temporary file 0600 → fsync → rename → fsync of the
 * directory): a reader sees either the old or the new record, never a torn one. A corrupt
 * file is an error (never silently ignored) unless the previous copy stands in for it.
 */
import { join } from 'node:path';
import { JOURNAL_PHASES } from '@wgctl/agent-kit';
import { JsonStateFile, schemaDecoder, type StateFileOptions } from '@wgctl/state';
import { z } from 'zod';
import { TABLES } from '../host/firewall';

const tableSchema = z.enum(TABLES);

/** The phase names of journals written before both agents shared one vocabulary: read as the new names, written as them. */
export const LEGACY_PHASES: Readonly<Record<string, (typeof JOURNAL_PHASES)[number]>> = { applying: 'up-in-progress', removing: 'down-in-progress' };

export const journalSchema = z.object({
  version: z.literal(1),
  /**
   * up-in-progress: an Up is (or was, when the process ended) in progress; up: Up completed;
   * down-in-progress: a Down is in progress. No 'down': Down removes the journal.
   */
  phase: z.preprocess((phase) => (typeof phase === 'string' ? (LEGACY_PHASES[phase] ?? phase) : phase), z.enum(JOURNAL_PHASES).exclude(['down'])),
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
  /**
   * The IPv6 side, present only when Up was asked to forward the Mac's IPv6 (mac_source6).
   * Optional: journals written before it existed still load. The ip6tables binaries are those
   * of `backend` (same kind), see host/firewall.ts ip6Tools.
   */
  v6: z
    .object({
      /** Canonical CIDR of the Mac's IPv6 source (ip6tables -S form). */
      macSource: z.string(),
      /** The tunnel IPv6 address the Mac's IPv6 is SNATed to. */
      tunnelAddress: z.string(),
      /** ip6 tables in which the agent created its chain. */
      chains: z.array(tableSchema),
      /** nft-backed ip6 tables that did not exist before the agent's first ip6tables rule. */
      createdTables: z.array(tableSchema),
      /** net.ipv6.conf.all.forwarding as found, and the value written. */
      forwarding: z.object({ previous: z.string(), applied: z.string() }).nullable(),
      /** accept_ra of the LAN interface, set 1 → 2 so forwarding does not cost the VM its own RA default route. */
      acceptRa: z.object({ interface: z.string(), previous: z.string(), applied: z.string() }).nullable(),
    })
    .optional(),
  updatedAtMs: z.number(),
});

export type JournalRecord = z.infer<typeof journalSchema>;

/**
 * read() → the record or null; write(record) refuses one the schema refuses; remove() (the
 * previous copy too). Checksummed; a corrupt record falls back to the previous copy (`.prev`),
 * and one unusable both ways makes Down go by names (engine/down.ts).
 */
export class JournalStore extends JsonStateFile<JournalRecord> {
  constructor(stateDir: string, fileName = 'journal.json', options: StateFileOptions = {}) {
    super(join(stateDir, fileName), schemaDecoder(journalSchema), options);
  }
}
