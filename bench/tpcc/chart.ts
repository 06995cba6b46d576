/**
 * bench/tpcc: the results as an SVG chart, written by hand (no charting dependency). Left panel:
 * transactions per second per variant, grouped by concurrency, with the rounds' min–max as
 * whiskers. Right panel: CPU per transaction at the highest concurrency (server + client).
 */
import type { Summary } from "./report.ts";
import type { VariantName } from "./variants.ts";

const COLORS: Record<VariantName, string> = {
  txfn: "#1f77b4",
  "txfn-norec": "#9ecae1",
  "txfn-idem": "#6baed6",
  plpgsql: "#2ca02c",
  "node-pg": "#ff7f0e",
  dbos: "#d62728",
};

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A "nice" axis maximum and tick step above `max`. */
function axis(max: number): { top: number; step: number } {
  const raw = Math.max(max, 1) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step || step, step };
}

/**
 * The chart as SVG text. `title` and `subtitle` head it (workload, machine).
 * @param summary one entry per variant and concurrency (report.ts)
 */
export function renderChart(summary: Summary[], variants: readonly VariantName[], levels: readonly number[], title: string, subtitle: string): string {
  const W = 1000, H = 460, top = 70, bottom = 60, left = 70;
  const plotW = 560, plotH = H - top - bottom;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">${esc(subtitle)}</text>`);

  // Left: tx/s by concurrency.
  const { top: yMax, step } = axis(Math.max(...summary.map((s) => s.tpsMax)));
  const y = (v: number) => top + plotH - (v / yMax) * plotH;
  for (let v = 0; v <= yMax + 1e-9; v += step) {
    out.push(`<line x1="${left}" x2="${left + plotW}" y1="${y(v)}" y2="${y(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${left - 6}" y="${y(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  out.push(`<text x="18" y="${top + plotH / 2}" transform="rotate(-90 18 ${top + plotH / 2})" text-anchor="middle">transactions / s (median round; whiskers: min–max)</text>`);
  const groupW = plotW / levels.length;
  const barW = (groupW * 0.8) / variants.length;
  levels.forEach((c, gi) => {
    const gx = left + gi * groupW + groupW * 0.1;
    out.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 20}" text-anchor="middle">concurrency ${c}</text>`);
    variants.forEach((v, vi) => {
      const s = summary.find((x) => x.variant === v && x.concurrency === c);
      if (!s) return;
      const x = gx + vi * barW;
      out.push(`<rect x="${x.toFixed(1)}" y="${y(s.tps).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(top + plotH - y(s.tps)).toFixed(1)}" fill="${COLORS[v]}"><title>${esc(`${v} c=${c}: ${s.tps.toFixed(0)} tx/s [${s.tpsMin.toFixed(0)}–${s.tpsMax.toFixed(0)}], p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`)}</title></rect>`);
      const mx = x + (barW - 2) / 2;
      out.push(`<line x1="${mx.toFixed(1)}" x2="${mx.toFixed(1)}" y1="${y(s.tpsMin).toFixed(1)}" y2="${y(s.tpsMax).toFixed(1)}" stroke="#333"/>`);
      out.push(`<text x="${mx.toFixed(1)}" y="${(y(s.tpsMax) - 4).toFixed(1)}" text-anchor="middle" font-size="10">${s.tps.toFixed(0)}</text>`);
    });
  });
  out.push(`<line x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${left}" x2="${left + plotW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);

  // Right: CPU µs per transaction at the highest concurrency, stacked server + client.
  const cMax = Math.max(...levels);
  const at = variants.map((v) => summary.find((s) => s.variant === v && s.concurrency === cMax)).filter((s): s is Summary => s !== undefined);
  const rx = left + plotW + 90, rW = W - rx - 20;
  const cpuMax = axis(Math.max(...at.map((s) => (s.serverUsPerTx ?? 0) + s.clientUsPerTx)));
  const ry = (v: number) => top + plotH - (v / cpuMax.top) * plotH;
  for (let v = 0; v <= cpuMax.top + 1e-9; v += cpuMax.step) {
    out.push(`<line x1="${rx}" x2="${rx + rW}" y1="${ry(v)}" y2="${ry(v)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${rx - 6}" y="${ry(v) + 4}" text-anchor="end">${Math.round(v)}</text>`);
  }
  out.push(`<text x="${rx - 50}" y="${top + plotH / 2}" transform="rotate(-90 ${rx - 50} ${top + plotH / 2})" text-anchor="middle">CPU µs / transaction at c=${cMax}</text>`);
  const bw = rW / Math.max(1, at.length);
  at.forEach((s, i) => {
    const x = rx + i * bw + bw * 0.15;
    const server = s.serverUsPerTx ?? 0;
    out.push(`<rect x="${x.toFixed(1)}" y="${ry(server).toFixed(1)}" width="${(bw * 0.7).toFixed(1)}" height="${(top + plotH - ry(server)).toFixed(1)}" fill="${COLORS[s.variant]}"><title>${esc(`${s.variant}: server ${server.toFixed(0)} µs`)}</title></rect>`);
    out.push(`<rect x="${x.toFixed(1)}" y="${ry(server + s.clientUsPerTx).toFixed(1)}" width="${(bw * 0.7).toFixed(1)}" height="${(ry(server) - ry(server + s.clientUsPerTx)).toFixed(1)}" fill="${COLORS[s.variant]}" fill-opacity="0.45"><title>${esc(`${s.variant}: client ${s.clientUsPerTx.toFixed(0)} µs`)}</title></rect>`);
    out.push(`<text x="${(x + bw * 0.35).toFixed(1)}" y="${top + plotH + 20}" text-anchor="middle" font-size="10">${esc(s.variant)}</text>`);
  });
  out.push(`<text x="${rx + rW / 2}" y="${top + plotH + 40}" text-anchor="middle" font-size="10" fill="#555">solid: server processes, pale: client (this process)</text>`);
  out.push(`<line x1="${rx}" x2="${rx}" y1="${top}" y2="${top + plotH}" stroke="#333"/>`);
  out.push(`<line x1="${rx}" x2="${rx + rW}" y1="${top + plotH}" y2="${top + plotH}" stroke="#333"/>`);

  // Legend.
  variants.forEach((v, i) => {
    const lx = left + i * 115;
    out.push(`<rect x="${lx}" y="${H - 22}" width="12" height="12" fill="${COLORS[v]}"/><text x="${lx + 16}" y="${H - 12}">${esc(v)}</text>`);
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}
