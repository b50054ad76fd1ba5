import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildProgram } from '../../cli';
import { startupProgramWarnings } from '../program-trust';

/** What the agent logs at every start when installed with --allow-untrusted-program (real files; we are root). */
describe('startupProgramWarnings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync('/tmp/wtm-start-');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('names what a non-root user could replace, and nothing when all is root\'s', () => {
    const lib = join(dir, 'usr/local/lib');
    mkdirSync(join(lib, 'wgctl'), { recursive: true, mode: 0o755 });
    chownSync(lib, 501, 20);
    const script = join(lib, 'wgctl/mac-agent.js');
    writeFileSync(script, '// agent\n');
    expect(startupProgramWarnings({ nodePath: process.execPath, scriptPath: script })).toEqual([`agent script ${script}: ${lib} is owned by uid 501, not root`]);
    chownSync(lib, 0, 0);
    expect(startupProgramWarnings({ nodePath: process.execPath, scriptPath: script })).toEqual([]);
  });

  it('says so when it cannot check (a program that is gone)', () => {
    expect(startupProgramWarnings({ nodePath: process.execPath, scriptPath: join(dir, 'gone.js') })).toEqual([expect.stringMatching(/^could not check the program it runs from: .*does not exist/)]);
  });

  it('install documents --allow-untrusted-program', () => {
    const install = buildProgram().commands.find((c) => c.name() === 'install');
    expect(install?.helpInformation().replace(/\s+/g, ' ')).toMatch(/--allow-untrusted-program install even when node or the agent script could be replaced by a non-root user/);
  });
});
