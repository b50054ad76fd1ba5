/**
 * pfctl status outputs: `-s info`, `-s References`, `-E` (token), `-X` (release), and syntax
 * errors from `-f`. Token facts (xnu pf_ioctl.c): `-E` always succeeds and prints
 * `pf enabled` + `Token : <u64>` on stderr; `-X` answers `pf disabled` (last reference),
 * `disable request successful. N more pf enable reference(s) remaining, pf still enabled.`,
 * `pfctl: pf: token invalid` (unknown token, PF running) or `pfctl: pf not enabled` (PF
 * stopped, e.g. after a reboot). Tokens are u64s, often above 2^53: always strings here.
 */
import { ParseError } from '../errors';
import { PFCTL_NOISE } from './pf-rules';

function meaningfulLines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() !== '' && !PFCTL_NOISE.test(l.trim()));
}

const U64_MAX = 18446744073709551615n;

function isU64(text: string): boolean {
  return /^\d{1,20}$/.test(text) && BigInt(text) <= U64_MAX;
}

export interface PfInfo {
  enabled: boolean;
  /** How long PF has been enabled (`Enabled for 0 days 13:02:35`). */
  enabledForSeconds?: number;
  /** ISO time PF was enabled, when the caller passed `now`. */
  since?: string;
  /** `Urgent`, `None`, `Misc`, `Loud`. */
  debug?: string;
  /** Counters by section (`State Table`, `Counters`, `Limit Counters`, …) then name (`current entries`). */
  sections: Record<string, Record<string, number>>;
}

/** Parses `pfctl -s info` (ALTQ noise and `-v` Hostid/Checksum lines tolerated). */
export function parsePfInfo(text: string, now?: Date): PfInfo {
  const kind = 'pfctl -s info';
  const lines = meaningfulLines(text);
  const statusIndex = lines.findIndex((l) => /^Status: /.test(l.trim()));
  if (statusIndex < 0) throw new ParseError(kind, 'no "Status:" line');
  const statusLine = lines[statusIndex].trim();
  const status = /^Status: (Enabled|Disabled)(?: for (\d{1,7}) days? (\d{1,2}):(\d{2}):(\d{2}))?(?:\s+Debug: (\S+))?$/.exec(statusLine);
  if (!status) throw new ParseError(kind, `unreadable status "${statusLine}"`, statusIndex + 1);
  const info: PfInfo = { enabled: status[1] === 'Enabled', sections: {} };
  if (status[2] !== undefined) {
    info.enabledForSeconds = Number(status[2]) * 86400 + Number(status[3]) * 3600 + Number(status[4]) * 60 + Number(status[5]);
    if (now) info.since = new Date(now.getTime() - info.enabledForSeconds * 1000).toISOString();
  }
  if (status[6]) info.debug = status[6];
  let section: Record<string, number> | undefined;
  for (const line of lines.slice(statusIndex + 1)) {
    if (!/^\s/.test(line)) {
      const name = line.trim().split(/\s{2,}/)[0];
      if (/^(Hostid|Checksum):/.test(name)) {
        section = undefined;
        continue;
      }
      section = info.sections[name] ??= {};
      continue;
    }
    const entry = /^\s+(\S+(?: \S+)*?)\s{2,}(-?\d+)(?:\s|$)/.exec(line);
    if (entry && section) section[entry[1]] = Number(entry[2]);
  }
  return info;
}

export interface PfReference {
  pid: number;
  /** Shell-out users all show as `pfctl`: only the token identifies a reference. */
  processName: string;
  token: string;
  /** As printed: `0 days 00:00:07`. */
  age: string;
  ageSeconds: number;
}

/** Parses `pfctl -s References`: the `TOKENS:` table, or `No pf starter references held` = []. */
export function parsePfReferences(text: string): PfReference[] {
  const kind = 'pfctl -s References';
  const lines = meaningfulLines(text);
  if (lines.length === 0) throw new ParseError(kind, 'empty output');
  if (lines.length === 1 && /^No pf starter references held\.?$/.test(lines[0].trim())) return [];
  const references: PfReference[] = [];
  let sawHeader = false;
  lines.forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === 'TOKENS:') return;
    if (/^PID\s+Process Name\s+TOKEN\s+TIMESTAMP$/.test(trimmed)) {
      sawHeader = true;
      return;
    }
    const row = /^(\d{1,10})\s+(.*?)\s+(\d+)\s+((\d{1,7}) days? (\d{1,2}):(\d{2}):(\d{2}))$/.exec(trimmed);
    if (!row || !sawHeader) throw new ParseError(kind, `unexpected line "${trimmed}"`, index + 1);
    if (!isU64(row[3])) throw new ParseError(kind, `token is not a u64: "${row[3]}"`, index + 1);
    references.push({
      pid: Number(row[1]),
      processName: row[2],
      token: row[3],
      age: row[4],
      ageSeconds: Number(row[5]) * 86400 + Number(row[6]) * 3600 + Number(row[7]) * 60 + Number(row[8]),
    });
  });
  if (!sawHeader) throw new ParseError(kind, 'no token table');
  return references;
}

