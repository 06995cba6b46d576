// The benchmark workflow, txfn's way: two transaction steps around one no-op external step.
import { workflow } from "txfn";
import { wfCredit, wfDebit } from "../index.ts";

export const bench3 = workflow("bench3", async (ctx, input: { from: number; to: number }) => {
  await ctx.transaction(wfDebit, { id: input.from });
  await ctx.step("noop", async () => "ok", { retries: 0 });
  await ctx.transaction(wfCredit, { id: input.to });
  return "done";
});
