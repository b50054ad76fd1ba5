/**
 * #14: the captive portal a failed `wgctl up` found is remembered by the controller (next to its
 * config) and shown by `wgctl status` / `--json` while recent and while the Mac is not up. Fake
 * agents over real gRPC + mTLS; the probe is real, against a portal stand-in on loopback.
 */
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PORTAL_STATE_FILE } from '../portal-state';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { type Lab, healthyMacStatus, healthyVmStatus, okSteps, startLab } from '../testing/fake-agents';
import { statusReportSchema } from '../testing/status-schema';

const LOGIN = 'http://192.0.2.1/login';

let lab: Lab;
let config: string;
let portal: Server;
/** What the loopback stand-in answers: a portal's redirect, or the internet's 204. */
let answer: 'portal' | 'free';
let probeUrl: string;

beforeEach(async () => {
  lab = await startLab();
  config = writeLabConfig(lab);
  answer = 'portal';
  portal = createServer((_req, res) => {
    if (answer === 'portal') res.writeHead(302, { location: LOGIN }).end();
    else res.writeHead(204).end();
  });
  await new Promise<void>((resolve) => portal.listen(0, '127.0.0.1', resolve));
  probeUrl = `http://127.0.0.1:${(portal.address() as AddressInfo).port}/generate_204`;
});

afterEach(async () => {
  await new Promise((resolve) => portal.close(resolve));
  await lab.cleanup();
});

const statePath = () => join(lab.dir, PORTAL_STATE_FILE);

/** Both sides down, as after a rolled-back up. */
function agentsDown(): void {
  lab.agents.vm.status = { ...healthyVmStatus(), interfaceUp: false };
  lab.agents.mac.status = { ...healthyMacStatus(), up: false };
}

function failHandshake(): void {
  lab.agents.vm.up = {
    steps: [...okSteps('wg-quick-up'), { step: 'await-handshake', state: 'failed', message: 'no handshake within 15 s' }],
    outcome: { ok: false, failedStep: 'await-handshake', error: 'no handshake within 15 s' },
  };
}

async function statusJson() {
  const r = await cli(['--config', config, '--json', 'status']);
  const parsed = statusReportSchema.safeParse(JSON.parse(r.stdout));
  if (!parsed.success) throw new Error(`status JSON does not match the schema: ${JSON.stringify(parsed.error.issues, null, 2)}`);
  expect(parsed.data.exitCode).toBe(r.code);
  return { code: r.code, doc: parsed.data, stderr: r.stderr };
}

function writeDetection(ageMs: number): void {
  const detection = { detectedAt: new Date(Date.now() - ageMs).toISOString(), probeUrl, address: '127.0.0.1', status: 302, location: LOGIN, detail: `answered 302 → ${LOGIN}` };
  writeFileSync(statePath(), JSON.stringify(detection), { mode: 0o600 });
}

describe('wgctl status after an up that met a captive portal', () => {
  it('a failed up with a portal writes the state (0600); status shows the row, the problem and the JSON field, exit code unchanged', async () => {
    failHandshake();
    const before = Date.now();
    const up = await cli(['--config', config, 'up', '--portal-probe-url', probeUrl]);
    expect(up.code).not.toBe(0);
    expect(up.stderr).toContain('captive portal');

    expect(statSync(statePath()).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(readFileSync(statePath(), 'utf8'));
    expect(saved).toMatchObject({ probeUrl, status: 302, location: LOGIN, detail: `answered 302 → ${LOGIN}` });
    expect(Date.parse(saved.detectedAt)).toBeGreaterThanOrEqual(before - 1000);

    agentsDown();
    const { code, doc } = await statusJson();
    expect(code).toBe(2);
    expect(doc.overall).toBe('down');
    expect(doc.portal).toMatchObject({ detectedAt: saved.detectedAt, probeUrl, status: 302, location: LOGIN, detail: `answered 302 → ${LOGIN}` });
    expect(doc.portal!.ageSeconds).toBeLessThan(60);
    expect(doc.problems).toContainEqual(expect.stringMatching(new RegExp(`^captive portal detected \\d+ s ago \\(${probeUrl.replace(/[./]/g, '\\$&')} answered 302 → ${LOGIN.replace(/[./]/g, '\\$&')}\\): run \`wgctl portal\`$`)));

    const table = await cli(['--config', config, 'status']);
    expect(table.code).toBe(2);
    expect(table.stdout).toMatch(/^Portal: captive portal detected \d+ s ago \(http:\/\/127\.0\.0\.1:\d+\/generate_204 answered 302 → http:\/\/192\.0\.2\.1\/login\): run `wgctl portal`, sign in at http:\/\/192\.0\.2\.1\/login$/m);
  });

  it('a successful up clears it', async () => {
    writeDetection(60_000);
    const up = await cli(['--config', config, 'up', '--portal-probe-url', probeUrl]);
    expect(up.code).toBe(0);
    expect(existsSync(statePath())).toBe(false);
    agentsDown();
    expect((await statusJson()).doc.portal).toBeNull();
  });

  it('a failed up whose probe gets the internet\'s answer clears it; one that reaches nothing keeps it', async () => {
    failHandshake();
    writeDetection(60_000);
    await new Promise((resolve) => portal.close(resolve)); // nothing answers: no evidence either way
    await cli(['--config', config, 'up', '--portal-probe-url', probeUrl]);
    expect(existsSync(statePath())).toBe(true);

    await new Promise<void>((resolve) => portal.listen(Number(new URL(probeUrl).port), '127.0.0.1', resolve));
    answer = 'free';
    await cli(['--config', config, 'up', '--portal-probe-url', probeUrl]);
    expect(existsSync(statePath())).toBe(false);
  });

  it('is shown for 30 minutes, and never while the Mac is up', async () => {
    agentsDown();
    writeDetection(29 * 60_000);
    expect((await statusJson()).doc.portal).not.toBeNull();
    writeDetection(31 * 60_000);
    const old = await statusJson();
    expect(old.doc.portal).toBeNull();
    expect(old.doc.problems.join('\n')).not.toContain('captive portal');

    writeDetection(60_000);
    lab.agents.mac.status = healthyMacStatus();
    lab.agents.vm.status = healthyVmStatus();
    const up = await statusJson();
    expect(up.code).toBe(0);
    expect(up.doc.portal).toBeNull();
  });

  it('a corrupt state file is ignored with a note, never a crash', async () => {
    agentsDown();
    for (const [content, why] of [
      ['{"detectedAt": "yesterday', /not JSON/],
      [JSON.stringify({ detectedAt: 'yesterday', probeUrl }), /not a portal record \(detectedAt: /],
    ] as const) {
      writeFileSync(statePath(), content);
      const { code, doc, stderr } = await statusJson();
      expect(code).toBe(2);
      expect(doc.portal).toBeNull();
      expect(stderr).toContain(`wgctl status: ignoring ${statePath()}: `);
      expect(stderr).toMatch(why);
      const table = await cli(['--config', config, 'status']);
      expect(table.code).toBe(2);
      expect(table.stdout).not.toContain('Portal:');
    }
  });
});
