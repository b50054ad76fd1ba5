/**
 * `wgctl menubar`: a status report as the output of an xbar / SwiftBar plugin. Pure.
 *
 * The format is xbar's plugin API, which SwiftBar implements as well: the lines before the
 * first `---` are the menu-bar title, the lines after it the dropdown (a later `---` is a
 * separator, a leading `--` a submenu), and `text | key=value …` adds parameters
 * (https://github.com/matryer/xbar-plugins/blob/main/CONTRIBUTING.md,
 * https://github.com/swiftbar/SwiftBar#plugin-api). What the two parsers do with a line, read
 * in their sources (xbar pkg/plugins/item_params.go, SwiftBar MenuLineParameters.swift), sets
 * the rules kept here:
 * - the text ends at the first `|` in both, so text from the agents never carries one;
 * - xbar fails the whole plugin on a parameter it does not know, so only those both document
 *   are used (PARAMS), and `color` is a hex colour (xbar rejects names it lacks);
 * - a quoted value ends at the next quote of the same kind, with no escapes in xbar and
 *   backslashes kept in SwiftBar: a value needing `"`, `\` or `|` cannot be written at all;
 * - xbar un-escapes backslash sequences of the text (its default `ansi=true` runs Go's
 *   strconv.Unquote on it), so a backslash in agent text is shown as '⧵' (U+29F5).
 */
import { freshestHandshake, type MacSideJson, type StatusReport, type VmSideJson } from '../status-model';
import { STATUS_SCHEMA_ID, statusReportSchema } from '../status-schema';
import { formatAge } from './text';

/** What the title says at a glance. */
export type MenubarState = 'protected' | 'degraded' | 'unprotected' | 'portal-window' | 'portal-detected' | 'unknown';

/** The wgctl the actions run: absolute paths, so a click runs the same wgctl with the same config. */
export interface Invocation {
  node: string;
  script: string;
  config: string;
}

/** The parameters this renderer writes: all documented by xbar and by SwiftBar. */
export const PARAMS = ['bash', 'terminal', 'refresh', 'color', 'href', 'length'] as const;
type Param = (typeof PARAMS)[number] | `param${number}`;

/** Apple's system colours: readable on a light and on a dark menu bar (one colour: xbar takes no pair). */
const COLOR = { green: '#34c759', orange: '#ff9500', red: '#ff3b30', gray: '#8e8e93' } as const;

const TITLE: Record<MenubarState, { text: string; color: string }> = {
  protected: { text: 'wgctl ✓', color: COLOR.green },
  degraded: { text: 'wgctl ⚠', color: COLOR.orange },
  unprotected: { text: 'wgctl off', color: COLOR.red },
  'portal-window': { text: 'wgctl portal', color: COLOR.red },
  'portal-detected': { text: 'wgctl portal?', color: COLOR.red },
  unknown: { text: 'wgctl ?', color: COLOR.gray },
};

/** Long agent text (a problem, a heal) is cut in the menu; SwiftBar shows the whole of it as a tooltip. */
const LONG_TEXT = 100;

export class MenubarError extends Error {}

// Every character either parser treats as the end of a line: text containing one would start a line of its own.
const LINE_BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]+/g;
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f]/g;

/** Text from a status document, safe as a menu item's text (see the rules above). */
export function menuText(text: string): string {
  return text.replace(LINE_BREAKS, ' ').replace(CONTROLS, '').replace(/\|/g, '¦').replace(/\\/g, '⧵');
}

// Printable ASCII but space, quotes, backslash and `|`: both parsers read it up to the next space.
const BARE_VALUE = /^[\x21\x23-\x26\x28-\x5b\x5d-\x7b\x7d\x7e]+$/;
// eslint-disable-next-line no-control-regex
const UNWRITABLE = /["\\|\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function paramValue(value: string): string {
  if (BARE_VALUE.test(value)) return value;
  if (value === '' || UNWRITABLE.test(value)) {
    throw new MenubarError(`cannot write ${JSON.stringify(value)} as a menu parameter (it holds a quote, a backslash, a | or a control character)`);
  }
  return `"${value}"`;
}

type Item = { text: string; params?: [Param, string][] };

function line({ text, params = [] }: Item): string {
  const safe = menuText(text);
  if (params.length === 0) return safe;
  return `${safe} | ${params.map(([k, v]) => `${k}=${paramValue(v)}`).join(' ')}`;
}

/** The menu-bar state of a report: the report's own verdict, refined by what the Mac's side says. */
export function menubarState(report: StatusReport): MenubarState {
  const { mac, vm } = report;
  if (mac.reachable && mac.portalWindow) return 'portal-window';
  if (report.overall === 'healthy') return 'protected';
  if (mac.reachable) {
    if (mac.up) return 'degraded';
    if (report.portal) return 'portal-detected';
    // Made fail-closed but not up (an up in progress or one that stopped half way): blocked, not leaking.
    return mac.killSwitch.loaded && mac.killSwitch.enabled ? 'degraded' : 'unprotected';
  }
  // Without the mac-agent the Mac's side is unknown; a VM that is up says the Mac was brought up.
  return vm.reachable && vm.interfaceUp ? 'degraded' : 'unknown';
}

