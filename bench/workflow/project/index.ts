// The transaction functions of bench/workflow: a debit and a credit of one account each
// (a select-for-update and an update, and an update), at REPEATABLE READ like DBOS's side.
import { transaction } from "txfn";

export const wfDebit = transaction({ isolation: "repeatable read" }, (ctx, input: { id: number }) => {
  const [row] = ctx.query<{ balance: bigint }>("SELECT balance FROM bench_wf.accounts WHERE id = $1 FOR UPDATE", [input.id]);
  if (!row) throw new Error(`no account ${input.id}`);
  ctx.execute("UPDATE bench_wf.accounts SET balance = balance - 1 WHERE id = $1", [input.id]);
  return { id: input.id };
});

export const wfCredit = transaction({ isolation: "repeatable read" }, (ctx, input: { id: number }) => {
  ctx.execute("UPDATE bench_wf.accounts SET balance = balance + 1 WHERE id = $1", [input.id]);
  return { id: input.id };
});
