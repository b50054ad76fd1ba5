/**
 * Builds small Mach-O files for the tests, laid out as <mach-o/loader.h> says (mach_header_64,
 * then dylib_command / rpath_command with their lc_str path after the fixed fields, padded to 8).
 * The reader is checked against real Mach-O files too (dprint's macOS builds in node_modules).
 */
const LC_LOAD_DYLIB = 0xc;
const LC_RPATH = 0x8000001c;

function command(cmd: number, fixed: number, path: string): Buffer {
  const size = Math.ceil((fixed + Buffer.byteLength(path) + 1) / 8) * 8;
  const bytes = Buffer.alloc(size);
  bytes.writeUInt32LE(cmd, 0);
  bytes.writeUInt32LE(size, 4);
  bytes.writeUInt32LE(fixed, 8); // lc_str offset: the path follows the fixed fields
  bytes.write(path, fixed);
  return bytes;
}

/** A 64-bit little-endian executable (arm64) that loads `dylibs` and searches `rpaths`. */
export function machOExecutable(dylibs: string[], rpaths: string[] = []): Buffer {
  const commands = [...dylibs.map((d) => command(LC_LOAD_DYLIB, 24, d)), ...rpaths.map((r) => command(LC_RPATH, 12, r))];
  const header = Buffer.alloc(32);
  header.writeUInt32LE(0xfeedfacf, 0);
  header.writeUInt32LE(0x0100000c, 4); // CPU_TYPE_ARM64
  header.writeUInt32LE(2, 12); // MH_EXECUTE
  header.writeUInt32LE(commands.length, 16);
  header.writeUInt32LE(commands.reduce((n, c) => n + c.length, 0), 20);
  return Buffer.concat([header, ...commands]);
}

/** A universal file of `slices` (fat_header and fat_arch big-endian, slices 4 KiB-aligned). */
export function fatFile(slices: Buffer[]): Buffer {
  const align = 4096;
  const parts: Buffer[] = [];
  const table = Buffer.alloc(8 + 20 * slices.length);
  table.writeUInt32BE(0xcafebabe, 0);
  table.writeUInt32BE(slices.length, 4);
  let offset = align;
  slices.forEach((slice, i) => {
    table.writeUInt32BE(slice.readUInt32LE(4), 8 + i * 20);
    table.writeUInt32BE(offset, 8 + i * 20 + 8);
    table.writeUInt32BE(slice.length, 8 + i * 20 + 12);
    table.writeUInt32BE(12, 8 + i * 20 + 16);
    parts.push(slice, Buffer.alloc((align - (slice.length % align)) % align));
    offset += slice.length + ((align - (slice.length % align)) % align);
  });
  return Buffer.concat([table, Buffer.alloc(align - table.length), ...parts]);
}
