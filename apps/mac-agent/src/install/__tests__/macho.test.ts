import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { machOLibraries } from '../macho';
import { fatFile, machOExecutable } from './macho-fixture';

const ROOT = join(__dirname, '../../../../..');
const reader = (bytes: Buffer) => (offset: number, length: number) => bytes.subarray(offset, offset + length);
// Real Mach-O files built for macOS (dprint's native module), arm64 and x86_64.
const darwinArm64 = readFileSync(join(ROOT, 'node_modules/dprint-node/dprint-node.darwin-arm64.node'));
const darwinX64 = readFileSync(join(ROOT, 'node_modules/dprint-node/dprint-node.darwin-x64.node'));

describe('machOLibraries: what a Mach-O program loads (otool -L)', () => {
  it('reads the load commands of real macOS builds: only macOS\'s own libraries', () => {
    for (const bytes of [darwinArm64, darwinX64]) {
      const libraries = machOLibraries(reader(bytes));
      expect(libraries?.dylibs).toEqual(expect.arrayContaining(['/usr/lib/libSystem.B.dylib', '/usr/lib/libiconv.2.dylib']));
      expect(libraries?.dylibs.every((d) => /^\/(usr\/lib|System)\//.test(d))).toBe(true);
    }
  });

  it('reads every slice of a universal file', () => {
    const homebrewish = machOExecutable(['/opt/homebrew/opt/libuv/lib/libuv.1.dylib', '@rpath/libnode.dylib'], ['@loader_path/../lib']);
    const libraries = machOLibraries(reader(fatFile([darwinArm64.subarray(0, 65536), homebrewish])));
    expect(libraries?.dylibs).toEqual(expect.arrayContaining(['/usr/lib/libSystem.B.dylib', '/opt/homebrew/opt/libuv/lib/libuv.1.dylib', '@rpath/libnode.dylib']));
    expect(libraries?.rpaths).toEqual(['@loader_path/../lib']);
  });

  it('is undefined for what is not Mach-O (an ELF node on Linux), and refuses a truncated one', () => {
    const elf = Buffer.alloc(4096);
    const fd = openSync(process.execPath, 'r');
    readSync(fd, elf, 0, elf.length, 0);
    closeSync(fd);
    expect(elf.subarray(1, 4).toString()).toBe('ELF');
    expect(machOLibraries(reader(elf))).toBeUndefined();
    expect(machOLibraries(reader(Buffer.from('#!/usr/bin/env node\n')))).toBeUndefined();
    expect(() => machOLibraries(reader(machOExecutable(['/opt/x.dylib']).subarray(0, 40)))).toThrow(/truncated/);
  });
});
