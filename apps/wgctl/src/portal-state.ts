/**
 * What the controller remembers of a captive portal that `wgctl up` found, for `wgctl status`.
 * The agents never see the probe (the controller asks it, after the rollback), so the controller
 * keeps it: a small JSON file next to its config (and its lock), written atomically, mode 0600.
 * `up` writes it when its probe finds a portal and removes it when the network is shown free of
 * one (a successful `up`/`portal`, or a probe answered as the internet would).
 *
 * parsePortalState is pure; the rest is file I/O that never throws at `status` (a file it cannot
 * read or understand is ignored, with a note saying so).
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '@wgctl/state';
import type { ProbeVerdict } from './orchestrator';

export const PORTAL_STATE_FILE = 'wgctl.portal.json';

const portalDetectionSchema = z.strictObject({
  detectedAt: z.iso.datetime(),
  probeUrl: z.string().min(1),
  /** The address the probe URL's host resolved to (the portal answered there). */
  address: z.string(),
  status: z.number().int(),
  /** The redirect's target (the login page), when the portal redirected. */
  location: z.string().nullable(),
  detail: z.string(),
});

export type PortalDetection = z.infer<typeof portalDetectionSchema>;

export type PortalStateRead = { detection: PortalDetection | null; note?: string };

export function portalStatePath(configDir: string): string {
  return join(configDir, PORTAL_STATE_FILE);
}

export function portalDetection(verdict: Extract<ProbeVerdict, { kind: 'portal' }>, at: Date): PortalDetection {
  return { detectedAt: at.toISOString(), probeUrl: verdict.url, address: verdict.address, status: verdict.status, location: verdict.location ?? null, detail: verdict.detail };
}

/** The record in `text`, or why it is not one. */
export function parsePortalState(text: string): { ok: true; detection: PortalDetection } | { ok: false; error: string } {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: `not JSON (${(error as Error).message})` };
  }
  const parsed = portalDetectionSchema.safeParse(data);
  if (!parsed.success) return { ok: false, error: `not a portal record (${parsed.error.issues.map((i) => `${i.path.join('.') || 'record'}: ${i.message}`).join('; ')})` };
  return { ok: true, detection: parsed.data };
}

export async function recordPortalDetection(configDir: string, detection: PortalDetection): Promise<void> {
  await writeFileAtomic(portalStatePath(configDir), `${JSON.stringify(detection, null, 2)}\n`);
}

export function clearPortalDetection(configDir: string): void {
  rmSync(portalStatePath(configDir), { force: true });
}

/** The remembered detection; none (no file) is the usual case and says nothing. */
export function readPortalState(configDir: string): PortalStateRead {
  const path = portalStatePath(configDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { detection: null };
    return { detection: null, note: `cannot read ${path} (${code ?? String(error)}): captive-portal detection not shown` };
  }
  const parsed = parsePortalState(text);
  if (!parsed.ok) return { detection: null, note: `ignoring ${path}: ${parsed.error}` };
  return { detection: parsed.detection };
}

/** Wraps `up`'s probe so that its verdict can be remembered afterwards. */
export function keepingVerdict(probe: () => Promise<ProbeVerdict>): { probe: () => Promise<ProbeVerdict>; verdict(): ProbeVerdict | undefined } {
  let last: ProbeVerdict | undefined;
  return { probe: async () => (last = await probe()), verdict: () => last };
}

/**
 * After `up`/`portal`: remember the portal its probe found; forget a remembered one once the
 * network is shown free of it (the run succeeded, or the probe got the internet's answer). An
 * unreachable probe proves nothing: the record stays. A file that cannot be written is a warning.
 */
export async function settlePortalState(configDir: string, ok: boolean, verdict: ProbeVerdict | undefined, now: Date, warn: (line: string) => void): Promise<void> {
  try {
    if (!ok && verdict?.kind === 'portal') await recordPortalDetection(configDir, portalDetection(verdict, now));
    else if (ok || verdict?.kind === 'free') clearPortalDetection(configDir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    warn(`wgctl: cannot update ${portalStatePath(configDir)} (${code}): \`wgctl status\` may not show the captive portal right\n`);
  }
}
