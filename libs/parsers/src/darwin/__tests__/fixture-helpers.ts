import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Real macOS outputs, vendored from shared/fixtures/macos (SOURCES.md says where each came from). */
export const FIXTURE_DIR = join(__dirname, '..', '__fixtures__');

export function fixture(name: string): string {
  return readFileSync(join(FIXTURE_DIR, name), 'utf8');
}

export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR)
    .filter((n) => n !== 'SOURCES.md')
    .sort();
}

/** The fixture without the annotation lines its collector added (`# …`). */
export function withoutAnnotations(text: string): string {
  return text
    .split('\n')
    .filter((l) => !/^#( |$)/.test(l))
    .join('\n');
}

/** The shared copy next to the repository, when this checkout has one (sessions and CI do). */
export function sharedFixtureDir(): string | undefined {
  const dir = resolve(__dirname, '../../../../../../shared/fixtures/macos');
  return existsSync(dir) ? dir : undefined;
}

/** Splits a shell transcript (`$ sudo pfctl -s info` lines) into command → output. */
export function transcript(text: string): { command: string; output: string }[] {
  const parts: { command: string; output: string }[] = [];
  for (const line of text.split('\n')) {
    const command = /^\$ (.*)$/.exec(line);
    if (command) parts.push({ command: command[1], output: '' });
    else if (parts.length > 0) parts[parts.length - 1].output += `${line}\n`;
  }
  return parts;
}
