/**
 * #6 Roaming: from the gateway change (the Mac joins another cafe) to traffic flowing through
 * the tunnel again, vs the same roam with no tunnel (the network's own recovery).
 */
import { spawn } from 'node:child_process';
import { median, round, row, sleep } from './lib/common.mjs';
import { LAB_PREFIX, labUnavailable, openLab } from './lib/lab-session.mjs';

export const id = 'roam';
export const title = 'Roaming: gateway change to traffic flowing again (#6)';

const ROAMS = Number(process.env.BENCH_ROAMS ?? 4);
const OFFLINE_MS = 200;
const PING_INTERVAL_S = 0.01;
const RECOVERY_TIMEOUT_MS = 15_000;
const TARGET_MS = 1000;

/** A running `ping -D` in a namespace; `repliesAfter(t)` resolves with the first reply time (ms, realtime) after t. */
function startPinger(ns, target) {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-D', '-i', String(PING_INTERVAL_S), '-W', '1', target], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const replies = [];
  let waiter = null;
  let buffer = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop();
    for (const line of lines) {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(line);
      if (!m) continue;
      const at = Number(m[1]) * 1000;
      replies.push(at);
      if (waiter && at > waiter.after) {
        waiter.resolve(at);
        waiter = null;
      }
    }
  });
  return {
    replies,
    firstReplyAfter(after, timeoutMs) {
      const found = replies.find((t) => t > after);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiter = null;
          reject(new Error(`no reply from ${target} within ${timeoutMs} ms after the gateway change`));
        }, timeoutMs);
        waiter = {
          after,
          resolve: (t) => {
            clearTimeout(timer);
            resolve(t);
          },
        };
      });
    },
    stop: () => child.kill('SIGINT'),
  };
}

/** Roams the Mac to `to`, returning the time (ms, realtime) the new default route was in place. */
async function roamTimed(session, to) {
  const { api, lab } = session;
  const exec = new api.ExecRunner();
  let gatewayChangedAt = NaN;
  const runner = {
    run: async (argv, options) => {
      const result = await exec.run(argv, options);
      // The batch in the Mac's namespace adds the new address and replaces the default route.
      if (argv[1] === '-n' && argv[2] === lab.ns.mac && argv.includes('-batch')) gatewayChangedAt = Date.now();
      return result;
    },
  };
  await api.roam(lab, to, { runner, offlineMs: OFFLINE_MS });
  if (!Number.isFinite(gatewayChangedAt)) throw new Error('roam() did not run the Mac uplink batch');
  return gatewayChangedAt;
}

/** Roams back and forth `count` times while pinging; returns the recovery times (ms). */
async function measure(session, target, count, log, label) {
  const pinger = startPinger(session.lab.ns.mac, target);
  const recoveries = [];
  try {
    await pinger.firstReplyAfter(Date.now(), 10_000);
    for (let i = 0; i < count; i++) {
      await sleep(300); // steady traffic before each roam
      const to = session.lab.state.macCafe === 'cafe1' ? 'cafe2' : 'cafe1';
      const changedAt = await roamTimed(session, to);
      const replyAt = await pinger.firstReplyAfter(changedAt, RECOVERY_TIMEOUT_MS);
      recoveries.push(replyAt - changedAt);
      log(`  ${label} roam ${i + 1} (→ ${to}): traffic again ${round(replyAt - changedAt)} ms after the gateway change`);
    }
  } finally {
    pinger.stop();
  }
  return recoveries;
}

export async function run(log = console.error) {
  const reason = labUnavailable();
  if (reason) return { id, title, rows: [], skipped: reason };
  const session = await openLab(log);
  const { lab } = session;
  try {
    // Baseline first: no tunnel, the Mac pings the web host straight through the cafe's NAT.
    const bare = await measure(session, lab.web.wan.ipv4, ROAMS, log, 'no tunnel');
    await session.wgctl(['up']);
    const tunnelled = await measure(session, lab.srv.dns, ROAMS, log, 'wgctl');
    const t = median(tunnelled);
    const b = median(bare);
    const rows = [
      row({
        id: 'roam.recovery',
        figure: 'Roaming: gateway change → traffic through the tunnel again',
        value: round(t),
        unit: 'ms',
        baseline: round(b),
        baselineLabel: 'same roam, no tunnel',
        ratio: round(t / b),
        target: `≤ ${TARGET_MS} ms`,
        pass: t <= TARGET_MS,
      }),
      row({
        id: 'roam.worst',
        figure: `Roaming: worst of ${ROAMS}`,
        value: round(Math.max(...tunnelled)),
        unit: 'ms',
        baseline: round(Math.max(...bare)),
        baselineLabel: 'same roam, no tunnel',
        ratio: null,
        target: '(reported)',
        pass: null,
      }),
    ];
    const method = [
      `In the namespace lab (prefix \`${LAB_PREFIX}\`, agents as for #1). The lab's \`roam()\` moves the Mac's access port to`,
      `the other cafe as Wi-Fi joining another network does: the uplink keeps its name, loses carrier and its addresses`,
      `(and with them every route through it, the pinned server route included), stays unplugged ${OFFLINE_MS} ms, then gets`,
      'the new LAN\'s address and default route in one `ip -batch`. **The gateway change** is the moment that batch',
      'returns (timed by a recording runner passed to `roam()`); **traffic flowing** is the first ping reply after it.',
      `A \`ping -D -i ${PING_INTERVAL_S}\` runs from the Mac throughout (reply timestamps from ping itself, same clock).`,
      '',
      `- **wgctl**: after \`wgctl up\`, pinging the server's tunnel address (answers only through the tunnel): the`,
      '  mac-agent must notice the new gateway, re-pin the server route and let the VM\'s WireGuard flow out again.',
      '- **no tunnel** (baseline, same run, before `wgctl up`): pinging the web host straight through the cafe\'s NAT — the',
      '  network\'s own recovery (neighbour discovery of the new gateway, NAT).',
      '',
      `${ROAMS} roams each, alternating cafe1 → cafe2 → cafe1 …, 300 ms of steady traffic before each. Medians (and worst).`,
    ].join('\n');
    const details = [
      '| roam | wgctl ms | no tunnel ms |',
      '|---|---|---|',
      ...tunnelled.map((x, i) => `| ${i + 1} | ${round(x)} | ${round(bare[i])} |`),
    ].join('\n');
    return { id, title, method, rows, details, raw: { tunnelled, bare } };
  } finally {
    await session.close();
  }
}
