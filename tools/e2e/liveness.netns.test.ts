/**
 * End to end in the namespace lab (built agents, mTLS, `wgctl` only): health follows the
 * tunnel within seconds, with the vm-agent's default 15 s health interval —
 *   a. the VM's wireguard-go killed → `wgctl status` non-zero within 5 s (link event);
 *   b. what it costs: at most one probe per ~10 s on an idle tunnel, none while traffic flows;
 *   c. the server's wireguard-go killed → non-zero within 30 s (a probe with TTL 1 into the
 *      tunnel goes unanswered), the status saying so; before, it said HEALTHY for ~3 minutes.
 * Killing the server's WireGuard cannot be undone here, so (c) runs last.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { labExec } from '../lab/src';
import { findProcesses, isAlive } from '../lab/src/processes';
import { eventually, startCapture } from './observe';
import { createStack, describeRun, netnsTestsEnabled, type Stack } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgel';

/** What this suite reads of `wgctl --json status` (docs/status-schema.md). */
interface StatusJson {
  exitCode: number;
  vm:
    | { reachable: false }
    | { reachable: true; health: { state: string }; liveness: { state: string; probeTarget: string | null } | null; peers: { handshakeAgeSeconds: number | null }[] };
}

/** utime + stime of a process, in ms (proc(5): fields 14 and 15, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function wireguardGoOf(iface: string): number {
  const [pid] = findProcesses((argv) => basename(argv[0]) === 'wireguard-go' && argv[argv.length - 1] === iface).filter(isAlive);
  if (!pid) throw new Error(`no wireguard-go for ${iface}`);
  return pid;
}

suite('end to end: health follows the tunnel (netns)', () => {
  let stack: Stack;

  /** Polls `wgctl status` until it exits non-zero; returns that run and how long after `sinceMs` it came. */
  async function untilStatusFails(sinceMs: number, timeoutMs: number, intervalMs: number) {
    return eventually(
      'wgctl status to exit non-zero',
      async () => {
        const r = await stack.wgctl(['status']);
        return r.exitCode !== 0 ? { run: r, afterMs: Date.now() - sinceMs } : undefined;
      },
      timeoutMs,
      intervalMs,
    );
  }

  async function statusJson(): Promise<StatusJson> {
    const r = await stack.wgctl(['--json', 'status']);
    return JSON.parse(r.stdout) as StatusJson;
  }

  async function upAndAlive(): Promise<void> {
    const up = await stack.wgctl(['up']);
    if (up.exitCode !== 0) throw new Error(`wgctl up failed\n${describeRun(up)}`);
    const healthy = await stack.wgctl(['status']);
    if (healthy.exitCode !== 0) throw new Error(`not healthy after up\n${describeRun(healthy)}`);
  }

  beforeAll(async () => {
    stack = await createStack(PREFIX);
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
  }, 60_000);

  it('a. the VM\'s wireguard-go killed: wgctl status exits non-zero within 5 s', async () => {
    await upAndAlive();
    const iface = stack.lab.vm.wireguard.interface;
    const pid = wireguardGoOf(iface);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const { run, afterMs } = await untilStatusFails(killedAt, 10_000, 100);
    process.stdout.write(`liveness e2e: VM's wireguard-go killed → wgctl status exit ${run.exitCode} after ${afterMs} ms\n`);
    expect(afterMs).toBeLessThanOrEqual(5_000);
    expect(run.stdout).toContain(`${iface} does not exist`);

    const down = await stack.wgctl(['down']);
    expect(down.exitCode).toBe(0);
  }, 60_000);

  it('b. idle, at most one probe per ~10 s, each answered at once by the server\'s time-exceeded (TTL 1); none while traffic moves rx', async () => {
    await upAndAlive();
    const lab = stack.lab;
    const probes = (packets: { protocol: string; src: string; dst: string; line: string }[]) =>
      packets.filter((p) => p.protocol === 'icmp' && p.src === lab.vm.wireguard.address && p.dst === '192.0.2.1' && /echo request/.test(p.line));
    const agentPid = stack.agentPid('vm-agent')!;

    const cpuBefore = cpuMs(agentPid);
    const idle = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    await new Promise((resolve) => setTimeout(resolve, 30_000));
    const idlePackets = await idle.stop();
    const cpuIdle = cpuMs(agentPid) - cpuBefore;
    const sent = probes(idlePackets);
    const answers = idlePackets.filter((p) => p.protocol === 'icmp' && p.src === lab.srv.wireguard.address && /time exceeded/i.test(p.line));
    process.stdout.write(`liveness e2e: idle 30 s: ${sent.length} probe(s), ${answers.length} time-exceeded answer(s), ${idlePackets.length} packet(s) in the tunnel; vm-agent CPU ${cpuIdle} ms\n`);
    // Other packets answered by the server's passive keepalive (the VM's IPv6 router solicitations)
    // move rx too, so fewer probes are needed than one per 10 s; never more.
    expect(sent.length).toBeLessThanOrEqual(3);
    expect(answers.length).toBe(sent.length);

    // The Mac's traffic keeps rx moving: no probe while it lasts.
    const pinger = labExec(lab, 'mac', ['ping', '-n', '-q', '-i', '0.5', '-w', '14', lab.web.wan.ipv4], { allowFailure: true, timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const busy = await startCapture(lab, 'vm', lab.vm.wireguard.interface);
    await new Promise((resolve) => setTimeout(resolve, 12_000));
    const busyPackets = await busy.stop();
    await pinger;
    expect(busyPackets.length).toBeGreaterThan(20);
    expect(probes(busyPackets)).toEqual([]);
  }, 60_000);

  it('c. the server\'s wireguard-go killed: wgctl status exits non-zero within 30 s and says nothing comes back', async () => {
    await upAndAlive();
    // Alive first (a probe answered, or traffic seen), so that what follows is the server's death.
    const alive = await eventually('liveness alive', async () => {
      const report = await statusJson();
      return report.vm.reachable && report.vm.liveness?.state === 'alive' ? report : undefined;
    }, 20_000, 500);
    expect(alive.exitCode).toBe(0);

    const pid = wireguardGoOf(stack.lab.srv.wireguard.interface);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const { run, afterMs } = await untilStatusFails(killedAt, 40_000, 500);
    process.stdout.write(`liveness e2e: server's wireguard-go killed → wgctl status exit ${run.exitCode} after ${afterMs} ms\n`);
    expect(afterMs).toBeLessThanOrEqual(30_000);
    expect(run.stdout).toMatch(/Liveness +DEAD since/);
    expect(run.stdout).toMatch(/VM: nothing comes back through the tunnel: no reply through the tunnel for \d+ s since a probe at /);

    const report = await statusJson();
    expect(report.exitCode).toBe(1);
    expect(report.vm.reachable && report.vm.liveness).toMatchObject({ state: 'dead', probeTarget: '192.0.2.1' });
    expect(report.vm.reachable && report.vm.health.state).toBe('NOT_SERVING');
    // The handshake is still "fresh": the 180 s threshold alone would have said HEALTHY.
    expect(report.vm.reachable && report.vm.peers[0].handshakeAgeSeconds).toBeLessThan(180);
  }, 60_000);
});
