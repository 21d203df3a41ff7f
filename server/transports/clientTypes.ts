/**
 * The `.d.ts` served beside the browser build of the client (/assets/upload-hub.d.ts): one
 * self-contained declaration file, so an app that imports '/assets/upload-hub.js' (or a copy of
 * it) gets the client's types without installing anything.
 *
 * tsc emits one declaration file per module; this joins them. Each module's declarations go
 * into a namespace of their own (so equal names in two modules do not clash), its imports become
 * aliases of the other namespaces, and the entry's exports are re-exported at the top. The
 * protocol types in shared/messages.ts are inferred from zod schemas, which an app does not
 * have: each such type is written out as the structure the checker sees, and the schemas are
 * left out (they are values the client does not export).
 *
 * Needs the TypeScript compiler, so it runs at build time (server/build.mjs) or, from source,
 * on first use; a compiled hub serves the file the build wrote.
 */
import { dirname, relative, resolve } from 'node:path';
import type * as TS from 'typescript';

type Ts = typeof TS;

/** A declaration module as emitted, by its source path (without extension). */
interface Module {
  key: string;
  text: string;
}

/**
 * One declaration file for everything `entry` (a .ts file) exports. Throws when the client does
 * not type-check or when it reaches a package (which an app could not resolve).
 */
export async function bundleDeclarations(entry: string): Promise<string> {
  const ts = ((await import('typescript')) as unknown as { default: Ts }).default;
  const root = dirname(dirname(entry));
  const program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    // The browser build: nothing of Node's may leak into its types.
    types: [],
    strict: true,
    noUncheckedIndexedAccess: true,
    exactOptionalPropertyTypes: false,
    skipLibCheck: true,
    declaration: true,
    emitDeclarationOnly: true,
    noEmit: false,
    stripInternal: false,
  });
  const problems = ts.getPreEmitDiagnostics(program).filter((diagnostic) => diagnostic.category === ts.DiagnosticCategory.Error);
  if (problems.length > 0) throw new Error(`client types: ${ts.formatDiagnostics(problems.slice(0, 5), formatHost(ts, root))}`);
  const emitted = new Map<string, string>();
  const result = program.emit(undefined, (fileName, text) => emitted.set(resolve(fileName).replace(/\.d\.ts$/, ''), text), undefined, true);
  if (result.emitSkipped) throw new Error('client types: declaration emit was skipped');

  const checker = program.getTypeChecker();
  const modules = new Map<string, Module>();
  const visit = (key: string) => {
    if (modules.has(key)) return;
    let text = emitted.get(key);
    if (text === undefined) throw new Error(`client types: no declarations for ${relative(root, key)}`);
    if (/from ['"]zod['"]/.test(text)) text = withoutZod(ts, checker, program.getSourceFile(`${key}.ts`), text);
    const module: Module = { key, text };
    modules.set(key, module);
    for (const specifier of specifiersOf(ts, text)) visit(resolveSpecifier(key, specifier));
  };
  const entryKey = resolve(entry).replace(/\.ts$/, '');
  visit(entryKey);

  const names = new Map([...modules.keys()].map((key) => [key, namespaceName(relative(root, key))]));
  const out: string[] = [
    '// Upload Hub client: types of /assets/upload-hub.js. Generated at build time from client/index.ts; do not edit.',
    '',
  ];
  for (const module of modules.values()) {
    out.push(`declare namespace ${names.get(module.key) as string} {`, indent(flatten(ts, module, names)), '}', '');
  }
  for (const name of exportsOf(ts, emitted.get(entryKey) as string)) out.push(`export import ${name} = ${names.get(entryKey) as string}.${name};`);
  // Only what is exported above is the module's: without this a declaration file exports every top-level name (the namespaces too).
  out.push('export {};', '');
  return out.join('\n');
}

function formatHost(ts: Ts, root: string): TS.FormatDiagnosticsHost {
  return { getCanonicalFileName: (name) => name, getCurrentDirectory: () => root, getNewLine: () => ts.sys.newLine };
}

function namespaceName(path: string): string {
  return `__${path.replace(/[^A-Za-z0-9]/g, '_')}`;
}

function resolveSpecifier(fromKey: string, specifier: string): string {
  if (!specifier.startsWith('.')) throw new Error(`client types: ${specifier} is a package; the browser client's types must not depend on one`);
  return resolve(dirname(fromKey), specifier).replace(/\.js$/, '');
}

function parse(ts: Ts, text: string): TS.SourceFile {
  return ts.createSourceFile('module.d.ts', text, ts.ScriptTarget.ES2022, true);
}

/** Module specifiers a declaration file depends on: imports, re-exports and inline import() types. */
function specifiersOf(ts: Ts, text: string): string[] {
  const found = new Set<string>();
  for (const statement of parse(ts, text).statements) {
    if ((ts.isImportDeclaration(statement) || ts.isExportDeclaration(statement)) && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)) {
      found.add(statement.moduleSpecifier.text);
    }
  }
  for (const match of text.matchAll(/import\("([^"]+)"\)/g)) found.add(match[1] as string);
  return [...found];
}

/** The names the entry exports (its own declarations and its re-exports). */
function exportsOf(ts: Ts, text: string): string[] {
  const names: string[] = [];
  for (const statement of parse(ts, text).statements) {
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const element of statement.exportClause.elements) names.push(element.name.text);
    } else if (hasModifier(ts, statement, ts.SyntaxKind.ExportKeyword)) {
      const name = (statement as TS.Statement & { name?: TS.Identifier }).name;
      if (name && ts.isIdentifier(name)) names.push(name.text);
      else if (ts.isVariableStatement(statement)) for (const declaration of statement.declarationList.declarations) names.push(declaration.name.getText());
    }
  }
  return names;
}

