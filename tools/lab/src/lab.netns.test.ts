/**
 * The lab for real (root, network namespaces, wireguard-go), without any wgctl agent:
 * the VM's own wg-quick tunnel works, the Mac leaks (what wgctl fixes), roaming moves the
 * Mac's gateway, two labs coexist, and teardown leaves nothing behind, even after a crash.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { startMacAgent, startVmAgent, stopAgent } from './agents';
import {
  createLab,
  destroyLab,
  labDnsQuery,
  labExec,
  labHttpGet,
  labNamespaces,
  readLab,
  roam,
  waitForHandshake,
  wgQuick,
} from './lab';
import { allPids, findProcesses, isAlive, readCmdline, waitUntil } from './processes';
import type { Lab } from './topology';

const enabled = process.getuid?.() === 0 || process.env.CI === 'true';
const describeNetns = enabled ? describe : describe.skip;

// Unique per test run, so parallel runs and other helpers' labs never collide.
const tag = process.pid.toString(36);
const PREFIX_A = `wlt${tag}a`;
const PREFIX_B = `wlt${tag}b`;
const PREFIX_C = `wlt${tag}c`;
const runner = new ExecRunner();
const dirs: string[] = [];
const labDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'wgctl-lab-test-'));
  dirs.push(d);
  return d;
};

/** Every trace a lab with this prefix could leave on the system. */
async function traces(prefix: string, dir: string) {
  return {
    namespaces: await labNamespaces(prefix, runner),
    processes: findProcesses((argv) => argv.some((a) => a.startsWith(`${prefix}-`) || a.includes(`${dir}/`))).filter(isAlive),
    sockets: existsSync('/run/wireguard') ? readdirSync('/run/wireguard').filter((f) => f.startsWith(`${prefix}-`)) : [],
    etcNetns: existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((f) => f.startsWith(`${prefix}-`)) : [],
  };
}
const NOTHING = { namespaces: [], processes: [], sockets: [], etcNetns: [] };

const json = (body: string) => JSON.parse(body) as { remote: string };

