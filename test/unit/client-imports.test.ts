/**
 * The client's modules import one another without a cycle: a task and a watcher know their
 * client only through the small interface it implements (client/Host.ts), never UploadClient
 * itself. A cycle (even of `import type`) ties the files into one unit that cannot be read,
 * tested or bundled apart, so this test parses every static import of client/ and shared/ and
 * fails on any cycle, naming it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIRS = ['client', 'shared'];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Every relative module a file imports or re-exports statically, `import type` included, as paths. */
function importsOf(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const targets: string[] = [];
  for (const statement of source.statements) {
    const specifier = ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement) ? statement.moduleSpecifier : undefined;
    if (!specifier || !ts.isStringLiteral(specifier) || !specifier.text.startsWith('.')) continue;
    targets.push(resolve(dirname(file), specifier.text.replace(/\.js$/, '.ts')));
  }
  return targets;
}

/** The import graph: file -> the files of the graph it imports. */
function graphOf(files: readonly string[], read: (file: string) => string): Map<string, string[]> {
  const known = new Set(files);
  return new Map(files.map((file) => [file, importsOf(file, read(file)).filter((target) => known.has(target))]));
}

/** Every cycle found by a depth-first walk (each reported once per back edge), as file lists. */
function cyclesOf(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (file: string): void => {
    path.push(file);
    onPath.add(file);
    for (const next of graph.get(file) ?? []) {
      if (onPath.has(next)) cycles.push([...path.slice(path.indexOf(next)), next]);
      else if (!done.has(next)) visit(next);
    }
    path.pop();
    onPath.delete(file);
    done.add(file);
  };
  for (const file of graph.keys()) if (!done.has(file)) visit(file);
  return cycles;
}

const name = (file: string) => relative(ROOT, file);

describe('client import graph', () => {
  it('has no cycle among client/ and shared/ files', () => {
    const files = DIRS.flatMap((dir) => sourceFiles(join(ROOT, dir)));
    const graph = graphOf(files, (file) => readFileSync(file, 'utf8'));
    // The graph is the real one: UploadClient reaches UploadTask and Watcher.
    expect(graph.get(join(ROOT, 'client/UploadClient.ts'))).toEqual(expect.arrayContaining([join(ROOT, 'client/UploadTask.ts'), join(ROOT, 'client/Watcher.ts')]));
    expect(cyclesOf(graph).map((cycle) => cycle.map(name).join(' -> '))).toEqual([]);
  });

  it('sees a cycle through `import type`, multi-line imports and re-exports', () => {
    const files: Record<string, string> = {
      '/x/a.ts': "import {\n  b,\n} from './b.js';\n",
      '/x/b.ts': "import type { C } from './c.js';\nexport const b = 1;\n",
      '/x/c.ts': "export { a } from './a.js';\nexport type C = number;\n",
      '/x/d.ts': "import { a } from './a.js';\n",
    };
    const cycles = cyclesOf(graphOf(Object.keys(files), (file) => files[file] as string));
    expect(cycles).toEqual([['/x/a.ts', '/x/b.ts', '/x/c.ts', '/x/a.ts']]);
  });
});
