/**
 * docs/status.schema.json: generated from the zod schema (z.toJSONSchema), never drifting from
 * it, and a real JSON Schema validator (ajv, draft 2020-12 + formats) accepts the real output of
 * `wgctl status --json` in every state — and rejects a broken document.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ExecRunner } from '@wgctl/runner';
import { PORTAL_STATE_FILE } from '../portal-state';
import { STATUS_JSON_SCHEMA_FILE, STATUS_JSON_SCHEMA_URI, statusJsonSchemaText } from '../status-schema';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, healthyMacStatus, healthyVmStatus, startLab } from '../testing/fake-agents';
import { publishedSchemaErrors, publishedStatusJsonSchema } from '../testing/status-schema';

const ROOT = resolve(__dirname, '../../../..');

describe('docs/status.schema.json', () => {
  it('is exactly what the generator gives from the zod schema (run `npm run gen:status-schema`)', () => {
    expect(readFileSync(join(ROOT, STATUS_JSON_SCHEMA_FILE), 'utf8')).toBe(statusJsonSchemaText());
  });

  it('the generator script agrees (--check exits 0)', async () => {
    const r = await new ExecRunner().run([process.execPath, join(ROOT, 'tools/schema/generate-status-schema.mjs'), '--check'], { allowFailure: true, timeoutMs: 30_000 });
    expect({ exitCode: r.exitCode, stdout: r.stdout }).toEqual({ exitCode: 0, stdout: expect.stringContaining('up to date') });
  });

  it('is draft 2020-12 with an $id and a title, named parts under $defs', () => {
    const schema = publishedStatusJsonSchema();
    expect(schema).toMatchObject({ $schema: 'https://json-schema.org/draft/2020-12/schema', $id: STATUS_JSON_SCHEMA_URI, title: expect.stringContaining('wgctl.status/v1') });
    expect(Object.keys(schema.$defs as object)).toEqual(expect.arrayContaining(['VmSide', 'MacSide', 'Unreachable', 'Health', 'Controller', 'Portal']));
  });
});

describe('ajv validates the real `wgctl status --json` in every state', () => {
  let lab: Lab;
  let config: string;
  beforeEach(async () => {
    lab = await startLab();
    config = writeLabConfig(lab);
  });
  afterEach(() => lab.cleanup());

  async function statusDocument(expectedOverall: string): Promise<Record<string, unknown>> {
    const r = await cli(['--config', config, '--json', 'status']);
    const doc = JSON.parse(r.stdout) as Record<string, unknown>;
    expect({ overall: doc.overall, code: r.code }).toEqual({ overall: expectedOverall, code: doc.exitCode });
    return doc;
  }

  /** [state, expected overall, arrange the agents, what the document must then show]. */
  const states: [string, string, (lab: Lab) => Promise<void> | void, Record<string, unknown>][] = [
    ['healthy', 'healthy', () => undefined, { vm: { reachable: true, liveness: { state: 'alive' } }, controller: { certificate: { ok: true } } }],
    ['degraded: agent NOT_SERVING, a failed check, no handshake', 'degraded', (l) => {
      const vm = healthyVmStatus();
      vm.health = { state: 2, reasons: ['no handshake'], sampledAtMs: String(Date.now()) };
      vm.peers = vm.peers.map((p) => ({ ...p, latestHandshakeUnix: '0', handshakeAgeS: '-1' }));
      vm.checks = [{ name: 'wg-interface', ok: false, detail: 'wg0 missing', evidence: ['ip link'] }];
      l.agents.vm.status = vm;
    }, { vm: { health: { state: 'NOT_SERVING' }, peers: [{ latestHandshake: null }] } }],
    ['down: both sides down', 'down', (l) => {
      l.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false, peers: [] };
      l.agents.mac.status = { ...healthyMacStatus(), up: false, routes: [] };
    }, { vm: { interfaceUp: false }, mac: { up: false } }],
    ['down: the vm-agent unreachable', 'down', (l) => l.agents.stop('vm'), { vm: { reachable: false }, mac: { reachable: true } }],
    ['degraded: a captive-portal sign-in window open', 'degraded', (l) => {
      l.agents.mac.status = { ...healthyMacStatus(), portalWindow: { untilUnixMs: String(Date.now() + 90_000), resolvers: ['192.0.2.1'], tcpPorts: [80, 443] } };
    }, { mac: { portalWindow: { tcpPorts: [80, 443] } } }],
    ['down: a captive portal detected by a failed up', 'down', (l) => {
      l.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false };
      l.agents.mac.status = { ...healthyMacStatus(), up: false };
      const detail = 'answered 302 → http://192.0.2.1/login';
      const detection = { detectedAt: new Date(Date.now() - 60_000).toISOString(), probeUrl: 'http://192.0.2.1/generate_204', address: '192.0.2.1', status: 302, location: 'http://192.0.2.1/login', detail };
      writeFileSync(join(l.dir, PORTAL_STATE_FILE), JSON.stringify(detection), { mode: 0o600 });
    }, { portal: { status: 302 } }],
  ];

  it.each(states)('%s', async (_name, overall, arrange, shows) => {
    await arrange(lab);
    const doc = await statusDocument(overall);
    expect(doc).toMatchObject(shows);
    expect(publishedSchemaErrors(doc)).toEqual([]);
  });

  it('--watch: every line of the NDJSON stream', async () => {
    const r = await cli(['--config', config, '--json', 'status', '--watch', '0.1'], {
      onStart: (interrupt) => setTimeout(interrupt, 450),
    });
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const line of lines) expect(publishedSchemaErrors(JSON.parse(line))).toEqual([]);
  });

  describe('and rejects a broken document', () => {
    let healthy: Record<string, unknown>;
    beforeEach(async () => {
      healthy = await statusDocument('healthy');
    });
    const mutate = (change: (doc: any) => void) => {
      const doc = structuredClone(healthy);
      change(doc);
      return publishedSchemaErrors(doc);
    };

    it('a missing required field', () => {
      expect(mutate((d) => delete d.overall)).toEqual([expect.stringMatching(/^\/: must have required property 'overall'/)]);
      expect(mutate((d) => delete d.mac.killSwitch.enabled).join('\n')).toMatch(/\/mac\/killSwitch: must have required property 'enabled'/);
    });

    it('a wrong enum value, a wrong type, an unknown field, a bad time', () => {
      expect(mutate((d) => (d.vm.health.state = 'SICK')).join('\n')).toMatch(/\/vm\/health\/state: must be equal to one of the allowed values/);
      expect(mutate((d) => (d.overall = 'fine')).join('\n')).toMatch(/\/overall: must be equal to one of the allowed values/);
      expect(mutate((d) => (d.exitCode = '0')).join('\n')).toMatch(/\/exitCode: must be number/);
      expect(mutate((d) => (d.mac.killSwitch.colour = 'red')).join('\n')).toMatch(/\/mac\/killSwitch: must NOT have additional properties/);
      expect(mutate((d) => (d.time = 'yesterday')).join('\n')).toMatch(/\/time: must match format "date-time"/);
    });
  });
});