function shortSeconds(seconds: number): string {
  return seconds < 60 ? `${seconds}s` : `${Math.ceil(seconds / 60)}m`;
}

function titleLine(state: MenubarState, report: StatusReport | null): string {
  const { text, color } = TITLE[state];
  const window = report?.mac.reachable ? report.mac.portalWindow : null;
  const title = state === 'portal-window' && window ? `${text} ${shortSeconds(window.secondsLeft)}` : text;
  return line({ text: title, params: [['color', color]] });
}

function headline(state: MenubarState, report: StatusReport): string {
  const mac = report.mac.reachable ? report.mac : null;
  switch (state) {
    case 'protected':
      return 'Protected: all traffic goes through the tunnel';
    case 'degraded':
      return mac && !mac.up ? 'Blocked: kill switch on, the tunnel is not up' : 'Degraded: up, but something is wrong';
    case 'unprotected':
      return 'Unprotected: not up, traffic goes straight out';
    case 'portal-window':
      return `Sign-in window open (${mac?.portalWindow?.secondsLeft ?? 0} s left): web traffic and DNS leave unprotected`;
    case 'portal-detected':
      return 'Captive portal detected: sign in, then Up';
    case 'unknown':
      return 'Status unknown: the mac-agent cannot be reached';
  }
}

function ageBetween(report: StatusReport, iso: string | null): string {
  if (!iso) return 'never';
  const seconds = Math.max(0, Math.round((Date.parse(report.time) - Date.parse(iso)) / 1000));
  return Number.isFinite(seconds) ? formatAge(seconds) : 'unknown';
}

function serverText(mac: MacSideJson | null, vm: VmSideJson | null): string | null {
  const endpoint = mac?.endpoints[0];
  if (endpoint) return endpoint.host && endpoint.host !== endpoint.ip ? `${endpoint.host} (${endpoint.ip}:${endpoint.port})` : `${endpoint.ip}:${endpoint.port}`;
  return vm?.peers.find((p) => p.endpoint)?.endpoint ?? null;
}

function vmFacts(vm: VmSideJson): string[] {
  const age = freshestHandshake(vm);
  const live = vm.liveness;
  const liveness = !live ? 'not watched' : live.lastReplyAgeSeconds === null ? live.state : `${live.state} (last reply ${formatAge(live.lastReplyAgeSeconds)})`;
  return [`Handshake: ${age === null ? 'never' : formatAge(age)}`, `Tunnel: ${vm.interfaceUp ? liveness : `${vm.interface || 'interface'} down`}`];
}

function killSwitchText(ks: MacSideJson['killSwitch']): string {
  if (ks.loaded && ks.enabled) return 'on';
  return ks.loaded ? 'loaded, not enabled' : 'off';
}

function macFacts(mac: MacSideJson, report: StatusReport): string[] {
  const facts = [
    `Uplink: ${mac.uplink.interface ?? 'none'}${mac.uplink.gateway ? ` via ${mac.uplink.gateway}` : ''}`,
    `Kill switch: ${killSwitchText(mac.killSwitch)}`,
    `DNS: ${mac.dns.servers.join(', ') || 'none'}${mac.dns.managed ? ' (through the tunnel)' : ' (not managed)'}`,
    `Last roam: ${ageBetween(report, mac.lastRoam)}${mac.lastRoamTookMs === null ? '' : ` (took ${Math.round(mac.lastRoamTookMs)} ms; ${mac.roams} since the agent started)`}`,
  ];
  if (mac.lan.allowed) facts.push(`LAN allowed: ${mac.lan.subnets.join(', ') || 'no subnet'}`);
  if (mac.excluded.length > 0) facts.push(`Excluded (in clear): ${mac.excluded.map((e) => e.destination).join(', ')}`);
  return facts;
}

function healsText(report: StatusReport): string | null {
  const sides = [['Mac', report.mac], ['VM', report.vm]] as const;
  const parts = sides.flatMap(([who, side]) => (side.reachable && side.selfHeal ? [`${who} ${side.selfHeal.heals}`] : []));
  if (parts.length === 0) return null;
  const last = sides
    .flatMap(([, side]) => (side.reachable && side.selfHeal?.lastHeal ? [side.selfHeal.lastHeal] : []))
    .sort()
    .pop();
  return `Heals: ${parts.join(', ')}${last ? ` (last ${ageBetween(report, last)})` : ''}`;
}

