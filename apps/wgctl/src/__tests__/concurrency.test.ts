/**
 * Concurrency and faults, through the whole CLI against agents served over real gRPC + mTLS:
 *   - two `wgctl up` at once: the second is refused at once, naming the first (a lock in the
 *     config directory, O_EXCL + pid); a lock whose owner is gone is taken over;
 *   - an agent that answers ABORTED (a run the lock cannot see, e.g. another controller): a
 *     clear "another wgctl up/down is in progress", exit 1, and NO rollback — a Down now would
 *     undo the other run's work;
 *   - an agent that goes away in the middle of an Up stream (its server shut down): the step
 *     it was in and what to do next, exit 1.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ExecRunner } from '@wgctl/runner';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, okSteps, startLab } from '../testing/fake-agents';
import { LOCK_FILE, LockBusyError, acquireOperationLock } from '../lock';

describe('the operation lock', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is exclusive, names its holder, and is released by its owner only', () => {
    const first = acquireOperationLock(dir, 'up');
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, command: 'up' });
    expect(() => acquireOperationLock(dir, 'down')).toThrow(LockBusyError);
    expect(() => acquireOperationLock(dir, 'down')).toThrow(new RegExp(`another wgctl up is in progress \\(pid ${process.pid} on .*\\); wait for it to finish`));
    first.release();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const second = acquireOperationLock(dir, 'down');
    first.release(); // not its lock any more: left alone
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
    second.release();
  });

  it('takes over a lock whose process is gone', async () => {
    const dead = Number((await new ExecRunner().run([process.execPath, '-e', 'process.stdout.write(String(process.pid))'])).stdout); // exited
    acquireOperationLock(dir, 'up', { pid: dead });
    const lock = acquireOperationLock(dir, 'down');
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, command: 'down' });
    lock.release();
  });

  it('an empty lock file: busy while fresh (a run between create and write), stale after', () => {
    const path = join(dir, LOCK_FILE);
    writeFileSync(path, '');
    expect(() => acquireOperationLock(dir, 'up')).toThrow(/another wgctl up\/down is in progress/);
    utimesSync(path, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    acquireOperationLock(dir, 'up').release();
  });
});

describe('wgctl up, twice at once / against a busy or vanishing agent', () => {
  let lab: Lab;
  let config: string;

  beforeEach(async () => {
    lab = await startLab();
    config = writeLabConfig(lab);
  });
  afterEach(() => lab.cleanup());

  it('the second of two concurrent `wgctl up` is refused at once, naming the first; the first completes', async () => {
    lab.agents.vm.up = { steps: okSteps('firewall-filter', 'wg-quick-up', 'await-handshake'), outcome: { ok: true }, delayMs: 150 };
    const first = cli(['--config', config, 'up']);
    // The first holds the lock once its VM Up has begun.
    for (let i = 0; i < 100 && !lab.agents.calls.some((c) => c.rpc === 'Up'); i++) await new Promise((r) => setTimeout(r, 10));
    const second = await cli(['--config', config, 'up']);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^wgctl: another wgctl up is in progress \\(pid ${process.pid} on .*\\); wait for it to finish \\(or stop it\\), then run \`wgctl status\``));
    const down = await cli(['--config', config, 'down']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/another wgctl up is in progress/);
    const done = await first;
    expect(done.code).toBe(0);
    // Only the first run reached the agents; the lock is gone afterwards.
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Up']);
    expect(existsSync(join(lab.dir, LOCK_FILE))).toBe(false);
    expect((await cli(['--config', config, 'down'])).code).toBe(0);
  });

  it('a vm-agent busy with another run (ABORTED): a clear message, exit 1, and no rollback', async () => {
    lab.agents.vm.up = { grpcError: { code: grpc.status.ABORTED, details: 'another Up is in progress (started 2025-01-01T00:00:00.000Z); wait for it to finish and retry' } };
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vm-agent is busy: another Up is in progress \(started 2025-01-01T00:00:00\.000Z\).* — another wgctl up\/down is in progress; wait for it to finish, then run `wgctl status`/);
    // Nothing of ours to undo: no Down that would tear down the other run's tunnel.
    expect(lab.agents.sequence()).toEqual(['vm.Up']);
  });

  it('a mac-agent busy with another run (ABORTED): the Mac is left to that run, only our VM side is rolled back', async () => {
    lab.agents.vm.up = { steps: okSteps('read-config', 'wg-quick-up'), outcome: { ok: true } };
    const busy = { grpcError: { code: grpc.status.ABORTED, details: 'another Up is in progress (started 2025-01-01T00:00:00.000Z); wait for it to finish and retry' } };
    // Refused at the first Mac call: the kill switch asked for while the VM comes up.
    lab.agents.mac.upKillSwitchOnly = busy;
    lab.agents.mac.up = busy;
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/mac-agent is busy: another Up is in progress/);
    // No Mac Down (it would undo the other run's routes and kill switch); our VM Up is undone.
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'vm.Down']);
  });

  it('a vm-agent that goes away during Up: the step it was in, what to do, exit 1', async () => {
    lab.agents.vm.up = { steps: okSteps('read-config', 'firewall-filter', 'wg-quick-up', 'await-handshake', 'verify'), outcome: { ok: true }, delayMs: 300 };
    const run = cli(['--config', config, 'up']);
    // Wait for the agent to be inside the Up, then stop its server (a restart, a crash).
    for (let i = 0; i < 200 && !lab.agents.calls.some((c) => c.rpc === 'Up'); i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 700));
    await lab.agents.stop('vm');
    const r = await run;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/vm-agent connection lost during step (firewall-filter|wg-quick-up|await-handshake) \(.+\); the agent journals its changes: run `wgctl status`, then `wgctl up` or `wgctl down`/);
    // The Mac, made fail-closed on the VM's plan, is rolled back; the VM rollback could not
    // reach the agent and says so.
    expect(lab.agents.sequence()).toEqual(['vm.Up', 'mac.Up', 'mac.Down']);
    expect(r.stderr).toMatch(/VM: the WireGuard tunnel, forwarding and SNAT may still be in place \(run `wgctl down` when vm-agent is reachable\)/);
  });
});
