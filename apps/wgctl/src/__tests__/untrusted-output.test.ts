/**
 * A compromised VM (or Mac agent) cannot drive the user's terminal: control sequences in step
 * messages, stderr, outcomes, status fields and error details reach the screen as visible
 * \xNN text, never as escape codes.
 */
import * as grpc from '@grpc/grpc-js';
import { cli, writeLabConfig } from '../testing/cli-harness';
import { healthyVmStatus, type Lab, startLab } from '../testing/fake-agents';
import { printable } from '../untrusted';

const EVIL = 'ok\x1b[2J\x1b]0;pwned\x07\x9b31m\r\x08done';

describe('agent text on the terminal', () => {
  let lab: Lab;
  let config: string;
  beforeEach(async () => {
    lab = await startLab();
    config = writeLabConfig(lab);
  });
  afterEach(() => lab.cleanup());

  it('printable(): controls become \\xNN; tab and newline stay', () => {
    expect(printable(EVIL)).toBe('ok\\x1b[2J\\x1b]0;pwned\\x07\\x9b31m\\x0d\\x08done');
    expect(printable('a\tb\nc')).toBe('a\tb\nc');
  });

  it('up: step messages, command stderr and the outcome error are shown without escape codes', async () => {
    lab.agents.vm.up = {
      steps: [{ step: 'wg-quick-up', state: 'failed', message: EVIL, commands: [{ argv: ['wg-quick', EVIL], exitCode: 1, stderr: EVIL }] }],
      outcome: { ok: false, failedStep: 'wg-quick-up', error: EVIL },
    };
    const r = await cli(['--config', config, 'up']);
    expect(r.code).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toContain('\\x1b[2J'); // the text is there, visibly
    expect(out).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
  });

  it('status and a refused call: fields and error details likewise', async () => {
    lab.agents.vm.status = { ...healthyVmStatus(), interface: `wg0${EVIL}`, checks: [{ name: EVIL, ok: false, detail: EVIL, evidence: [EVIL] }] };
    const status = await cli(['--config', config, 'status']);
    expect(status.stdout + status.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(status.stdout).toContain('pwned');
    const json = await cli(['--config', config, '--json', 'status']);
    expect(JSON.parse(json.stdout).vm.interface).toBe(`wg0${printable(EVIL)}`);

    lab.agents.vm.up = { grpcError: { code: grpc.status.FAILED_PRECONDITION, details: EVIL } };
    const up = await cli(['--config', config, 'up']);
    expect(up.stdout + up.stderr).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(up.stderr).toContain('pwned');
  });
});
