/**
 * `wgctl menubar [--status-json FILE|-]`: the output of the xbar/SwiftBar plugin
 * (tools/menubar/wgctl.30s.sh). Always exits 0: a plugin that fails shows an error badge
 * instead of its menu, and the menu is where the user should read what is wrong.
 */
import { realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CommandContext } from '../command-context';
import { EXIT, errorMessage } from '../errors';
import { type Invocation, MenubarError, parseStatusDocument, renderMenubar, renderUnknownMenubar } from '../render/menubar';
import { configPath } from './context';
import { sampleStatusOnce } from './status';

/** A status document is a few KiB; anything far larger is not one. */
const MAX_DOCUMENT_BYTES = 1 << 20;

async function readDocument(ctx: CommandContext, file: string): Promise<string> {
  if (file !== '-') return readFile(file, 'utf8');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.io.stdin) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    size += buffer.length;
    if (size > MAX_DOCUMENT_BYTES) throw new MenubarError(`stdin holds more than ${MAX_DOCUMENT_BYTES} bytes: not a status document`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** This very wgctl (node binary, script, config), so the menu's actions run what rendered them. */
function selfInvocation(ctx: CommandContext): Invocation {
  const script = process.argv[1] ?? '';
  let real = resolve(script);
  try {
    real = realpathSync(script);
  } catch {
    // not a file (node -e): the resolved path is all there is
  }
  return { node: process.execPath, script: real, config: resolve(configPath(ctx)) };
}

export async function menubarCommand(ctx: CommandContext, flags: { statusJson?: string }): Promise<number> {
  const invocation = selfInvocation(ctx);
  let output: string;
  try {
    const report = flags.statusJson !== undefined ? parseStatusDocument(await readDocument(ctx, flags.statusJson)) : await sampleStatusOnce(ctx);
    output = renderMenubar(report, invocation);
  } catch (error) {
    output = renderUnknownMenubar(errorMessage(error), invocation);
  }
  ctx.io.stdout.write(output);
  return EXIT.ok;
}
