/**
 * The demo's summary: what happened, the exactly-once checks, time travel, and the commands to
 * explore the cluster afterwards; also as one JSON line (`--json`) for the end-to-end test.
 */
import type { CheckReport } from "./checks.ts";
import { bold, cyan, green, red } from "./ui.ts";

export interface DemoSummary {
  ok: boolean;
  durationMs: number;
  database: string;
  oversellDatabase: string;
  /** How the explore commands reach the demo's database. */
  databaseUrlCommand: string;
  options: { orders: number; skus: number; seed: number; concurrency: number };
  load: {
    from: string;
    to: string;
    durationMs: number;
    duplicates: { sent: number; sameWorkflow: number };
    retriedRequests: number;
    /** Final states as the HTTP API answered them. */
    api: Record<string, number>;
    scarce: string[];
  };
  executor: { killedPid: number; pendingAtKill: number; runningAtKill: number; restartedPid: number; downMs: number };
  checks: CheckReport | null;
  provenance: { table: string; key: string; command: string; versions: number } | null;
  replay: { invocations: number; transactions: number; same: number; divergences: number; runMs: number; reconstructMs: number } | null;
  oversell: {
    widgetStock: number;
    widgetOrders: number;
    invocations: number;
    replay: { divergences: number; checkOk: boolean; rows: Record<string, unknown>[] };
    retro: { checkOk: boolean; nowFails: number; counts: Record<string, number> };
  } | null;
  /** Every process the demo started (all stopped by the end). */
  processes: { name: string; pid: number }[];
}

const tick = (ok: boolean) => (ok ? green("✓") : red("✗"));
const dollars = (cents: number) => `$${(cents / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;

function row(label: string, lines: string[]): string[] {
  return lines.map((l, i) => `  ${(i === 0 ? label : "").padEnd(15)} ${l}`);
}

/** The human summary. */
export function renderSummary(s: DemoSummary): string {
  const out: string[] = [];
  const c = s.checks;
  const wf = c?.workflows;
  out.push(bold(`==> summary (${(s.durationMs / 1000).toFixed(0)} s)`));
  if (wf) {
    out.push(
      ...row("orders", [
        `${s.options.orders} checkout workflows over HTTP from ${s.options.concurrency} clients, across ${s.options.skus} SKUs (seed ${s.options.seed})`,
        `${green(String(wf.completed))} completed · ${wf.compensated} compensated (card declined: payment refused, stock released) · ` +
          `${wf.outOfStock} rejected out of stock (${c.stock.soldOut.length} SKUs sold out)`,
        `${s.load.duplicates.sent} submitted twice with one Idempotency-Key: ${s.load.duplicates.sameWorkflow} got the same workflow back`,
      ]),
    );
  }
  out.push(
    ...row("crash", [
      `executor SIGKILLed mid-run (pid ${s.executor.killedPid}, ${s.executor.pendingAtKill} workflows pending, ${s.executor.runningAtKill} of them claimed), ` +
        `restarted after ${(s.executor.downMs / 1000).toFixed(1)} s as pid ${s.executor.restartedPid}` + (c ? `: ${c.recovered} workflows recovered and finished` : ""),
    ]),
  );
  if (c) {
    const inv = c.invocations;
    const p = c.payments;
    out.push(
      ...row("exactly once", [
        `${tick(inv.duplicateSteps === 0 && inv.doubleReservations === 0)} no double reservation: ${inv.total} invocations, one per transaction step ` +
          `(${Object.entries(inv.byFunction).map(([f, n]) => `${f} ${n}`).join(", ")})`,
        `${tick(p.doublePayments === 0 && p.ordersWithSeveralKeys === 0)} no double payment: ${p.charges} charges for ${p.charges} orders; ${p.retriedCharges} were asked for ` +
          `more than once (${p.requests} requests: 503s, lost replies, hangs, the crash) and charged once, each under one key`,
        `${tick(c.stock.mismatches.length === 0)} stock of ${c.stock.skus} SKUs moved by exactly the completed orders (${c.stock.unitsSold} units)`,
        `${tick(c.ledger.mismatchedOrders.length === 0 && c.ledger.revenueCents === c.ledger.chargedCents)} stock and ledger agree: ` +
          `${c.ledger.readyOrders} orders ready = ${p.approved - p.refunded} charges kept, ${dollars(c.ledger.revenueCents)} on both sides`,
      ]),
    );
  }
  if (s.provenance) out.push(...row("provenance", [`${s.provenance.table} ${s.provenance.key}: ${s.provenance.versions} versions, each with the invocation and workflow step that wrote it`]));
  if (s.replay) {
    out.push(
      ...row("replay", [
        `${tick(s.replay.divergences === 0)} ${s.replay.invocations} invocations (${s.replay.transactions} transactions) replayed in recorded snapshot order: ` +
          `${s.replay.same} same, ${s.replay.divergences} divergences`,
      ]),
    );
  }
  if (s.oversell) {
    const o = s.oversell;
    out.push(
      ...row("oversell", [
        `split reserve (check, then take): ${o.widgetOrders} orders for 1 widget, stock ${o.widgetStock}`,
        `${tick(o.replay.divergences === 0 && !o.replay.checkOk)} faithful replay reproduces it: ${o.replay.divergences} divergences, the check finds ${JSON.stringify(o.replay.rows)}`,
        `${tick(o.retro.checkOk)} retroaction with the fixed takeStock: no row with stock < 0; ${o.retro.nowFails} takes now fail with OutOfStock`,
      ]),
    );
  }
  return out.join("\n");
}

/** The commands to look around afterwards. */
export function renderExplore(s: DemoSummary, privateCluster: boolean, sample: { order: string; sku: string }): string {
  const commands: [string, string][] = [
    ...(privateCluster ? ([[`export DATABASE_URL="${s.databaseUrlCommand}"`, "the demo's database, for the txfn commands below"]] as [string, string][]) : []),
    ["npx txfn workflow list --limit 20", "the checkout workflows, newest first"],
    [`npx txfn workflow steps ${sample.order}`, "one order's recorded steps"],
    [`npx txfn history shop.inventory ${sample.sku}`, "every change of a sold-out SKU and what made it"],
    ["npx txfn invocations --fn reserveInventory --limit 10", "recorded invocations"],
    ["npx txfn audit --outside-functions --limit 10", "writes made outside txfn (the demo's stock import)"],
    [`npx txfn replay --workflows ${sample.order}`, "replay one order's transactions"],
    privateCluster
      ? [`npx txfn db psql --database ${s.database}`, "SQL: shop.*, payment_service.*, txfn.*"]
      : ['psql "$DATABASE_URL"', "SQL: shop.*, payment_service.*, txfn.*"],
    ...(privateCluster ? ([["unset DATABASE_URL; npx txfn db stop", "when you are done"]] as [string, string][]) : []),
  ];
  const width = Math.max(...commands.map(([c]) => c.length)) + 2;
  return [bold("==> explore (the cluster keeps running)"), ...commands.map(([c, what]) => `  ${cyan(c.padEnd(width))}# ${what}`)].join("\n");
}
