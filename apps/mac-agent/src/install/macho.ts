/**
 * The libraries a Mach-O program loads, read from its load commands (what `otool -L` prints,
 * without needing Xcode's tools on the Mac). Pure: bytes in, install names out.
 *
 * Layouts from <mach-o/loader.h> and <mach-o/fat.h>: a fat (universal) file is a big-endian
 * table of slices; each slice is a mach_header(_64) followed by `ncmds` load commands
 * (cmd, cmdsize, …); dylib_command and rpath_command keep their path at an offset (lc_str)
 * from the start of the command, NUL-terminated.
 */

const MH_MAGIC = 0xfeedface;
const MH_MAGIC_64 = 0xfeedfacf;
const FAT_MAGIC = 0xcafebabe;
const FAT_MAGIC_64 = 0xcafebabf;

/** LC_LOAD_DYLIB, LC_LOAD_WEAK_DYLIB, LC_REEXPORT_DYLIB, LC_LAZY_LOAD_DYLIB, LC_LOAD_UPWARD_DYLIB. */
const DYLIB_COMMANDS = new Set([0xc, 0x80000018, 0x8000001f, 0x20, 0x80000023]);
const LC_RPATH = 0x8000001c;

export interface MachOLibraries {
  /** Install names of the libraries loaded (every slice, deduplicated, in order). */
  dylibs: string[];
  /** LC_RPATH entries, what @rpath/ names are searched in. */
  rpaths: string[];
}

function lcString(bytes: Buffer, command: number, size: number, littleEndian: boolean): string {
  const offset = littleEndian ? bytes.readUInt32LE(command + 8) : bytes.readUInt32BE(command + 8);
  if (offset >= size) throw new Error('Mach-O: load command string outside its command');
  const start = command + offset;
  const end = bytes.indexOf(0, start);
  return bytes.toString('utf8', start, end < 0 || end > command + size ? command + size : end);
}

/** Bytes of the file at an offset (fewer at its end): the headers are read, not a 100 MB node. */
export type ReadAt = (offset: number, length: number) => Buffer;

function readSlice(read: ReadAt, base: number, into: MachOLibraries): void {
  const header = read(base, 32);
  if (header.length < 28) throw new Error('Mach-O: truncated header');
  const magicLE = header.readUInt32LE(0);
  const magicBE = header.readUInt32BE(0);
  const littleEndian = magicLE === MH_MAGIC || magicLE === MH_MAGIC_64;
  if (!littleEndian && magicBE !== MH_MAGIC && magicBE !== MH_MAGIC_64) throw new Error('Mach-O: slice without a Mach-O header');
  const is64 = (littleEndian ? magicLE : magicBE) === MH_MAGIC_64;
  const ncmds = littleEndian ? header.readUInt32LE(16) : header.readUInt32BE(16);
  const sizeofcmds = littleEndian ? header.readUInt32LE(20) : header.readUInt32BE(20);
  const bytes = read(base + (is64 ? 32 : 28), sizeofcmds);
  const u32 = (at: number) => (littleEndian ? bytes.readUInt32LE(at) : bytes.readUInt32BE(at));
  const add = (list: string[], value: string) => void (list.includes(value) || list.push(value));
  let command = 0;
  for (let i = 0; i < ncmds; i++) {
    if (command + 8 > bytes.length) throw new Error('Mach-O: truncated load commands');
    const cmd = u32(command);
    const size = u32(command + 4);
    if (size < 8 || command + size > bytes.length) throw new Error('Mach-O: truncated load command');
    if (DYLIB_COMMANDS.has(cmd)) add(into.dylibs, lcString(bytes, command, size, littleEndian));
    else if (cmd === LC_RPATH) add(into.rpaths, lcString(bytes, command, size, littleEndian));
    command += size;
  }
}

/** The libraries of a Mach-O file (thin or universal); undefined when it is not Mach-O (an ELF node on Linux). */
export function machOLibraries(read: ReadAt): MachOLibraries | undefined {
  const head = read(0, 8);
  if (head.length < 8) return undefined;
  const magicBE = head.readUInt32BE(0);
  const magicLE = head.readUInt32LE(0);
  const result: MachOLibraries = { dylibs: [], rpaths: [] };
  if (magicBE === FAT_MAGIC || magicBE === FAT_MAGIC_64) {
    const entrySize = magicBE === FAT_MAGIC_64 ? 32 : 20;
    const count = head.readUInt32BE(4);
    const table = read(8, count * entrySize);
    for (let i = 0; i < count; i++) {
      const entry = i * entrySize;
      if (entry + entrySize > table.length) throw new Error('Mach-O: truncated fat header');
      readSlice(read, magicBE === FAT_MAGIC_64 ? Number(table.readBigUInt64BE(entry + 8)) : table.readUInt32BE(entry + 8), result);
    }
    return result;
  }
  if (![MH_MAGIC, MH_MAGIC_64].includes(magicLE) && ![MH_MAGIC, MH_MAGIC_64].includes(magicBE)) return undefined;
  readSlice(read, 0, result);
  return result;
}
