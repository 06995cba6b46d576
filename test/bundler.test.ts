// The bundler: esbuild output, manifest, schemas, refusals (no database needed).
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BuildError, build } from "../bundler/index.ts";
import { sqlNameOf } from "../bundler/manifest.ts";
import { txfnSync } from "./support/cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "txfn-bundler-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A throwaway project folder with the given files. */
function project(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, ".."), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

describe("txfn build", () => {
  it("bundles the reference app with its manifest: names, SQL names, options, JSON schemas", async () => {
    const b = await build("functions");
    expect(Object.keys(b.manifest.functions).sort()).toEqual(
      ["markPaid", "markReadyToFulfil", "orderStatus", "releaseInventory", "reserveInventory"],
    );
    const reserve = b.manifest.functions.reserveInventory!;
    expect(reserve).toMatchObject({ sqlName: "reserve_inventory", file: "functions/checkout.ts", options: { isolation: "serializable", readOnly: false } });
    expect(reserve.inputSchema).toEqual({
      type: "object",
      properties: {
        orderId: { type: "string" },
        items: {
          type: "array",
          items: { type: "object", properties: { sku: { type: "string" }, qty: { type: "number" } }, required: ["sku", "qty"], additionalProperties: false },
        },
      },
      required: ["orderId", "items"],
      additionalProperties: false,
    });
    expect(b.manifest.functions.markPaid!.outputSchema).toMatchObject({ properties: { paidAt: { type: "string", format: "date-time" } } });
    expect(b.manifest.functions.orderStatus!.options).toEqual({ isolation: "repeatable read", readOnly: true });
    expect(b.code).not.toMatch(/sourceMappingURL/);
    expect(JSON.parse(b.sourceMap).sources).toContain("functions/checkout.ts");
  });

  it("a void function has a null output schema", async () => {
    const b = await build("test/fixtures/rules");
    expect(b.manifest.functions.nothing!.outputSchema).toBeNull();
    expect(b.manifest.functions.add!.inputSchema).toMatchObject({ required: ["counter", "by"] });
  });

  it("bundles npm dependencies and tree-shakes what is not used", async () => {
    const b = await build("test/fixtures/npm-dep");
    expect(b.code).toContain("toUpperCase");
    expect(b.code).not.toContain("UNUSED_MARKER");
    expect(b.manifest.functions.greet!.options.isolation).toBe("read committed");
  });

  it("refuses Node built-ins, naming the import chain", async () => {
    const err = await build("test/fixtures/builtin-chain").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as Error).message).toContain(
      "node:fs: test/fixtures/builtin-chain/index.ts -> test/fixtures/builtin-chain/lib/helper.ts -> node:fs",
    );
    const bare = project("bare-builtin", { "index.ts": 'import { transaction } from "txfn";\nimport os from "os";\nexport const f = transaction({}, () => os.hostname());\n' });
    await expect(build(bare)).rejects.toThrow(/os: .*index\.ts -> os/);
  });

  it("reports a syntax error with file, line and column", async () => {
    const dir = project("syntax", { "index.ts": 'import { transaction } from "txfn";\nexport const f = transaction({}, () => {\n  return 1 +;\n});\n' });
    await expect(build(dir)).rejects.toThrow(/index\.ts:3:\d+: .*Unexpected/);
  });

  it("refuses a project that exports no transaction function", async () => {
    const dir = project("empty", { "index.ts": "export const notAFunction = 1;\n" });
    await expect(build(dir)).rejects.toThrow(/no transaction functions found/);
  });

  it("refuses a bundle over the size limit, naming the limit", async () => {
    await expect(build("functions", { maxBundleBytes: 1000 })).rejects.toThrow(/over the limit of 1000/);
  });

  it("refuses two files exporting the same name, and unknown options", async () => {
    const dir = project("dup", {
      "a.ts": 'import { transaction } from "txfn";\nexport const same = transaction({}, () => 1);\n',
      "b.ts": 'import { transaction } from "txfn";\nexport const same = transaction({}, () => 2);\n',
    });
    await expect(build(dir)).rejects.toThrow(/same is exported by both .*a\.ts and .*b\.ts/);
    const badOpt = project("bad-option", { "index.ts": 'import { transaction } from "txfn";\nexport const f = transaction({ isolation: "snapshot" } as never, () => 1);\n' });
    await expect(build(badOpt)).rejects.toThrow(/isolation must be one of/);
    const unknownKey = project("unknown-key", { "index.ts": 'import { transaction } from "txfn";\nexport const f = transaction({ retries: 3 } as never, () => 1);\n' });
    await expect(build(unknownKey)).rejects.toThrow(/unknown key\(s\) retries/);
    await expect(build("functions", { bogus: 1 } as never)).rejects.toThrow(/unknown build option\(s\) bogus/);
    await expect(build("functions", { appSchema: "Bad-Name" })).rejects.toThrow(/appSchema must be/);
  });

  it("maps export names to snake_case SQL names", () => {
    expect(sqlNameOf("reserveInventory")).toBe("reserve_inventory");
    expect(sqlNameOf("HTTPGet")).toBe("http_get");
    expect(sqlNameOf("v2Thing")).toBe("v2_thing");
  });

  it("the CLI prints the functions, and a clean error (exit 1) for a refused build", () => {
    const ok = txfnSync(["build", "functions"]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain("reserveInventory  ->  app.reserve_inventory");
    const bad = txfnSync(["build", "test/fixtures/builtin-chain"]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^txfn: Node built-in modules are not available/);
    expect(bad.stderr).not.toContain("    at ");
  });
});
