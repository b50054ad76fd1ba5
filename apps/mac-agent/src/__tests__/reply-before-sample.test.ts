/**
 * The caller of an Up gets the end of its call (the trailers) before the status sample that
 * follows the Up begins: that sample spawns its reads synchronously (fork/exec), and begun too
 * early it held the end of `wgctl up` back. Here a sample read blocks the agent's event loop
 * for BLOCK_MS, as many spawns would; the client runs in a worker thread (its own event loop)
 * and measures the time from the Up's last message (its outcome) to the call's status.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { busyWait, timeStreamEnd } from '@wgctl/agent-kit/testing';
import { silentLogger } from '@wgctl/logging';
import { MacUpRequest, Progress } from '@wgctl/proto';
import type { Runner } from '@wgctl/runner';
import type { UplinkOptions } from '../host/driver';
import { startAgent, type RunningAgent } from '../run';
import { FakeDriver, fakeHost } from '../testing/fake-host';

const BLOCK_MS = 600;

/** A gRPC client of its own event loop: one Up (request bytes in), the messages and the gap from the last one to the status out. */


describe('the end of an Up reaches the caller before the status sample after it begins', () => {
  let dir: string;
  let agent: RunningAgent | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'wtm-reply-'));
  });
  afterEach(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`the call ends within ${BLOCK_MS / 3} ms of the outcome though the sample then holds the agent ${BLOCK_MS} ms`, async () => {
    const driver = new FakeDriver(fakeHost());
    const socket = join(dir, 'r.sock');
    agent = await startAgent(
      { driver: 'linux', listen: `unix:${socket}`, stateDir: join(dir, 'state'), logLevel: 'error', dnsResolvConf: join(dir, 'resolv.conf'), dnsMode: 'resolv-conf' },
      { driver, logger: silentLogger(), sampleIntervalMs: 60_000, engine: { healCheckMs: 0 } },
    );
    await agent.sampler.refresh();
    // From here: the Up's discover reads the uplink once; any later read is the sample's (or the roaming's), and holds the loop.
    let reads = 0;
    const discoverUplink = driver.discoverUplink.bind(driver);
    driver.discoverUplink = (run: Runner, options?: UplinkOptions) => {
      if (++reads > 1) busyWait(BLOCK_MS);
      return discoverUplink(run, options);
    };
    const request = MacUpRequest.encode(MacUpRequest.fromPartial({ vmAddress: '192.0.2.130', endpoints: [{ ip: '203.0.113.10', port: 51820 }], dnsServers: ['198.51.100.53'] })).finish();
    const result = await timeStreamEnd({ grpcPath: require.resolve('@grpc/grpc-js'), target: `unix:${socket}`, method: '/wgctl.v1.MacAgent/Up', request });
    // The sample after the Up comes (and holds the loop) all the same.
    for (let waited = 0; reads < 2 && waited < 2_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    expect(result.code).toBe(0);
    expect(Progress.decode(result.messages[result.messages.length - 1]!).kind).toMatchObject({ $case: 'outcome', value: { ok: true } });
    expect(reads).toBeGreaterThan(1); // the sample did read (and hold the loop)
    expect(result.gapMs).toBeLessThan(BLOCK_MS / 3);
  });
});
