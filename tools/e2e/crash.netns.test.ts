/**
 * d. Crash: `kill -9` each agent in the middle of `wgctl up` (right after a step that changed
 * the system, seen in up's live progress), start it again, `wgctl up`, `wgctl down` → nothing
 * is left: routes (v4/v6, every table), rules, nftables, iptables, links, forwarding and
 * src_valid_mark sysctls and the Mac's resolv.conf are as before, in the Mac's and the VM's
 * namespaces.
 */
import { spawnStreaming } from '@wgctl/runner';
import { labHttpGet, type AgentName, type Lab } from '../lab/src';
import { inNamespace } from '../lab/src/plan';
import { diffSnapshots, snapshotNetwork } from './observe';
import { bundlePath, createStack, expectExit, type Stack, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgec';

/** Progress lines of `wgctl up` after which the agent has changed the system but is not done. */
const KILL_AFTER: Record<AgentName, RegExp> = {
  'vm-agent': /\bvm\s+firewall done\b/,
  'mac-agent': /\bmac\s+pin-endpoint done\b/,
};

suite('end to end: crash in the middle of up (netns)', () => {
  let stack: Stack;
  let lab: Lab;

  beforeAll(async () => {
    stack = await createStack(PREFIX);
    lab = stack.lab;
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
  }, 60_000);

  it.each<AgentName>(['vm-agent', 'mac-agent'])('d. kill -9 the %s in the middle of up; up again, then down: nothing left behind', async (agent) => {
    const before = await snapshotNetwork(lab);
    const pid = stack.agentPid(agent);
    expect(pid).not.toBeNull();

    const output: string[] = [];
    let killedAfter: string | undefined;
    const up = spawnStreaming(inNamespace(lab.mac.ns, [process.execPath, bundlePath('wgctl'), 'up']), {
      env: { WGCTL_CONFIG: stack.configFile },
      onLine: (line) => {
        output.push(line);
        if (killedAfter === undefined && KILL_AFTER[agent].test(line)) {
          process.kill(pid!, 'SIGKILL');
          killedAfter = line.trim();
        }
      },
    });
    const exit = await up.exited;
    expect(killedAfter).toBeDefined();
    if (exit.code === 0) throw new Error(`wgctl up succeeded although the ${agent} was killed:\n${output.join('\n')}`);
    expect(stack.agentPid(agent)).toBeNull();
    // The kill really came mid-way: something was applied and is still there.
    expect(diffSnapshots(before, await snapshotNetwork(lab)).length).toBeGreaterThan(0);

    await stack.startAgent(agent);
    expectExit(await stack.wgctl(['up']), 0);
    const http = await labHttpGet(lab, 'mac', lab.web.url4);
    expect(http.ok && JSON.parse(http.body).remote).toBe(lab.srv.wan.ipv4);

    expectExit(await stack.wgctl(['down']), 0);
    expect(diffSnapshots(before, await snapshotNetwork(lab))).toEqual([]);
  });
});
