/**
 * The repository's import graph as it is loaded at run time, read with the TypeScript compiler's parser, so a
 * test can check which layers a file reaches. Only the workspace's own files are followed; npm packages and
 * node: builtins are leaves.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

export const REPO_ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../..');

/** The workspace packages by name and the folder each package's `./*` export maps to. */
const WORKSPACES: Record<string, string> = {
  '@darkroom/core': 'packages/core',
  '@darkroom/farm': 'packages/farm',
  '@darkroom/cli': 'packages/cli',
  '@darkroom/api': 'services/api',
  '@darkroom/worker': 'services/worker',
  '@darkroom/trainer': 'services/trainer',
};

/**
 * What a file loads at run time, by specifier: `import` and `export ... from` declarations (type-only ones are
 * erased by the compiler and left out, as is an import whose every name is a type), `import x = require()`,
 * and `import('...')` with a literal.
 */
export function importSpecifiers(source: string, fileName = 'file.ts'): string[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!typeOnlyImport(node.importClause)) out.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      if (!node.isTypeOnly && !(named && named.length > 0 && named.every((e) => e.isTypeOnly))) out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      const e = node.moduleReference.expression;
      if (!node.isTypeOnly && ts.isStringLiteral(e)) out.push(e.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteralLike(arg)) out.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function typeOnlyImport(clause: ts.ImportClause | undefined): boolean {
  if (!clause) return false; // `import './x.js'` runs the module
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const b = clause.namedBindings;
  if (!b) return false;
  if (ts.isNamespaceImport(b)) return false;
  return b.elements.length > 0 && b.elements.every((e) => e.isTypeOnly);
}

function asFile(candidate: string): string | null {
  // NodeNext style: `./x.js` names `./x.ts`; a folder's entry is its index.ts.
  const tries = [candidate, candidate.replace(/\.js$/, '.ts'), `${candidate}.ts`, join(candidate, 'index.ts')];
  for (const t of tries) if (existsSync(t) && statSync(t).isFile()) return t;
  return null;
}

function packageTarget(pkgDir: string, subpath: string): string {
  const manifest = JSON.parse(readFileSync(join(REPO_ROOT, pkgDir, 'package.json'), 'utf8')) as { exports?: Record<string, string> };
  const exports = manifest.exports ?? {};
  if (subpath === '.') return join(REPO_ROOT, pkgDir, exports['.'] ?? 'src/index.ts');
  const exact = exports[subpath];
  if (exact !== undefined) return join(REPO_ROOT, pkgDir, exact);
  const star = exports['./*'];
  if (star === undefined) throw new Error(`${pkgDir} does not export ${subpath}`);
  return join(REPO_ROOT, pkgDir, star.replace('*', subpath.slice(2)));
}

/** The repository file an import names, relative to the root; null for an npm package or node: builtin. */
export function resolveImport(fromFile: string, specifier: string): string | null {
  const abs = resolve(REPO_ROOT, fromFile);
  let target: string;
  if (specifier.startsWith('.')) target = resolve(dirname(abs), specifier);
  else {
    const pkg = Object.keys(WORKSPACES).find((p) => specifier === p || specifier.startsWith(`${p}/`));
    if (pkg === undefined) return null;
    target = packageTarget(WORKSPACES[pkg]!, specifier === pkg ? '.' : `.${specifier.slice(pkg.length)}`);
  }
  const file = asFile(target);
  if (file === null) throw new Error(`${fromFile}: cannot resolve "${specifier}"`);
  return relative(REPO_ROOT, file);
}

/** Each repository file reached from `entries`, with the chain of imports that first reached it. */
export function reachable(entries: readonly string[]): Map<string, string[]> {
  const paths = new Map<string, string[]>();
  const queue: string[] = [];
  for (const e of entries) {
    if (!paths.has(e)) {
      paths.set(e, [e]);
      queue.push(e);
    }
  }
  while (queue.length > 0) {
    const file = queue.shift()!;
    if (!file.endsWith('.ts')) continue;
    const source = readFileSync(join(REPO_ROOT, file), 'utf8');
    for (const spec of importSpecifiers(source, file)) {
      const to = resolveImport(file, spec);
      if (to === null || paths.has(to)) continue;
      paths.set(to, [...paths.get(file)!, to]);
      queue.push(to);
    }
  }
  return paths;
}
