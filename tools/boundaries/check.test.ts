import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const root = resolve(__dirname, '../..');

/** Runs the real checker (an ES module) on virtual files added to the real workspace. */
function violationsFor(files: { path: string; source: string }[]): { file: string; spec: string; rule: string }[] {
  const script = `
    import { loadProjects, checkFiles } from ${JSON.stringify(resolve(root, 'tools/boundaries/check.mjs'))};
    const root = ${JSON.stringify(root)};
    const files = JSON.parse(process.argv[1]);
    console.log(JSON.stringify(checkFiles(root, loadProjects(root), files)));`;
  const out = execFileSync('node', ['--input-type=module', '-e', script, JSON.stringify(files)], { encoding: 'utf8' });
  return JSON.parse(out);
}

describe('module boundaries', () => {
  it('the workspace as committed has no violations', () => {
    expect(() => execFileSync('node', [resolve(root, 'tools/boundaries/check.mjs')], { stdio: 'pipe' })).not.toThrow();
  });

  it('refuses I/O in a parser', () => {
    const v = violationsFor([{ path: 'libs/parsers/src/darwin/bad.ts', source: "import { readFileSync } from 'node:fs';\n" }]);
    expect(v).toEqual([expect.objectContaining({ spec: 'node:fs', rule: expect.stringMatching(/pure/) })]);
  });

  it('refuses a parser importing the runner or a non-pure package', () => {
    const v = violationsFor([
      { path: 'libs/parsers/src/x.ts', source: "import { ExecRunner } from '@wgctl/runner';\nconst w = require('winston');\n" },
    ]);
    expect(v.map((x) => x.spec).sort()).toEqual(['@wgctl/runner', 'winston']);
  });

  it('refuses vm-side code importing mac-side code and vice versa', () => {
    const v = violationsFor([
      { path: 'apps/vm-agent/src/x.ts', source: "import { DarwinDriver } from '../../mac-agent/src/host/darwin';\n" },
      { path: 'apps/mac-agent/src/y.ts', source: "export * from '../../vm-agent/src/engine';\n" },
    ]);
    expect(v.filter((x) => /scope:(vm|mac) never imports/.test(x.rule))).toHaveLength(2);
  });

  it('refuses libs importing apps and the controller importing an agent', () => {
    const v = violationsFor([
      { path: 'libs/transport/src/x.ts', source: "import '../../../apps/wgctl/src/main';\n" },
      { path: 'apps/wgctl/src/x.ts', source: "const e = await import('../../vm-agent/src/engine');\n" },
    ]);
    expect(v.some((x) => x.rule === 'libs never import apps')).toBe(true);
    expect(v.some((x) => /controller talks to agents/.test(x.rule))).toBe(true);
  });

  it('keeps the engines and the agent kit outside its grpc/ folder transport-free', () => {
    const v = violationsFor([
      { path: 'apps/vm-agent/src/engine.ts', source: "import type { Progress } from '@wgctl/proto';\n" },
      { path: 'apps/mac-agent/src/service/engine/up.ts', source: "import { streamOperation } from '@wgctl/agent-kit/grpc';\n" },
      { path: 'libs/agent-kit/src/gate.ts', source: "import * as grpc from '@grpc/grpc-js';\nimport { aborted } from '@wgctl/transport';\n" },
    ]);
    expect(v.map((x) => `${x.file} ${x.spec}`)).toEqual([
      'apps/vm-agent/src/engine.ts @wgctl/proto',
      'apps/mac-agent/src/service/engine/up.ts @wgctl/agent-kit/grpc',
      'libs/agent-kit/src/gate.ts @grpc/grpc-js',
      'libs/agent-kit/src/gate.ts @wgctl/transport',
    ]);
    expect(new Set(v.map((x) => x.rule)).size).toBe(1);
    expect(v[0].rule).toMatch(/transport-free/);
  });

  it('keeps every file of an agent\'s service/ transport-free but its gRPC layer (server.ts, capture.ts)', () => {
    const v = violationsFor([
      { path: 'apps/mac-agent/src/service/roam.ts', source: "import { HealthState } from '@wgctl/proto';\n" },
      { path: 'apps/vm-agent/src/service/validation.ts', source: "import { invalidArgument } from '@wgctl/transport';\n" },
      { path: 'apps/mac-agent/src/service/server.ts', source: "import { streamOperation } from '@wgctl/agent-kit/grpc';\nimport { invalidArgument } from '@wgctl/transport';\n" },
      { path: 'apps/vm-agent/src/service/capture.ts', source: "import type * as grpc from '@grpc/grpc-js';\nimport type { CaptureRequest } from '@wgctl/proto';\n" },
      { path: 'apps/mac-agent/src/run.ts', source: "import { createAgentServer } from '@wgctl/transport';\n" },
    ]);
    expect(v.map((x) => `${x.file} ${x.spec}`)).toEqual(['apps/mac-agent/src/service/roam.ts @wgctl/proto', 'apps/vm-agent/src/service/validation.ts @wgctl/transport']);
    expect(v.every((x) => /transport-free/.test(x.rule))).toBe(true);
  });

  it('allows what the architecture allows', () => {
    const v = violationsFor([
      { path: 'libs/parsers/src/y.ts', source: "import ipaddr from 'ipaddr.js';\nimport { ParseError } from '../errors';\n" },
      { path: 'apps/mac-agent/src/z.ts', source: "import { parseNetstatRoutes } from '@wgctl/parsers';\nimport { createLogger } from '@wgctl/logging';\n" },
      { path: 'apps/vm-agent/src/service.ts', source: "import { OperationGate } from '@wgctl/agent-kit';\nimport { streamOperation } from '@wgctl/agent-kit/grpc';\n" },
      { path: 'apps/mac-agent/src/service/engine.ts', source: "import { OperationGate } from '@wgctl/agent-kit';\n" },
      { path: 'libs/agent-kit/src/grpc/stream.ts', source: "import type * as grpc from '@grpc/grpc-js';\nimport { aborted } from '@wgctl/transport';\n" },
    ]);
    expect(v).toEqual([]);
  });
});