function facts(report: StatusReport): Item[] {
  const mac = report.mac.reachable ? report.mac : null;
  const vm = report.vm.reachable ? report.vm : null;
  const [uplink, ...macRest] = mac ? macFacts(mac, report) : ['Mac: unreachable'];
  const server = serverText(mac, vm);
  const texts = [uplink, server && `Server: ${server}`, ...(vm ? vmFacts(vm) : ['VM: unreachable']), ...macRest, healsText(report)];
  return texts.filter((t): t is string => typeof t === 'string').map((text) => ({ text, params: [['length', String(LONG_TEXT)]] }));
}

function wgctlAction(text: string, invocation: Invocation, args: string[]): Item {
  const argv = [invocation.script, '--config', invocation.config, ...args];
  return {
    text,
    params: [['bash', invocation.node], ...argv.map((a, i): [Param, string] => [`param${i + 1}`, a]), ['terminal', 'false'], ['refresh', 'true']],
  };
}

/** A portal's sign-in page as a link: only plain http(s), percent-encoded so it is one bare value. */
function portalLink(location: string | null): Item | null {
  if (!location) return null;
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  const href = url.href.replace(/\|/g, '%7C');
  return BARE_VALUE.test(href) ? { text: `Open the sign-in page (${url.host})`, params: [['href', href]] } : null;
}

/**
 * Actions run without a terminal: xbar's terminal=true joins the parameters with spaces into a
 * shell line (settings.go's AppleScript template), which splits "/Library/Application Support";
 * the menu shows the outcome once the command ends (refresh=true).
 */
function actions(state: MenubarState, report: StatusReport | null, invocation: Invocation | null): Item[] {
  const items: Item[] = [];
  const unwritable = invocation ? unwritablePath(invocation) : null;
  if (unwritable) items.push({ text: `No actions: ${unwritable}` });
  else if (invocation) {
    items.push(wgctlAction('Up', invocation, ['up']), wgctlAction('Down', invocation, ['down']));
    // A sign-in window is for a Mac that is not up yet: while up, the tunnel already carries everything.
    const macUp = report?.mac.reachable === true && report.mac.up;
    if (!macUp && state !== 'portal-window') items.push(wgctlAction('Sign in to a captive portal', invocation, ['portal']));
    if (state === 'portal-window') items.push(wgctlAction('End the sign-in window', invocation, ['portal', '--end']));
  }
  const link = state === 'portal-detected' ? portalLink(report?.portal?.location ?? null) : null;
  if (link) items.push(link);
  return items;
}

/** Why the actions cannot name this wgctl (a path no parameter can carry), else null. */
function unwritablePath(invocation: Invocation): string | null {
  for (const path of [invocation.node, invocation.script, invocation.config]) {
    try {
      paramValue(path);
    } catch (error) {
      return `${(error as Error).message}: move wgctl or its config to a plain path`;
    }
  }
  return null;
}

const SEPARATOR = '---';
const REFRESH: Item = { text: 'Refresh', params: [['refresh', 'true']] };

/** The plugin's output for a status report: title, headline, reasons, facts, actions. */
export function renderMenubar(report: StatusReport, invocation: Invocation): string {
  const state = menubarState(report);
  const color = TITLE[state].color;
  const reasons: Item[] = report.problems.map((p) => ({ text: `⚠ ${p}`, params: [['color', COLOR.orange], ['length', String(LONG_TEXT)]] }));
  const lines = [
    titleLine(state, report),
    SEPARATOR,
    line({ text: headline(state, report), params: [['color', color]] }),
    ...reasons.map(line),
    SEPARATOR,
    ...facts(report).map(line),
    SEPARATOR,
    ...actions(state, report, invocation).map(line),
    SEPARATOR,
    line(REFRESH),
  ];
  return `${lines.join('\n')}\n`;
}

/** When there is no report to show (no config, a garbage document…): say why, keep the actions that can work. */
export function renderUnknownMenubar(why: string, invocation: Invocation | null): string {
  const lines = [titleLine('unknown', null), SEPARATOR, line({ text: `Status unknown: ${why}`, params: [['color', COLOR.gray], ['length', String(LONG_TEXT)]] })];
  const acts = actions('unknown', null, invocation);
  if (acts.length > 0) lines.push(SEPARATOR, ...acts.map(line));
  lines.push(SEPARATOR, line(REFRESH));
  return `${lines.join('\n')}\n`;
}

/** A `wgctl status --json` document, validated against its one schema (status-schema.ts). */
export function parseStatusDocument(text: string): StatusReport {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new MenubarError('not a `wgctl status --json` document (not JSON)');
  }
  if ((doc as { schema?: unknown } | null)?.schema !== STATUS_SCHEMA_ID) {
    throw new MenubarError(`not a \`wgctl status --json\` document (no "schema": "${STATUS_SCHEMA_ID}")`);
  }
  const parsed = statusReportSchema.safeParse(doc);
  if (!parsed.success) {
    const [issue] = parsed.error.issues;
    throw new MenubarError(`a ${STATUS_SCHEMA_ID} document that does not match its schema: ${issue?.path.join('.') || '(document)'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
