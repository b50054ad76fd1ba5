/** Text for the end of up/down/plan: what happened, what failed (with the command's stderr). */
import { Ipv6Mode, ipv6ModeWord } from '@wgctl/proto';
import { SIDE_LABEL } from '../agents';
import { describePortal, type DownResult, type Failure, type Ipv6Decision, type PlanResult, type UpResult } from '../orchestrator';
import { commandLine } from './progress';
import { formatDuration, shellQuote } from './text';

function failureLines(failure: Failure): string[] {
  const where = failure.agentStep ? `${failure.step} (agent step ${failure.agentStep})` : failure.step;
  const lines = [`FAILED at step ${where}: ${failure.message}`];
  if (failure.command) {
    lines.push(`  command: ${shellQuote(failure.command.argv)} (exit ${failure.command.exitCode})`);
    if (failure.command.stderr) lines.push(`  stderr:  ${failure.command.stderr.split('\n').join('\n           ')}`);
  }
  return lines;
}

/** One line on the Mac's IPv6: routed through the tunnel, or blocked and why. */
export function ipv6Line(decision: Ipv6Decision | undefined): string {
  if (!decision) return '';
  return decision.mode === Ipv6Mode.IPV6_MODE_ROUTE
    ? `  IPv6: routed through the tunnel (Mac ${decision.macSource6} via ${decision.vmAddress6})\n`
    : `  IPv6: blocked on the Mac (${decision.reason})\n`;
}

/** The decision as `--json` prints it: the mode as a word ("route" | "block"), not the enum's number. */
export function ipv6DecisionJson(decision: Ipv6Decision | undefined) {
  return decision && { ...decision, mode: ipv6ModeWord(decision.mode) };
}

/** What to do about a captive portal found after a failed up (the rollback left the Mac unprotected). */
function portalLines(portal: NonNullable<UpResult['portal']>): string[] {
  const where = portal.location ? ` at ${portal.location}` : '';
  return [
    `  ${describePortal(portal)}`,
    `  next: \`wgctl portal\` (everything stays blocked but web and DNS while you sign in${where}, and the tunnel comes up by itself);`,
    '  until then this Mac is NOT protected (this run was rolled back)',
  ];
}

/** Said before the window opens: loud, since the Mac's web traffic leaves unprotected meanwhile. */
export function portalWindowWarning(seconds: number): string {
  return [
    `wgctl portal: SIGN-IN WINDOW for up to ${seconds} s: this Mac's WEB TRAFFIC (TCP 80/443, any address) and DNS to the network's`,
    "  resolvers leave OUTSIDE THE TUNNEL, UNPROTECTED; everything else stays blocked. Sign in with your browser now.",
    `  The window closes by itself as soon as the tunnel's handshake comes, after ${seconds} s, or on Ctrl-C.`,
    '',
  ].join('\n');
}

/** `wgctl portal`'s end: signed in and up, or the window closed without a handshake. */
export function renderPortalResult(result: UpResult, seconds: number): { stdout: string; stderr: string } {
  const up = renderUpResult(result);
  if (result.ok) return { stdout: `portal: signed in: the sign-in window is CLOSED (the handshake came)\n${up.stdout}`, stderr: up.stderr };
  return { stdout: up.stdout, stderr: `${up.stderr}  the sign-in window is CLOSED (no handshake within ${seconds} s, or it was interrupted)\n` };
}

export function renderUpResult(result: UpResult): { stdout: string; stderr: string } {
  if (result.ok) {
    const endpoints = result.endpoints.map((e) => `${e.ip || e.host}:${e.port}`).join(', ');
    return {
      stdout: `up: done in ${formatDuration(result.totalMs)}: all traffic goes through the tunnel (server ${endpoints}, tunnel ${result.tunnelAddresses.join(', ')})\n${ipv6Line(result.ipv6)}`,
      stderr: '',
    };
  }
  const lines = [`wgctl up: ${failureLines(result.failure!).join('\n')}`];
  if (result.portal) lines.push(...portalLines(result.portal));
  if (result.rollback.length === 0) lines.push('  nothing to roll back: this run changed nothing');
  for (const rb of result.rollback) {
    lines.push(`  rollback ${SIDE_LABEL[rb.side]} Down: ${rb.ok ? 'ok' : `FAILED: ${rb.error}`}`);
  }
  for (const left of result.left) lines.push(`  left: ${left}`);
  lines.push(`  total ${formatDuration(result.totalMs)}`);
  return { stdout: '', stderr: `${lines.join('\n')}\n` };
}

export function renderDownResult(result: DownResult, dryRun: boolean): { stdout: string; stderr: string } {
  const sideLine = (side: 'mac' | 'vm') => {
    const s = result.sides[side];
    const label = SIDE_LABEL[side];
    switch (s.outcome) {
      case 'done':
        if (s.notRestored?.length) return `  ${label}: down, ${s.notRestored.length} setting(s) NOT restored (listed below)`;
        return `  ${label}: ${dryRun ? 'dry run done' : 'down'}`;
      case 'unreachable':
        return `  ${label}: UNREACHABLE: ${s.error}`;
      case 'failed':
        return [`  ${label}: ${failureLines(s.failure!).join('\n  ')}`].join('\n');
      default:
        return `  ${label}: not run`;
    }
  };
  const body = [sideLine('mac'), sideLine('vm')];
  const notRestored = notRestoredLines(result.notRestored);
  if (result.ok) return { stdout: `down: done in ${formatDuration(result.totalMs)}\n${body.join('\n')}\n`, stderr: notRestored };
  const lines = [`wgctl down: incomplete after ${formatDuration(result.totalMs)}`, ...body];
  for (const left of result.left) lines.push(`  left: ${left}`);
  return { stdout: '', stderr: `${lines.join('\n')}\n${notRestored}` };
}

/** Settings a Down without a usable journal could not put back: on stderr, one per line ('' when none). */
function notRestoredLines(notRestored: readonly string[]): string {
  if (notRestored.length === 0) return '';
  return `${['wgctl down: everything of ours found was removed, but these could not be restored (the journal was unusable):', ...notRestored.map((what) => `  not restored: ${what}`)].join('\n')}\n`;
}

export function renderPlan(result: PlanResult): string {
  const lines: string[] = [];
  lines.push(`Plan for \`wgctl up\` (nothing was changed; Mac source ${result.macSource ?? '?'}):`);
  if (result.ipv6) lines.push(ipv6Line(result.ipv6).trimEnd());
  let n = 0;
  for (const side of ['vm', 'mac'] as const) {
    const steps = result.steps.filter((s) => s.side === side);
    lines.push('');
    lines.push(`${side === 'vm' ? 'VM' : 'Mac'} (${SIDE_LABEL[side]}), in order:`);
    if (steps.length === 0) lines.push('  (no steps reported)');
    for (const step of steps) {
      n += 1;
      const state = step.state === 'skipped' ? ' [already done, skipped]' : step.state === 'failed' ? ' [FAILED]' : '';
      lines.push(`  ${n}. ${step.step}${state}${step.message ? `: ${step.message}` : ''}`);
      for (const c of step.commands) {
        lines.push(`       ${c.wouldRun ? commandLine({ argv: c.argv, exitCode: -1, dryRun: true, stderr: '' }) : `${commandLine({ argv: c.argv, exitCode: 0, dryRun: false, stderr: '' })}   (read-only, ran to inspect)`}`);
      }
    }
  }
  if (!result.ok && result.failure) {
    lines.push('');
    lines.push(failureLines(result.failure).join('\n'));
  }
  return `${lines.join('\n')}\n`;
}
