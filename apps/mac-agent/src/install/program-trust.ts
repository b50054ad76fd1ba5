/**
 * StrictModes for the code the service manager runs as root: the node binary, the agent script
 * and, on macOS, every library node loads. Each must be root's, with root-owned parents
 * (rootOwnedProblem): on an Intel Mac Homebrew gives its user /usr/local/bin and /usr/local/lib,
 * and Homebrew's node loads libuv, OpenSSL, ICU… from that user-owned prefix, so a program
 * running as the user could put its own code where launchd runs it as root.
 *
 * macOS's own libraries (/usr/lib, /System) are skipped: they live in the dyld shared cache, not
 * on disk, and System Integrity Protection keeps even root from changing them.
 */
import { closeSync, existsSync, openSync, readSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { rootOwnedProblem } from '@wgctl/config';
import { machOLibraries, type ReadAt } from './macho';

const SYSTEM_LIBRARY = /^\/(usr\/lib|System)\//;

export interface ProgramPaths {
  nodePath: string;
  scriptPath: string;
}

/** What is wrong with what the service will run, by role; empty lists when all is root's. */
export interface UntrustedProgram {
  node: string[];
  script: string[];
}

function withFile<T>(path: string, use: (read: ReadAt) => T): T {
  const fd = openSync(path, 'r');
  try {
    return use((offset, length) => {
      const buffer = Buffer.alloc(length);
      return buffer.subarray(0, readSync(fd, buffer, 0, length, offset));
    });
  } finally {
    closeSync(fd);
  }
}

function nearestExisting(path: string): string {
  let current = path;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}

/** A library path dyld may load: present, it must be root's; absent, whoever can create it must be root. */
function libraryProblem(path: string): string | undefined {
  if (existsSync(path)) return rootOwnedProblem(path, 'library');
  const problem = rootOwnedProblem(nearestExisting(dirname(path)), 'directory', 'directory');
  return problem && `library ${path} (missing): ${problem}`;
}

/** Where dyld looks for one install name (@executable_path/@loader_path: node's directory; @rpath: each LC_RPATH). */
function libraryCandidates(name: string, nodeDir: string, rpaths: string[]): string[] {
  const anchored = (path: string) => path.replace(/^@(executable_path|loader_path)(?=\/)/, nodeDir);
  if (name.startsWith('@rpath/')) return rpaths.map((rpath) => join(anchored(rpath), name.slice('@rpath/'.length)));
  return [anchored(name)];
}

/** The libraries a (Mach-O) node loads that are not root's; none for an ELF node (Linux). */
export function untrustedLibraries(nodePath: string): string[] {
  const real = realpathSync(nodePath);
  const libraries = withFile(real, machOLibraries);
  if (!libraries) return [];
  const problems: string[] = [];
  for (const name of libraries.dylibs) {
    if (SYSTEM_LIBRARY.test(name)) continue;
    const candidates = libraryCandidates(name, dirname(real), libraries.rpaths);
    if (candidates.length === 0 || candidates.some((path) => !isAbsolute(path))) {
      problems.push(`node ${nodePath} loads ${name}, which cannot be checked`);
      continue;
    }
    for (const path of candidates) {
      const problem = libraryProblem(path);
      if (problem) problems.push(`node ${nodePath} loads ${name}: ${problem}`);
    }
  }
  return problems;
}

/** Checks node (with its libraries) and the agent script for a root service; see the file comment. */
export function untrustedProgram(paths: ProgramPaths): UntrustedProgram {
  const nodeProblem = rootOwnedProblem(paths.nodePath, 'node');
  const scriptProblem = rootOwnedProblem(paths.scriptPath, 'agent script');
  return {
    node: nodeProblem ? [nodeProblem] : untrustedLibraries(paths.nodePath),
    script: scriptProblem ? [scriptProblem] : [],
  };
}

export const ALLOW_UNTRUSTED_FLAG = '--allow-untrusted-program';

/**
 * Throws (each problem with its fix) unless `allow`; with it, returns the warnings to print now
 * (the agent logs them again at every start).
 */
export function enforceTrustedProgram(found: UntrustedProgram, fixes: { node: string; script: string }, allow: boolean): string[] {
  const lines = [...found.node.map((problem) => `${problem}: ${fixes.node}`), ...found.script.map((problem) => `${problem}: ${fixes.script}`)];
  if (lines.length === 0) return [];
  const why = 'the service runs it as root, and whoever can change it can run their code as root';
  if (!allow) throw new Error(`refusing to install (${why}):\n  ${lines.join('\n  ')}\n  (${ALLOW_UNTRUSTED_FLAG} installs anyway, with a warning in the log at every start)`);
  return lines.map((line) => `WARNING: installed with ${ALLOW_UNTRUSTED_FLAG}; ${why}: ${line}`);
}

/** What the agent logs at every start when it runs from code that is not root's alone (none: []). */
export function startupProgramWarnings(paths: ProgramPaths): string[] {
  try {
    const found = untrustedProgram(paths);
    return [...found.node, ...found.script];
  } catch (err) {
    return [`could not check the program it runs from: ${(err as Error).message}`];
  }
}