function hasModifier(ts: Ts, node: TS.Node, kind: TS.SyntaxKind): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((modifier) => modifier.kind === kind);
}

/**
 * One module's declarations as the body of its namespace: imports become aliases of the other
 * namespaces, re-exports become exported aliases, `declare` goes (a namespace is ambient already).
 */
function flatten(ts: Ts, module: Module, names: Map<string, string>): string {
  const source = parse(ts, module.text);
  const target = (specifier: string) => names.get(resolveSpecifier(module.key, specifier)) as string;
  const edits: Array<{ start: number; end: number; text: string }> = [];
  for (const statement of source.statements) {
    const start = statement.getStart(source);
    const end = statement.getEnd();
    if (ts.isImportDeclaration(statement)) {
      const namespace = target((statement.moduleSpecifier as TS.StringLiteral).text);
      const bindings = statement.importClause?.namedBindings;
      const lines: string[] = [];
      if (statement.importClause?.name) throw new Error('client types: default imports are not supported');
      if (bindings && ts.isNamespaceImport(bindings)) lines.push(`import ${bindings.name.text} = ${namespace};`);
      else if (bindings) for (const element of bindings.elements) lines.push(`import ${element.name.text} = ${namespace}.${(element.propertyName ?? element.name).text};`);
      edits.push({ start, end, text: lines.join('\n') });
    } else if (ts.isExportDeclaration(statement)) {
      const clause = statement.exportClause;
      if (!statement.moduleSpecifier) {
        if (!clause || (ts.isNamedExports(clause) && clause.elements.length === 0)) edits.push({ start, end, text: '' });
        else throw new Error('client types: local export lists are not supported');
        continue;
      }
      if (!clause || !ts.isNamedExports(clause)) throw new Error('client types: export * is not supported');
      const namespace = target((statement.moduleSpecifier as TS.StringLiteral).text);
      edits.push({ start, end, text: clause.elements.map((element) => `export import ${element.name.text} = ${namespace}.${(element.propertyName ?? element.name).text};`).join('\n') });
    } else if (ts.canHaveModifiers(statement)) {
      const declare = (ts.getModifiers(statement) ?? []).find((modifier) => modifier.kind === ts.SyntaxKind.DeclareKeyword);
      if (declare) edits.push({ start: declare.getStart(source), end: declare.getEnd() + 1, text: '' });
    }
  }
  let text = module.text;
  for (const edit of edits.sort((a, b) => b.start - a.start)) text = text.slice(0, edit.start) + edit.text + text.slice(edit.end);
  return text.replace(/import\("([^"]+)"\)/g, (_, specifier: string) => target(specifier)).replace(/\n{3,}/g, '\n\n').trim();
}

/**
 * A declaration file with its zod schemas left out and the types inferred from them written out
 * in full, as the checker resolves them.
 */
function withoutZod(ts: Ts, checker: TS.TypeChecker, original: TS.SourceFile | undefined, text: string): string {
  if (!original) throw new Error('client types: the source of a module using zod is missing');
  const expanded = new Map<string, string>();
  for (const statement of original.statements) {
    if (ts.isTypeAliasDeclaration(statement) && /\bz\./.test(statement.type.getText(original))) {
      const type = checker.getTypeAtLocation(statement.name);
      const flags = ts.TypeFormatFlags.NoTruncation | ts.TypeFormatFlags.InTypeAlias | ts.TypeFormatFlags.UseSingleQuotesForStringLiteralType;
      expanded.set(statement.name.text, checker.typeToString(type, statement, flags));
    }
  }
  const source = parse(ts, text);
  const kept: string[] = [];
  for (const statement of source.statements) {
    const body = statement.getText(source);
    const comment = text.slice(statement.getFullStart(), statement.getStart(source)).trim();
    if (ts.isImportDeclaration(statement) && /['"]zod['"]/.test(body)) continue;
    if (ts.isVariableStatement(statement) && /\bz\./.test(body)) continue;
    let written = body;
    if (ts.isTypeAliasDeclaration(statement) && expanded.has(statement.name.text)) {
      written = `export type ${statement.name.text} = ${expanded.get(statement.name.text) as string};`;
    } else if (/\bz\./.test(body)) {
      throw new Error(`client types: cannot write out ${body.slice(0, 80)} without zod`);
    }
    kept.push(comment ? `${comment}\n${written}` : written);
  }
  return kept.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => (line ? `    ${line}` : line))
    .join('\n');
}
