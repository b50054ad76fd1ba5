import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { healthProtoPath, loadReflectionPackageDefinition, protoDir, protosAreEmbedded } from '../index';

const repoProto = resolve(__dirname, '../../../../proto');
const globals = globalThis as { WGCTL_EMBEDDED_PROTOS?: string };

describe('proto files at run time', () => {
  const savedEnv = process.env.WGCTL_PROTO_DIR;
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'wgctl-protodir-'));
  });
  afterEach(() => {
    if (savedEnv === undefined) delete process.env.WGCTL_PROTO_DIR;
    else process.env.WGCTL_PROTO_DIR = savedEnv;
    delete globals.WGCTL_EMBEDDED_PROTOS;
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('finds the repository proto/ by default', () => {
    delete process.env.WGCTL_PROTO_DIR;
    expect(protoDir()).toBe(repoProto);
  });

  it('honours WGCTL_PROTO_DIR, and names it when it is wrong', () => {
    const copy = join(tmp, 'proto');
    cpSync(repoProto, copy, { recursive: true });
    process.env.WGCTL_PROTO_DIR = copy;
    expect(protoDir()).toBe(copy);
    process.env.WGCTL_PROTO_DIR = join(tmp, 'nothing-here');
    expect(() => protoDir()).toThrow(`WGCTL_PROTO_DIR=${join(tmp, 'nothing-here')} does not contain wgctl/v1/common.proto`);
  });

  it('finds health.proto inside grpc-health-check', () => {
    expect(existsSync(healthProtoPath())).toBe(true);
    expect(readFileSync(healthProtoPath(), 'utf8')).toContain('package grpc.health.v1;');
  });

  it('loads wgctl.v1 and grpc.health.v1 with file descriptors from disk', () => {
    expect(protosAreEmbedded()).toBe(false);
    const definition = loadReflectionPackageDefinition();
    expect(Object.keys(definition)).toEqual(expect.arrayContaining(['wgctl.v1.VmAgent', 'wgctl.v1.MacAgent', 'grpc.health.v1.Health']));
    const files = (definition['wgctl.v1.VmUpRequest'] as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos;
    expect(files?.length).toBeGreaterThan(0);
  });

  it('loads from the sources a bundle embeds, without touching proto/ on disk', () => {
    const files = ['wgctl/v1/common.proto', 'wgctl/v1/vm_agent.proto', 'wgctl/v1/mac_agent.proto'];
    globals.WGCTL_EMBEDDED_PROTOS = JSON.stringify({
      files,
      sources: Object.fromEntries(files.map((f) => [f, readFileSync(join(repoProto, f), 'utf8')])),
      health: readFileSync(healthProtoPath(), 'utf8'),
    });
    process.env.WGCTL_PROTO_DIR = join(tmp, 'nothing-here');
    expect(protosAreEmbedded()).toBe(true);
    const definition = loadReflectionPackageDefinition();
    expect(Object.keys(definition)).toEqual(expect.arrayContaining(['wgctl.v1.VmAgent', 'grpc.health.v1.Health']));
  });
});