/** The reference token `pfctl -E` printed (on stderr): `Token : 11012949885072952621`. */
export function parsePfEnableOutput(stderr: string): { token: string } {
  const kind = 'pfctl -E';
  for (const line of meaningfulLines(stderr)) {
    const m = /^Token\s*:\s*(\S+)$/.exec(line.trim());
    if (!m) continue;
    if (!isU64(m[1])) throw new ParseError(kind, `token is not a u64: "${m[1]}"`);
    return { token: m[1] };
  }
  throw new ParseError(kind, `no "Token :" line in: ${meaningfulLines(stderr).join(' | ') || '(empty)'}`);
}

export type PfReleaseOutcome = 'released' | 'already-released' | 'failed';

export interface PfReleaseResult {
  outcome: PfReleaseOutcome;
  /** PF stopped because this was the last reference (`pf disabled`). */
  pfDisabled: boolean;
  /** Other holders still keeping PF enabled. */
  remainingReferences?: number;
  /** `pf-not-enabled` / `token-invalid` for already-released; the error text for failed. */
  reason: string;
}

/** Classifies what `pfctl -X TOKEN` printed (stdout and stderr together; exit codes lie both ways). */
export function classifyPfRelease(stdout: string, stderr: string): PfReleaseResult {
  const lines = meaningfulLines(`${stdout}\n${stderr}`).map((l) => l.trim());
  const text = lines.join('\n');
  const remaining = /disable request successful\. (\d+) more pf enable reference\(s\) remaining/.exec(text);
  if (remaining) {
    return { outcome: 'released', pfDisabled: false, remainingReferences: Number(remaining[1]), reason: 'released; PF still enabled' };
  }
  if (lines.includes('pf disabled')) return { outcome: 'released', pfDisabled: true, remainingReferences: 0, reason: 'released the last reference; PF disabled' };
  if (/pf not enabled/.test(text)) return { outcome: 'already-released', pfDisabled: true, reason: 'pf-not-enabled' };
  if (/token invalid/.test(text)) return { outcome: 'already-released', pfDisabled: false, reason: 'token-invalid' };
  return { outcome: 'failed', pfDisabled: false, reason: text || '(no output)' };
}

export interface PfSyntaxError {
  /** The file given to -f, or `stdin`. */
  source: string;
  line: number;
  message: string;
}

export interface PfLoadErrors {
  errors: PfSyntaxError[];
  /** `pfctl: Syntax error in config file: pf rules not loaded`. */
  rulesNotLoaded: boolean;
  /** What pfctl reported doing (`rules cleared`, `3 states cleared`, `pf: statistics cleared`…). */
  info: string[];
  /** Other pfctl complaints (`pfctl: …`, `no IP address found for en9`…), noise and warnings excluded. */
  other: string[];
}

const F_WARNING = /^(pfctl: Use of -f option, could result in flushing of rules|present in the main ruleset added by the system at startup\.|See \/etc\/pf\.conf for further details\.)$/;

const PF_INFO =
  /^(rules cleared|nat cleared|dummynet cleared|altq cleared|source tracking entries cleared|pf: statistics cleared|pf: interface flags reset|\d+ states? cleared|\d+ tables? deleted\.|\d+ states? killed)$/;

/** Parses what `pfctl [-n] [-a ANCHOR] -f FILE` (or `-F …`) printed on stderr when loading failed. */
export function parsePfSyntaxErrors(stderr: string): PfLoadErrors {
  const result: PfLoadErrors = { errors: [], rulesNotLoaded: false, info: [], other: [] };
  for (const raw of meaningfulLines(stderr)) {
    const line = raw.trim();
    if (F_WARNING.test(line)) continue;
    if (/Syntax error in config file: pf rules not loaded/.test(line)) {
      result.rulesNotLoaded = true;
      continue;
    }
    if (PF_INFO.test(line)) {
      result.info.push(line);
      continue;
    }
    const m = /^(.+?):(\d+): (.+)$/.exec(line);
    if (m && !m[1].startsWith('pfctl')) {
      result.errors.push({ source: m[1], line: Number(m[2]), message: m[3] });
      continue;
    }
    result.other.push(line);
  }
  return result;
}