describeNetns('namespace lab (no agents)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await createLab({ prefix: PREFIX_A, dir: labDir() });
  });

  afterAll(async () => {
    for (const p of [PREFIX_A, PREFIX_B, PREFIX_C]) await destroyLab(p).catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('is created quickly and described in lab.json', () => {
    expect(lab.timings!.total).toBeLessThan(5000);
    const described = readLab(lab.paths.dir);
    expect(described.ns).toEqual(lab.ns);
    expect(described.srv.wireguard.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(described.vm.wireguard.publicKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });

  it('lets the Mac reach the web host directly over its uplink: the leak wgctl closes', async () => {
    const route = await labExec(lab, 'mac', ['ip', 'route', 'get', lab.web.wan.ipv4]);
    expect(route.stdout).toContain(`via ${lab.cafes.cafe1.lan.ipv4} dev ${lab.mac.uplink}`);

    const ping = await labExec(lab, 'mac', ['ping', '-c', '1', '-W', '2', lab.web.wan.ipv4], { allowFailure: true });
    expect(ping.exitCode).toBe(0);
    const v4 = await labHttpGet(lab, 'mac', lab.web.url4);
    // The web host sees the coffee shop's public address: the Mac's traffic left unprotected.
    expect(v4.ok && json(v4.body).remote).toBe(lab.cafes.cafe1.wan.ipv4);
    const v6 = await labHttpGet(lab, 'mac', lab.web.url6);
    expect(v6.ok && json(v6.body).remote).toBe(lab.cafes.cafe1.client.ipv6);

    // The coffee shop's resolver answers, and its log shows who asked.
    const resolved = await labExec(lab, 'mac', ['getent', 'ahostsv4', lab.web.hostname]);
    expect(resolved.stdout).toContain(lab.web.wan.ipv4);
    expect(readFileSync(`${lab.paths.logs}/cafe1-dns.log`, 'utf8')).toContain(`query[A] ${lab.web.hostname} from ${lab.cafes.cafe1.client.ipv4}`);
  });

  it('keeps the tunnel resolver and the VM offline until the VM tunnel is up', async () => {
    const fromMac = await labDnsQuery(lab, 'mac', lab.srv.dns, lab.web.hostname, { timeoutMs: 700 });
    expect(fromMac.ok).toBe(false);
    const fromVm = await labDnsQuery(lab, 'vm', lab.srv.dns, lab.web.hostname, { timeoutMs: 700 });
    expect(fromVm.ok).toBe(false);
    // The VM's own packets go via the Mac's NAT, but the resolver only answers through the tunnel.
    const ping = await labExec(lab, 'vm', ['ping', '-c', '1', '-W', '2', lab.web.wan.ipv4], { allowFailure: true });
    expect(ping.exitCode).toBe(0);
  });

  it("brings the VM's wg-quick tunnel up: handshake, ping, HTTP and DNS through the server", async () => {
    await wgQuick(lab, 'up');
    const handshake = await waitForHandshake(lab, { timeoutMs: 5000 });
    expect(handshake).toBeGreaterThan(0);

    const ping = await labExec(lab, 'vm', ['ping', '-c', '1', '-W', '2', lab.web.wan.ipv4], { allowFailure: true });
    expect(ping.exitCode).toBe(0);
    const http = await labHttpGet(lab, 'vm', lab.web.url4);
    // Through the tunnel, the web host sees the WireGuard server's address.
    expect(http.ok && json(http.body).remote).toBe(lab.srv.wan.ipv4);

    const resolved = await labExec(lab, 'vm', ['getent', 'ahostsv4', lab.web.hostname]);
    expect(resolved.stdout.split('\n')[0]).toMatch(new RegExp(`^${lab.web.wan.ipv4.replace(/\./g, '\\.')}\\s`));
    expect(readFileSync(`${lab.paths.logs}/srv-dns.log`, 'utf8')).toContain(`query[A] ${lab.web.hostname} from ${lab.vm.wireguard.address}`);
    const byName = await labHttpGet(lab, 'vm', `http://${lab.web.hostname}/`);
    // The name has A and AAAA records, and the tunnel carries both: either way the server's NAT.
    expect([lab.srv.wan.ipv4, lab.srv.wan.ipv6]).toContain(byName.ok && json(byName.body).remote);

    // The server sees the VM behind two NATs: the hypervisor's and the coffee shop's.
    const endpoints = await labExec(lab, 'srv', ['wg', 'show', lab.srv.wireguard.interface, 'endpoints']);
    expect(endpoints.stdout).toContain(`${lab.vm.wireguard.publicKey}\t${lab.cafes.cafe1.wan.ipv4}:`);
    // Still unreachable from the Mac, which is outside the tunnel.
    expect((await labDnsQuery(lab, 'mac', lab.srv.dns, lab.web.hostname, { timeoutMs: 700 })).ok).toBe(false);
  });

  it('carries IPv6 too: the VM reaches the web host over the tunnel (the server NATs it), and the Mac reaches the VM on the vnic', async () => {
    const http6 = await labHttpGet(lab, 'vm', lab.web.url6);
    // NAT66 on the server: the web host sees the server's IPv6, not the VM's tunnel address.
    expect(http6.ok && json(http6.body).remote).toBe(lab.srv.wan.ipv6);
    const route6 = await labExec(lab, 'vm', ['ip', '-6', 'route', 'get', lab.web.wan.ipv6!]);
    expect(route6.stdout).toContain(`dev ${lab.vm.wireguard.interface}`);
    const onVnic = await labExec(lab, 'mac', ['ping', '-6', '-c', '1', '-W', '2', lab.vm.eth.ipv6!], { allowFailure: true });
    expect(onVnic.exitCode).toBe(0);
    const vnicRoute = await labExec(lab, 'mac', ['ip', '-6', 'route', 'get', lab.vm.eth.ipv6!]);
    expect(vnicRoute.stdout).toContain(`dev ${lab.mac.vnic.interface}`);
  });

  it("roams the Mac to the second coffee shop: new address and default gateway, the tunnel follows", async () => {
    await roam(lab, 'cafe2');
    const c2 = lab.cafes.cafe2;
    const v4 = await labExec(lab, 'mac', ['ip', '-4', 'route', 'show', 'default']);
    expect(v4.stdout.trim()).toBe(`default via ${c2.client.gateway4} dev ${lab.mac.uplink}`);
    const v6 = await labExec(lab, 'mac', ['ip', '-6', 'route', 'show', 'default']);
    expect(v6.stdout).toContain(`default via ${c2.client.gateway6} dev ${lab.mac.uplink}`);
    const addrs = await labExec(lab, 'mac', ['ip', '-4', '-o', 'addr', 'show', 'dev', lab.mac.uplink]);
    expect(addrs.stdout).toContain(`${c2.client.ipv4}/${c2.client.prefix4}`);
    expect(addrs.stdout).not.toContain(lab.cafes.cafe1.client.ipv4);
    expect(readFileSync(lab.paths.resolvConf.mac, 'utf8')).toMatch(new RegExp(`^nameserver ${c2.client.dns.replace(/\./g, '\\.')}$`, 'm'));
    expect(readLab(lab.paths.dir).state.macCafe).toBe('cafe2');

    const http = await labHttpGet(lab, 'mac', lab.web.url4);
    expect(http.ok && json(http.body).remote).toBe(c2.wan.ipv4);
    // WireGuard follows the new NAT address once the VM sends again.
    const ping = await labExec(lab, 'vm', ['ping', '-c', '1', '-W', '2', lab.web.wan.ipv4], { allowFailure: true });
    expect(ping.exitCode).toBe(0);
    const endpoints = await labExec(lab, 'srv', ['wg', 'show', lab.srv.wireguard.interface, 'endpoints']);
    expect(endpoints.stdout).toContain(`\t${c2.wan.ipv4}:`);

    await roam(lab, 'cafe1', { offlineMs: 50 });
    const back = await labExec(lab, 'mac', ['ip', '-4', 'route', 'show', 'default']);
    expect(back.stdout.trim()).toBe(`default via ${lab.cafes.cafe1.client.gateway4} dev ${lab.mac.uplink}`);
  });

  it('runs a second lab with another prefix next to the first', async () => {
    const dirB = labDir();
    await createLab({ prefix: PREFIX_B, dir: dirB });
    // Re-creating over a live lab replaces it (leftovers are removed first).
    const labB = await createLab({ prefix: PREFIX_B, dir: dirB });
    expect(findProcesses((argv) => argv[0] === 'wireguard-go' && argv[1] === labB.srv.wireguard.interface).filter(isAlive)).toHaveLength(1);

    await wgQuick(labB, 'up');
    await waitForHandshake(labB);
    const fromB = await labHttpGet(labB, 'vm', labB.web.url4);
    expect(fromB.ok && json(fromB.body).remote).toBe(labB.srv.wan.ipv4);

    await destroyLab(PREFIX_B);
    expect(await traces(PREFIX_B, dirB)).toEqual(NOTHING);
    // Lab A is untouched.
    const fromA = await labHttpGet(lab, 'vm', lab.web.url4);
    expect(fromA.ok && json(fromA.body).remote).toBe(lab.srv.wan.ipv4);
    expect(await labNamespaces(PREFIX_A, runner)).toHaveLength(7);
  });

  it('starts, checks and stops agent processes in the lab namespaces (stand-in bundles)', async () => {
    const bundle = join(lab.paths.dir, 'fake-agent.js');
    // A stand-in with the agents' flag shape: listens on --listen host:port, logs its namespace view.
    writeFileSync(
      bundle,
      `const net = require('node:net');
const args = process.argv.slice(2);
const listen = args[args.indexOf('--listen') + 1];
const i = listen.lastIndexOf(':');
console.log('fake agent', JSON.stringify(args));
net.createServer((s) => s.end('hi\\n')).listen(Number(listen.slice(i + 1)), listen.slice(0, i));
`,
    );
    const crashing = join(lab.paths.dir, 'crashing-agent.js');
    writeFileSync(crashing, `console.error('bad flag: --tls-dir'); process.exit(2);\n`);

    const vmAgent = await startVmAgent(lab, { bundle, tlsDir: '/nonexistent/tls', listen: `${lab.vm.eth.ipv4}:7443` });
    expect(readCmdline(vmAgent.pid)).toEqual(vmAgent.argv);
    const macAgent = await startMacAgent(lab, { bundle, tlsDir: '/nonexistent/tls', listen: '127.0.0.1:7444', args: ['--verbose'] });
    expect(macAgent.argv).toEqual([
      process.execPath, bundle,
      '--driver', 'linux', '--listen', '127.0.0.1:7444', '--tls-dir', '/nonexistent/tls',
      '--state-dir', `${lab.paths.dir}/state/mac-agent`, '--dns-resolv-conf', `/etc/netns/${lab.ns.mac}/resolv.conf`,
      '--verbose',
    ]);
    expect(vmAgent.argv).toContain(lab.vm.wireguard.configPath);
    // The vm-agent listens on the VM's vnic: reachable from the Mac namespace (where the controller runs).
    const probe = await labExec(lab, 'mac', [process.execPath, '-e', `require('net').connect(7443, '${lab.vm.eth.ipv4}').on('data', (d) => { process.stdout.write(d); process.exit(0); }).on('error', () => process.exit(1))`], { allowFailure: true });
    expect(probe.stdout).toBe('hi\n');
    expect(readFileSync(vmAgent.logFile, 'utf8')).toContain('fake agent');

    await expect(startVmAgent(lab, { bundle, tlsDir: '/x', listen: `${lab.vm.eth.ipv4}:7443` })).rejects.toThrow(/already runs/);
    expect(await stopAgent(lab, 'vm-agent')).toBe(true);
    expect(isAlive(vmAgent.pid)).toBe(false);
    expect(await stopAgent(lab, 'vm-agent')).toBe(false);
    await expect(startVmAgent(lab, { bundle: crashing, tlsDir: '/x', listen: `${lab.vm.eth.ipv4}:7443`, readyTimeoutMs: 3000 })).rejects.toThrow(/bad flag: --tls-dir/);
    // The mac-agent stand-in is left running: destroyLab must end it (next test).
    expect(isAlive(macAgent.pid)).toBe(true);
  });

  it('tears everything down, also after a crash left orphans and stale sockets', async () => {
    const dir = lab.paths.dir;
    const srvWireguardGo = findProcesses((argv) => argv[0] === 'wireguard-go' && argv[1] === lab.srv.wireguard.interface);
    expect(srvWireguardGo).toHaveLength(1);
    // Crash simulation: wireguard-go killed hard (its UAPI socket stays), the VM namespace
    // deleted under its running wireguard-go, the registry of the lab dir lost.
    process.kill(srvWireguardGo[0], 'SIGKILL');
    await waitUntil('wireguard-go to die', () => !isAlive(srvWireguardGo[0]), 2000);
    expect(existsSync(`/run/wireguard/${lab.srv.wireguard.interface}.sock`)).toBe(true);
    await runner.run(['ip', 'netns', 'del', lab.ns.vm]);
    rmSync(`/run/wgctl-lab/${PREFIX_A}.json`, { force: true });
    const before = await traces(PREFIX_A, dir);
    expect(before.processes.length).toBeGreaterThan(3);

    const report = await destroyLab(PREFIX_A, { dir });
    expect(report.sockets).toEqual([`/run/wireguard/${lab.srv.wireguard.interface}.sock`]);
    expect(report.namespaces).toHaveLength(6);
    expect(await traces(PREFIX_A, dir)).toEqual(NOTHING);
    expect(allPids().filter((pid) => before.processes.includes(pid) && isAlive(pid))).toEqual([]);

    // Idempotent.
    expect(await destroyLab(PREFIX_A, { dir })).toEqual({ namespaces: [], pids: [], sockets: [], etcNetns: [] });
  });

  it('removes a lab whose creation was interrupted', async () => {
    const dir = labDir();
    const abort = new AbortController();
    await expect(
      createLab({
        prefix: PREFIX_C,
        dir,
        signal: abort.signal,
        // Interrupt once the links exist: namespaces, veths and /etc/netns entries are half-built.
        log: (line) => line.startsWith('links') && abort.abort(new Error('interrupted')),
      }),
    ).rejects.toThrow(/creating lab .* failed .*interrupted/);
    expect(await traces(PREFIX_C, dir)).toEqual(NOTHING);
  });
});
