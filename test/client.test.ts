// The Node client's option checking and error classification (no database needed).
import { describe, expect, it } from "vitest";
import { ClientOptionsError, TxfnClient, isTransientError } from "../client/index.ts";

describe("TxfnClient options", () => {
  it("rejects unknown keys and bad values, naming them", async () => {
    expect(() => new TxfnClient({ url: "postgresql://x/y", retries: 3 } as never)).toThrow(/unknown option\(s\) retries/);
    expect(() => new TxfnClient({ url: "postgresql://x/y", maxRetries: -1 })).toThrow(/maxRetries must be an integer ≥ 0/);
    expect(() => new TxfnClient({})).toThrow(ClientOptionsError);
    const c = new TxfnClient({ url: "postgresql://127.0.0.1:1/none" });
    try {
      await expect(c.invoke("f", {}, { idempotencyKey: "k" } as never)).rejects.toThrow(/unknown option\(s\) idempotencyKey/);
      await expect(c.invoke("f", {}, { isolation: "snapshot" as never })).rejects.toThrow(/isolation must be one of/);
    } finally {
      await c.close();
    }
  });
});

describe("transient errors (DESIGN rule 5)", () => {
  it("serialization failure, deadlock, shutdown and lost connections are transient; application SQLSTATEs are not", () => {
    for (const code of ["40001", "40P01", "57P01", "57P02", "57P03", "08006", "08003", "ECONNRESET", "ECONNREFUSED"]) {
      expect(isTransientError({ code, message: "x" }), code).toBe(true);
    }
    expect(isTransientError(new Error("Connection terminated unexpectedly"))).toBe(true);
    for (const code of ["23505", "23514", "TXF01", "TXF02", "42P01", "57014", "ENOENT"]) {
      expect(isTransientError({ code, message: "x" }), code).toBe(false);
    }
  });
});
