/**
 * The VM's WireGuard private key and preshared key never leave the agent: a real engine and
 * gRPC service over a wg-quick config holding both, a system underneath whose outputs carry
 * them (as `wg show dump` does, and as a failing wg-quick's stderr may), and every way out
 * checked — each RPC answer (Describe, Status, Up/Down streams in dry-run and for real) and
 * each error (bad arguments echoing a key, failing commands quoting one, a mangled config),
 * plus every log line the agent wrote. None may contain either key.
 *
 * Also: the agent refuses a wg config others can read (or own), naming the file and the fix.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { HealthSampler } from '@wgctl/agent-kit';
import { MemoryTransport, clearKnownSecrets, createLogger } from '@wgctl/logging';
import {
  CaptureRequest,
  DescribeRequest,
  StatusRequest,
  VmAgentClient,
  VmAgentService,
  VmDownRequest,
  VmUpRequest,
  type Progress,
} from '@wgctl/proto';
import { RuleRunner } from '@wgctl/runner';
import { connectAgent, createAgentServer, readStream, unaryCall, type AgentServer } from '@wgctl/transport';
import { ConfigFileError, checkConfigFileMode, derivePublicKey, loadTunnelConfig } from '../host/config';
import { VmEngine, type VmSample } from '../service/engine/engine';
import { JournalStore } from '../service/journal';
import { vmAgentHandlers } from '../service/server';
import { ProcSysctl } from '../host/sysctl';

const key = (): string => randomBytes(32).toString('base64');

describe('vm-agent secrets', () => {
  // Fresh keys each run: nothing can pass by matching a constant.
  const PRIV = key();
  const PSK = key();
  const SERVER_PUB = derivePublicKey(key());
  const OTHER_PUB = derivePublicKey(key());
  const SECRETS = [PRIV, PSK];

  let dir: string;
  let configPath: string;
  let server: AgentServer;
  let sampler: HealthSampler<VmSample>;
  let client: VmAgentClient;
  let runner: RuleRunner;
  const memory = new MemoryTransport();
  /** `ip -j addr show dev wtv0`: missing, until the Status test makes it exist. */
  const MISSING = { exitCode: 1, stdout: '', stderr: 'Device "wtv0" does not exist.' };
  const link = { ...MISSING };
  /** Everything that came back over gRPC: answers, stream messages, error codes and details. */
  const seen: string[] = [];

  const config = (privateKey: string) =>
    [
      '[Interface]',
      `PrivateKey = ${privateKey}`,
      'Address = 192.0.2.2/24',
      'DNS = 192.0.2.53',
      '[Peer]',
      `PublicKey = ${SERVER_PUB}`,
      `PresharedKey = ${PSK}`,
      'Endpoint = 203.0.113.1:51820',
      'AllowedIPs = 0.0.0.0/0',
      'PersistentKeepalive = 25',
      '[Peer]',
      `PublicKey = ${OTHER_PUB}`,
      'AllowedIPs = 198.51.100.64/26',
      '',
    ].join('\n');

  const record = (value: unknown): void => {
    seen.push(JSON.stringify(value));
  };
  const recordError = (e: unknown): grpc.ServiceError => {
    const error = e as grpc.ServiceError;
    seen.push(`${error.code} ${error.details} ${error.message}`);
    return error;
  };
  const unary = async <Req, Res>(method: (r: Req, m: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (e: grpc.ServiceError | null, r: Res) => void) => grpc.ClientUnaryCall, request: Req): Promise<Res> => {
    try {
      const response = await unaryCall(method, request, { timeoutMs: 10_000 });
      record(response);
      return response;
    } catch (e) {
      throw recordError(e);
    }
  };
  const stream = async (call: grpc.ClientReadableStream<Progress>): Promise<Progress[]> => {
    const messages: Progress[] = [];
    try {
      for await (const p of readStream(call)) {
        record(p);
        messages.push(p);
      }
    } catch (e) {
      throw recordError(e);
    }
    return messages;
  };
  const outcomeOf = (messages: Progress[]) => {
    const last = messages[messages.length - 1]?.kind;
    if (last?.$case !== 'outcome') throw new Error('no outcome');
    return last.value;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'wth-secrets-'));
    configPath = join(dir, 'wtv0.conf');
    writeFileSync(configPath, config(PRIV), { mode: 0o600 });
    mkdirSync(join(dir, 'sys/net/ipv4/conf/all'), { recursive: true });
    writeFileSync(join(dir, 'sys/net/ipv4/ip_forward'), '0\n');
    writeFileSync(join(dir, 'sys/net/ipv4/conf/all/src_valid_mark'), '0\n');

    // The system speaks the keys where the real tools do: `wg show dump` prints the private key
    // and the PSK; a failing wg-quick may quote the config line it choked on.
    const dump = `${PRIV}\t${derivePublicKey(PRIV)}\t40000\toff\n${SERVER_PUB}\t${PSK}\t203.0.113.1:51820\t0.0.0.0/0\t${Math.floor(Date.now() / 1000) - 5}\t100\t200\t25\n`;
    runner = new RuleRunner([
      { match: (a) => a.join(' ') === 'iptables --version', reply: { stdout: 'iptables v1.8.9 (nf_tables)\n' } },
      { match: (a) => a[0] === 'iptables-nft-save' || a[0] === 'iptables-legacy-save', reply: { stdout: '' } },
      { match: (a) => a.join(' ') === 'ip -j addr show dev wtv0', reply: link },
      { match: (a) => a.join(' ') === 'ip -j route get 198.51.100.2', reply: { stdout: '[{"dst":"198.51.100.2","dev":"wtvl0","prefsrc":"198.51.100.1","flags":[]}]' } },
      {
        match: (a) => a.join(' ') === 'ip -j route get 198.51.100.9',
        reply: { exitCode: 2, stderr: `Error: inet prefix is expected rather than "${PRIV}" (PSK ${PSK}).` },
      },
      { match: (a) => a.join(' ') === 'wg show wtv0 dump', reply: { stdout: dump } },
      {
        match: (a) => a[0] === 'wg-quick' && a[1] === 'up',
        reply: { exitCode: 1, stderr: `[#] wg setconf wtv0 /dev/fd/63\nLine unrecognized: \`PrivateKey=${PRIV}'\nKey is not the correct length or format: \`${PSK}'\nConfiguration parsing error` },
      },
      { match: (a) => a.includes('-j'), reply: { stdout: '[]' } },
      { match: () => true, reply: {} },
    ]);

    const logger = createLogger({ service: 'vm-agent', level: 'debug', transports: [memory] });
    const engine = new VmEngine({
      configPath,
      runner,
      sysctl: new ProcSysctl(join(dir, 'sys')),
      journal: new JournalStore(join(dir, 'state')),
      logger,
      interfaceMethod: 'wg-quick',
      resolver: async () => '203.0.113.1',
      pollIntervalMs: 10,
    });
    server = createAgentServer({ serviceName: 'wgctl.v1.VmAgent', insecure: 'loopback-dev', allowedRoles: ['controller'], logger, initialHealth: false });
    sampler = new HealthSampler({ sample: () => engine.sample(), verdict: (sample) => sample, intervalMs: 600_000, onVerdict: (serving) => server.setHealth(serving), logger });
    server.addService(VmAgentService, vmAgentHandlers(engine, sampler, logger));
    const target = await server.listen('127.0.0.1:0');
    client = connectAgent(VmAgentClient, target, { insecure: true });
  });

  afterAll(async () => {
    client?.close();
    sampler?.stop();
    await server?.shutdown(1000);
    rmSync(dir, { recursive: true, force: true });
    clearKnownSecrets();
  });

  it('Describe answers the derived public key and the peers, not the private key or the PSK', async () => {
    const description = await unary(client.describe.bind(client), DescribeRequest.fromPartial({}));
    // The control: the agent did read the key (it answers the public key derived from it).
    expect(description.publicKey).toBe(derivePublicKey(PRIV));
    expect(description.peers.map((p) => p.publicKey)).toEqual([SERVER_PUB, OTHER_PUB]);
  });

  it('Status, sampled from a `wg show dump` that prints both keys, carries neither', async () => {
    Object.assign(link, { exitCode: 0, stderr: '', stdout: JSON.stringify([{ ifindex: 9, ifname: 'wtv0', flags: ['POINTOPOINT', 'UP', 'LOWER_UP'], addr_info: [] }]) });
    try {
      await sampler.refresh();
      const status = await unary(client.status.bind(client), StatusRequest.fromPartial({}));
      expect(runner.calls.some((a) => a.join(' ') === 'wg show wtv0 dump')).toBe(true);
      expect(status.publicKey).toBe(derivePublicKey(PRIV));
      expect(status.peers).toEqual([expect.objectContaining({ publicKey: SERVER_PUB, rxBytes: '100', txBytes: '200' })]);
    } finally {
      Object.assign(link, MISSING);
      await sampler.refresh();
    }
  });

  it('Up in dry-run streams every step without a key', async () => {
    const messages = await stream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', dryRun: true })));
    expect(outcomeOf(messages)).toMatchObject({ ok: true });
  });

  it('a failing command that quotes both keys: the step message and the outcome have them redacted', async () => {
    const messages = await stream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.9', dryRun: true })));
    const outcome = outcomeOf(messages);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'resolve-lan' });
    expect(outcome.error).toContain('[REDACTED]'); // the key reached the message and was removed
  });

  it('a real Up whose wg-quick fails quoting both keys: step stderr, outcome and rollback carry neither', async () => {
    const messages = await stream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', handshakeTimeoutMs: 1000 })));
    const outcome = outcomeOf(messages);
    expect(outcome).toMatchObject({ ok: false, failedStep: 'wg-quick-up' });
    expect(outcome.error).toMatch(/Line unrecognized: `PrivateKey=\[REDACTED\]'/);
    const steps = messages.flatMap((m) => (m.kind?.$case === 'step' ? [m.kind.value.step] : []));
    expect(steps).toContain('rollback-firewall');
    const stderr = messages.flatMap((m) => (m.kind?.$case === 'step' ? m.kind.value.commands.map((c) => c.stderr) : [])).join('\n');
    expect(stderr).toContain('Configuration parsing error');
  });

  it('a Down after it streams without a key', async () => {
    const messages = await stream(client.down(VmDownRequest.fromPartial({})));
    expect(outcomeOf(messages).ok).toBe(true);
  });

  it('bad arguments that are keys are refused (INVALID_ARGUMENT) without echoing them', async () => {
    await expect(stream(client.up(VmUpRequest.fromPartial({ macSource: PRIV })))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(stream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', lanInterface: PSK })))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(unary(client.capture.bind(client), CaptureRequest.fromPartial({ interface: PSK }))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(unary(client.capture.bind(client), CaptureRequest.fromPartial({ probeTarget: PRIV }))).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it('a mangled config with a never-seen key: Describe, Up and Status fail without quoting it', async () => {
    const fresh = key();
    writeFileSync(configPath, config(fresh).replace(`PrivateKey = ${fresh}`, `PrivateKey ${fresh}`));
    try {
      await expect(unary(client.describe.bind(client), DescribeRequest.fromPartial({}))).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
      const messages = await stream(client.up(VmUpRequest.fromPartial({ macSource: '198.51.100.2', dryRun: true })));
      expect(outcomeOf(messages)).toMatchObject({ ok: false, failedStep: 'read-config' });
      await sampler.refresh();
      const status = await unary(client.status.bind(client), StatusRequest.fromPartial({}));
      expect(status.checks.find((c) => c.name === 'config')).toMatchObject({ ok: false, detail: expect.stringContaining('characters hidden') });
      for (const text of [...seen, ...memory.lines]) expect(text).not.toContain(fresh);
    } finally {
      writeFileSync(configPath, config(PRIV));
    }
  });

  it('nothing the agent sent or logged contains either key', () => {
    expect(seen.length).toBeGreaterThan(10);
    expect(memory.lines.length).toBeGreaterThan(20);
    // The log does record the failures whose messages quoted the keys.
    expect(memory.lines.join('\n')).toMatch(/Line unrecognized/);
    for (const text of [...seen, ...memory.lines]) {
      for (const secret of SECRETS) expect(text).not.toContain(secret);
    }
  });
});

describe('wg config file permissions', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'wth-wgmode-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([0o644, 0o640, 0o604, 0o660, 0o606, 0o620])('refuses mode %o, naming the file and chmod 600', async (mode) => {
    const path = join(dir, 'wtv1.conf');
    writeFileSync(path, '[Interface]\nAddress = 192.0.2.2/24\n');
    chmodSync(path, mode);
    await expect(loadTunnelConfig(path)).rejects.toThrow(ConfigFileError);
    await expect(loadTunnelConfig(path)).rejects.toThrow(`${path} is accessible by group or others (mode 0${mode.toString(8)}) and holds the WireGuard private key: run chmod 600 ${path}`);
  });

  it('accepts 0600 and 0400', async () => {
    const path = join(dir, 'wtv2.conf');
    writeFileSync(path, '[Interface]\nAddress = 192.0.2.2/24\n');
    for (const mode of [0o600, 0o400]) {
      chmodSync(path, mode);
      await expect(loadTunnelConfig(path)).resolves.toMatchObject({ interface: 'wtv2' });
    }
  });

  it('refuses a file owned by another user (its PostUp lines would run as root)', () => {
    expect(() => checkConfigFileMode('/etc/wireguard/wg0.conf', 0o100600, 1000, 0)).toThrow(/owned by uid 1000, not by root or the agent \(uid 0\).*chown root/);
    expect(() => checkConfigFileMode('/etc/wireguard/wg0.conf', 0o100600, 0, 0)).not.toThrow();
    expect(() => checkConfigFileMode('/srv/wg0.conf', 0o100600, 0, 1000)).not.toThrow(); // root-owned is fine for any agent user
  });
});
