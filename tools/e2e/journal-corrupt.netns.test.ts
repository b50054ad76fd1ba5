/**
 * Issue #15 item 5 end to end: `wgctl up`, both agents stopped, their journals corrupted and the
 * previous copies removed (as the old advice had it), a stale `.tmp-<pid>` of a dead writer left
 * beside each; the agents start again (removing the temporary files) and `wgctl down` removes
 * every route, table, chain and interface of ours it can recognise, then exits 3 — not 0 —
 * naming what only the journals knew how to put back: the Mac's DNS, the VM's
 * forwarding sysctls. The damaged journals are kept aside as `<journal>.corrupt`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentStateDir, type Lab } from '../lab/src';
import { diffSnapshots, snapshotNetwork } from './observe';
import { createStack, expectExit, type Stack, netnsTestsEnabled } from './stack';

const suite = netnsTestsEnabled() ? describe : describe.skip;

const PREFIX = 'wgej';

suite('end to end: down with corrupt journals (netns)', () => {
  let stack: Stack;
  let lab: Lab;

  beforeAll(async () => {
    stack = await createStack(PREFIX);
    lab = stack.lab;
  }, 60_000);

  afterAll(async () => {
    await stack?.destroy();
  }, 60_000);

  it('up; journals corrupted, copies removed; down removes what is ours by its marks and exits 3 listing what it could not restore', async () => {
    const before = await snapshotNetwork(lab);
    expectExit(await stack.wgctl(['up']), 0);
    await stack.stopAgent('mac-agent');
    await stack.stopAgent('vm-agent');

    const macJournal = join(agentStateDir(lab, 'mac-agent'), 'mac-agent.journal.json');
    const vmJournal = join(agentStateDir(lab, 'vm-agent'), 'journal.json');
    writeFileSync(macJournal, readFileSync(macJournal, 'utf8').replace('"phase": "up"', '"phase": "down"')); // wrong checksum
    writeFileSync(vmJournal, Buffer.from([0x00, 0xff, 0x7b])); // garbage
    const deadPid = spawnSync('true').pid;
    const stale = [`${macJournal}.tmp-${deadPid}`, `${vmJournal}.tmp-${deadPid}`];
    for (const path of [macJournal, vmJournal]) rmSync(`${path}.prev`, { force: true });
    for (const path of stale) writeFileSync(path, '{"version": 1,');

    await stack.startAgents();
    expect(stale.filter((path) => existsSync(path))).toEqual([]);

    const down = await stack.wgctl(['down']);
    process.stdout.write(`wgctl down after corrupt journals (exit ${down.exitCode}):\n${down.stdout.split('\n').filter((l) => !l.startsWith('[')).join('\n')}${down.stderr}`);
    expectExit(down, 3);
    expect(down.stderr).toMatch(/not restored: mac-agent: DNS: /);
    expect(down.stderr).not.toMatch(/server pins/); // wgctl down read the servers from the VM: the pin was found by its marks
    expect(down.stderr).toMatch(/not restored: vm-agent: net\.ipv4\.ip_forward=1 left as it is/);

    // The damaged journals are set aside for inspection, not deleted.
    expect(readFileSync(`${vmJournal}.corrupt`)).toEqual(Buffer.from([0x00, 0xff, 0x7b]));
    expect(readFileSync(`${macJournal}.corrupt`, 'utf8')).toContain('"phase": "down"');

    // Only what the outcome named differs from before `up`: resolv.conf and the sysctls.
    const left = diffSnapshots(before, await snapshotNetwork(lab));
    expect(left.map((entry) => entry.split(':\n')[0]).sort()).toEqual(['mac: resolv.conf', 'vm: sysctls']);
  });
});
