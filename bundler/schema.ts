/**
 * JSON schemas of a function's input and output, read from its TypeScript types.
 *
 * A deliberately small converter over the TypeScript checker (what the proxy needs to validate
 * requests): primitives, literals, unions, arrays, tuples, object literals/interfaces, records,
 * Date (date-time string), bigint (decimal string). Anything it cannot express becomes `{}`
 * (any JSON) rather than a wrong schema.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export type JsonSchema = Record<string, unknown>;

export interface FunctionTypes {
  input: JsonSchema;
  /** null when the function returns nothing (void/undefined). */
  output: JsonSchema | null;
}

const TXFN_INDEX = fileURLToPath(new URL("../index.ts", import.meta.url));

/**
 * Schemas for each exported transaction function of `files`, keyed by export name.
 * Functions whose types cannot be found are left out (the manifest then has no schema).
 */
export function functionSchemas(files: string[], projectDir: string): Map<string, FunctionTypes> {
  const program = ts.createProgram(files, compilerOptions(projectDir));
  const checker = program.getTypeChecker();
  const out = new Map<string, FunctionTypes>();
  for (const file of files) {
    const sf = program.getSourceFile(file);
    const moduleSymbol = sf && checker.getSymbolAtLocation(sf);
    if (!moduleSymbol) continue;
    for (const exp of checker.getExportsOfModule(moduleSymbol)) {
      const type = checker.getTypeOfSymbol(exp);
      const input = type.getProperty("__input");
      const output = type.getProperty("__output");
      if (!input || !output || !type.getProperty("__txfn")) continue;
      const conv = new Converter(checker);
      out.set(exp.getName(), {
        // The phantom fields are optional, so their types include undefined: the union rule drops it.
        input: conv.schema(checker.getTypeOfSymbol(input)),
        output: conv.outputSchema(checker.getTypeOfSymbol(output)),
      });
    }
  }
  return out;
}

function compilerOptions(projectDir: string): ts.CompilerOptions {
  const base: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
    allowJs: true,
    types: [],
  };
  const configPath = ts.findConfigFile(projectDir, (p) => existsSync(p));
  let options = base;
  if (configPath) {
    const cfg = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
    if (!cfg.error) options = { ...ts.parseJsonConfigFileContent(cfg.config, ts.sys, join(configPath, "..")).options, noEmit: true };
  }
  // "txfn" always means this checkout's authoring API, as in the bundle.
  return { ...options, paths: { ...(options.paths ?? {}), txfn: [TXFN_INDEX] }, strict: true };
}

class Converter {
  private depth = 0;
  constructor(private readonly checker: ts.TypeChecker) {}

  outputSchema(t: ts.Type): JsonSchema | null {
    const voidish = ts.TypeFlags.Void | ts.TypeFlags.Undefined;
    const members = t.isUnion() ? t.types : [t];
    if (members.every((m) => m.flags & voidish)) return null;
    return this.schema(t);
  }

  schema(t: ts.Type): JsonSchema {
    if (this.depth > 12) return {};
    this.depth++;
    try {
      return this.convert(t);
    } finally {
      this.depth--;
    }
  }

  private convert(t: ts.Type): JsonSchema {
    const f = t.flags;
    if (f & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return {};
    if (f & ts.TypeFlags.StringLiteral) return { const: (t as ts.StringLiteralType).value };
    if (f & ts.TypeFlags.NumberLiteral) return { const: (t as ts.NumberLiteralType).value };
    if (f & ts.TypeFlags.BooleanLiteral) return { const: this.checker.typeToString(t) === "true" };
    if (f & ts.TypeFlags.String) return { type: "string" };
    if (f & ts.TypeFlags.Number) return { type: "number" };
    if (f & ts.TypeFlags.Boolean) return { type: "boolean" };
    if (f & (ts.TypeFlags.BigInt | ts.TypeFlags.BigIntLiteral)) return { type: "string", pattern: "^-?[0-9]+$" };
    if (f & ts.TypeFlags.Null) return { type: "null" };
    if (t.isUnion()) return this.union(t);
    if (this.checker.isArrayType(t)) {
      const [el] = this.checker.getTypeArguments(t as ts.TypeReference);
      return { type: "array", items: el ? this.schema(el) : {} };
    }
    if (this.checker.isTupleType(t)) {
      const els = this.checker.getTypeArguments(t as ts.TypeReference).map((e) => this.schema(e));
      return { type: "array", prefixItems: els, minItems: els.length, maxItems: els.length };
    }
    if (f & ts.TypeFlags.Object) return this.object(t);
    return {};
  }

  private union(t: ts.UnionType): JsonSchema {
    const members = t.types.filter((m) => !(m.flags & (ts.TypeFlags.Undefined | ts.TypeFlags.Void)));
    // boolean is true | false
    const bools = members.filter((m) => m.flags & ts.TypeFlags.BooleanLiteral);
    const rest = members.filter((m) => !(m.flags & ts.TypeFlags.BooleanLiteral));
    const schemas = rest.map((m) => this.schema(m));
    if (bools.length === 2) schemas.push({ type: "boolean" });
    else if (bools.length === 1) schemas.push(this.schema(bools[0]!));
    if (schemas.length === 1) return schemas[0]!;
    if (schemas.every((s) => "const" in s)) return { enum: schemas.map((s) => s.const) };
    return { anyOf: schemas };
  }

  private object(t: ts.Type): JsonSchema {
    const name = t.getSymbol()?.getName();
    if (name === "Date") return { type: "string", format: "date-time" };
    if (t.getCallSignatures().length > 0) return {};
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const p of this.checker.getPropertiesOfType(t)) {
      const decl = p.valueDeclaration ?? p.declarations?.[0];
      if (!decl) continue;
      const pt = this.checker.getTypeOfSymbolAtLocation(p, decl);
      if (pt.getCallSignatures().length > 0) continue;
      properties[p.getName()] = this.schema(pt);
      if (!(p.flags & ts.SymbolFlags.Optional)) required.push(p.getName());
    }
    const index = this.checker.getIndexInfoOfType(t, ts.IndexKind.String);
    const schema: JsonSchema = { type: "object", properties };
    if (required.length) schema.required = required;
    schema.additionalProperties = index ? this.schema(index.type) : false;
    return schema;
  }
}
