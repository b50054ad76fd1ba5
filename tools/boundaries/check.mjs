#!/usr/bin/env node
/**
 * Module boundaries, enforced from each project's tags (project.json).
 *
 * nx's own enforcement lives in @nx/eslint-plugin, whose registry release lags nx core and
 * pulls a second nx (see docs/TOOLCHAIN.md), so the rules are checked here instead, on the
 * import specifiers of every .ts file:
 *   - libs never import apps;
 *   - scope:vm never imports scope:mac (and vice versa); the controller imports neither agent;
 *   - type:parser imports only other parser files and pure npm packages (no node: I/O modules);
 *   - a project imports another only through its alias (@wgctl/x, or an entry point of it such
 *     as @wgctl/agent-kit/grpc listed in tsconfig.base.json), never by relative path;
 *   - transport-free code imports no gRPC, proto or transport: the agents' engines (engine.ts,
 *     an engine/ folder, and every file of src/service/ but the gRPC layer there: server.ts and
 *     capture.ts) and type:agent-kit outside its grpc/ folder — the gRPC layer maps them to the
 *     wire, they never see it.
 * Exit 1 with one line per violation.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { builtinModules } from 'node:module';

const PURE_PACKAGES = new Set(['ipaddr.js', 'zod']);
const BUILTINS = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);
const TRANSPORT_SPECS = [/^@grpc\//, /^@wgctl\/(proto|transport)$/, /^@wgctl\/[^/]+\/grpc$/];

export function loadProjects(root) {
  const projects = [];
  for (const kind of ['apps', 'libs']) {
    const base = join(root, kind);
    if (!existsSync(base)) continue;
    for (const name of readdirSync(base)) {
      const file = join(base, name, 'project.json');
      if (!existsSync(file)) continue;
      const json = JSON.parse(readFileSync(file, 'utf8'));
      projects.push({ name: json.name, root: join(kind, name), kind, tags: json.tags ?? [] });
    }
  }
  return projects;
}

/** Entry points beyond a lib's index (`@wgctl/agent-kit/grpc`): the tsconfig.base.json paths with a subpath. */
function subpathAliases(root) {
  const file = join(root, 'tsconfig.base.json');
  if (!existsSync(file)) return [];
  const paths = JSON.parse(readFileSync(file, 'utf8')).compilerOptions?.paths ?? {};
  return Object.keys(paths).filter((alias) => /^@wgctl\/[^/]+\/./.test(alias));
}

/** An agent's gRPC layer inside src/service/: the generated service's implementation and the Capture RPC. */
const AGENT_GRPC_FILES = new Set(['src/service/server.ts', 'src/service/capture.ts']);

function isTransportFree(rel, project) {
  if (tag(project, 'type') === 'agent-kit') return !rel.startsWith(`${project.root}/src/grpc/`);
  if (tag(project, 'scope') !== 'vm' && tag(project, 'scope') !== 'mac') return false;
  const inProject = rel.slice(project.root.length + 1);
  if (/(^|\/)engine(\.ts$|\/)/.test(inProject)) return true;
  return inProject.startsWith('src/service/') && !AGENT_GRPC_FILES.has(inProject);
}

function tag(project, prefix) {
  return project.tags.find((t) => t.startsWith(`${prefix}:`))?.slice(prefix.length + 1);
}

export function importsOf(source) {
  const specs = [];
  const re = /(?:^|[^.\w])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[^.\w])import\s*['"]([^'"]+)['"]|\b(?:require|import)\s*\(\s*['"]([^'"]+)['"]\s*\)/gm;
  for (const m of source.matchAll(re)) specs.push(m[1] ?? m[2] ?? m[3]);
  return specs;
}

/** Returns violations for the given files: [{file, spec, rule}] (file paths relative to root). */
export function checkFiles(root, projects, files) {
  const aliases = new Map(projects.filter((p) => p.kind === 'libs').map((p) => [`@wgctl/${p.name}`, p]));
  for (const alias of subpathAliases(root)) {
    const lib = aliases.get(alias.split('/').slice(0, 2).join('/'));
    if (lib) aliases.set(alias, lib);
  }
  const owner = (rel) => projects.find((p) => rel === p.root || rel.startsWith(p.root + '/'));
  const violations = [];
  for (const { path: rel, source } of files) {
    const from = owner(rel);
    if (!from) continue;
    const isTest = /\.test\.ts$|[\\/]testing[\\/]|__tests__/.test(rel);
    for (const spec of importsOf(source)) {
      let to;
      if (spec.startsWith('.')) {
        const target = relative(root, resolve(root, dirname(rel), spec)).split(sep).join('/');
        to = owner(target);
        if (to && to !== from) violations.push({ file: rel, spec, rule: `relative import into project ${to.name}: use @wgctl/${to.name}` });
        if (!to && !isTest && !target.startsWith('node_modules')) violations.push({ file: rel, spec, rule: 'relative import outside any project' });
      } else if (spec.startsWith('@wgctl/')) {
        to = aliases.get(spec);
        if (!to) violations.push({ file: rel, spec, rule: 'unknown @wgctl alias' });
      }
      if (!isTest && TRANSPORT_SPECS.some((re) => re.test(spec)) && isTransportFree(rel, from)) {
        violations.push({ file: rel, spec, rule: 'transport-free code (an engine, the agent kit outside grpc/) imports no gRPC, proto or transport' });
      }
      const fromType = tag(from, 'type');
      if (fromType === 'parser' && !isTest) {
        if (BUILTINS.has(spec)) violations.push({ file: rel, spec, rule: 'parsers are pure: no node built-in modules' });
        else if (to && to !== from) violations.push({ file: rel, spec, rule: 'parsers import only parsers' });
        else if (!to && !spec.startsWith('.') && !PURE_PACKAGES.has(spec)) violations.push({ file: rel, spec, rule: `parsers import only pure packages (${[...PURE_PACKAGES].join(', ')})` });
      }
      if (!to || to === from) continue;
      if (from.kind === 'libs' && to.kind === 'apps') violations.push({ file: rel, spec, rule: 'libs never import apps' });
      const a = tag(from, 'scope');
      const b = tag(to, 'scope');
      if ((a === 'vm' && b === 'mac') || (a === 'mac' && b === 'vm')) violations.push({ file: rel, spec, rule: `scope:${a} never imports scope:${b}` });
      if (a === 'controller' && (b === 'vm' || b === 'mac')) violations.push({ file: rel, spec, rule: 'the controller talks to agents over gRPC, never by import' });
      if (to.kind === 'apps') violations.push({ file: rel, spec, rule: 'apps never import other apps' });
    }
  }
  return violations;
}

function walk(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    if (e.name === 'node_modules' || e.name === 'gen') return [];
    const p = join(dir, e.name);
    return e.isDirectory() ? walk(p) : p.endsWith('.ts') ? [p] : [];
  });
}

export function checkWorkspace(root) {
  const projects = loadProjects(root);
  const files = projects.flatMap((p) => walk(join(root, p.root))).map((abs) => ({
    path: relative(root, abs).split(sep).join('/'),
    source: readFileSync(abs, 'utf8'),
  }));
  return { projects, files, violations: checkFiles(root, projects, files) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const { projects, files, violations } = checkWorkspace(root);
  for (const v of violations) console.error(`${v.file}: import '${v.spec}': ${v.rule}`);
  if (violations.length) {
    console.error(`module boundaries: ${violations.length} violation(s)`);
    process.exit(1);
  }
  console.log(`module boundaries: ${files.length} files in ${projects.length} projects, no violations`);
}
