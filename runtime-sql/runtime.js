// txfn's in-database runtime: runs one invocation of a deployed transaction function inside
// the caller's transaction, with its idempotency record, pinned clock and seeded PRNG.
//
// This file is ONE JavaScript expression: a factory `(plv8, runtimeId) => runtime`. The
// installer (migrations/runtime.ts) embeds it in the body of `txfn._invoke(...)`, which
// evaluates it once per JS context (per database role, per backend) and caches the result on
// globalThis under the runtime id. It uses only the documented plv8 API (see
// plv8-compat.md), so real plv8 3.x runs it too. The contract it implements (tables, the
// envelope, the options keys, SQLSTATEs, the JSON encoding) is runtime-sql/README.md.
(function txfnRuntime(plv8, runtimeId) {
  "use strict";

  const g = globalThis;
  // The engine's own Date and Math.random, kept across runtime upgrades in one context (a
  // newer runtime must not wrap an older runtime's pinned versions).
  const originals = g.__txfnOriginals || (g.__txfnOriginals = { Date, random: Math.random });
  const RealDate = originals.Date;
  const realRandom = originals.random;
  const realNow = RealDate.now;

  // --- errors -------------------------------------------------------------------------------

  /** PostgreSQL's MAKE_SQLSTATE: the packed int plv8 reads from a thrown value's `code`. */
  function packSqlstate(s) {
    let code = 0;
    for (let i = 0; i < 5; i++) code += ((s.charCodeAt(i) - 48) & 0x3f) << (6 * i);
    return code;
  }

  /** An error that leaves txfn.invoke as an SQL ERROR with this SQLSTATE (never recorded). */
  function sqlError(sqlstate, message, hint) {
    const e = new Error(message);
    e.sqlerrcode = sqlstate;
    e.code = packSqlstate(sqlstate);
    if (hint) e.hint = hint;
    return e;
  }

  const TXF_FUNCTION_NOT_FOUND = "TXF01";
  const TXF_KEY_REUSED = "TXF02";
  const TXF_ISOLATION = "TXF03";
  const TXF_BAD_OPTIONS = "TXF04";
  const TXF_NO_BUNDLE = "TXF05";
  const TXF_BAD_BUNDLE = "TXF06";
  const TXF_REENTRANT = "TXF07";

  /**
   * Transient errors are never recorded: the whole transaction fails and the caller retries
   * with the same key (rule 5). Classes: 40 (serialization failure, deadlock), 08 (connection),
   * 53 (resources), 57 (cancel, admin shutdown), 58 (system), XX except XX000.
   */
  function isTransient(e) {
    const s = e !== null && typeof e === "object" ? e.sqlerrcode : undefined;
    if (typeof s !== "string" || s.length !== 5) return false;
    const cls = s.slice(0, 2);
    return cls === "40" || cls === "08" || cls === "53" || cls === "57" || cls === "58" || (cls === "XX" && s !== "XX000");
  }

  // --- the JSON encoding (README "JSON encoding") -------------------------------------------

  function encodeReplacer(_key, value) {
    if (typeof value === "bigint") return value.toString();
    if (value instanceof Uint8Array) {
      let hex = "\\x";
      for (let i = 0; i < value.length; i++) hex += (value[i] < 16 ? "0" : "") + value[i].toString(16);
      return hex;
    }
    return value;
  }

  /** JSON text of a value, or null for `undefined` (a void result). */
  function encode(value) {
    if (value === undefined) return null;
    const text = JSON.stringify(value, encodeReplacer);
    return text === undefined ? null : text;
  }

  // --- determinism: pinned clock and seeded PRNG ---------------------------------------------

  /** sfc32 seeded through splitmix32; determinism version 1 (recorded per invocation). */
  function makeRandom(seed) {
    let s = seed >>> 0;
    const split = () => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    let a = split(), b = split(), c = split(), d = split();
    return function random() {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + t) | 0;
      return (t >>> 0) / 4294967296;
    };
  }
  const DETERMINISM_VERSION = 1;

  /** The pinning in force: { time, random } while an invocation (or a bundle load) runs. */
  let pin = null;

  function PinnedDate(...args) {
    const now = pin !== null ? pin.time : realNow();
    if (new.target === undefined) return new RealDate(now).toString();
    return Reflect.construct(RealDate, args.length === 0 ? [now] : args, new.target);
  }
  PinnedDate.prototype = RealDate.prototype;
  PinnedDate.now = function now() {
    return pin !== null ? pin.time : realNow();
  };
  PinnedDate.parse = RealDate.parse;
  PinnedDate.UTC = RealDate.UTC;
  Object.defineProperty(PinnedDate, "name", { value: "Date" });

  function pinnedRandom() {
    return pin !== null ? pin.random() : realRandom();
  }

  // Installed once per context: with no pinning in force they behave as the originals, so
  // an invocation only sets `pin` (no global is swapped per call, no optimised code deopts).
  g.Date = PinnedDate;
  Math.random = pinnedRandom;

  /** Runs `work` with Date/Math.random pinned; restores the previous pinning after. */
  function withPin(p, work) {
    const saved = pin;
    pin = p;
    try {
      return work();
    } finally {
      pin = saved;
    }
  }

  // --- SQL: plans prepared once per context --------------------------------------------------

  /**
   * txv8 ≥ 1.1 runs a plan's statements without a subtransaction of their own when asked
   * (extension/README.md, "Statements without a subtransaction"): an SQL error then fails the
   * enclosing plv8.subtransaction() frame (the body's, rule 4) or the whole call, instead of
   * being catchable with only the statement undone. That saves a subtransaction per statement
   * (an XID per writing one). Real plv8 (and older txv8) gives every statement its own
   * subtransaction: the same outcomes, only slower.
   */
  const DIRECT = (() => {
    const m = /^(\d+)\.(\d+)/.exec(typeof plv8.txv8_version === "string" ? plv8.txv8_version : "");
    return m !== null && (Number(m[1]) > 1 || (Number(m[1]) === 1 && Number(m[2]) >= 1));
  })();
  const NO_SUBTRANSACTION = Object.freeze({ subtransaction: false });

  /** A plan whose statements run without a subtransaction where supported (`types` omitted: deduced). */
  function prepareDirect(sql, types) {
    if (DIRECT) return plv8.prepare(sql, types || [], NO_SUBTRANSACTION);
    return types ? plv8.prepare(sql, types) : plv8.prepare(sql);
  }

  const CLAIM_TYPES = ["text", "text", "int4", "text", "timestamptz", "int8", "text", "int4"];
  /**
   * The claim statement; `withId`: the id is $9 (OVERRIDING SYSTEM VALUE) instead of the identity.
   * Its shape is measured (README "Per-invocation cost"): the active version comes from
   * txfn._active_version(), a constant in the plan (a subquery made the plan cache walk the
   * whole statement at every execution); `id` is set_config's result (the same text, one column
   * fewer); the ctid stays a tid (converted once, by its output function); determinism is a
   * literal.
   */
  function claimSql(withId) {
    return (
      "INSERT INTO txfn.invocations (" + (withId ? "id, " : "") + "idempotency_key, function, version, input, status, xid, snapshot," +
      " pinned_time, seed, determinism, isolation, workflow_id, workflow_step, role, application_name, started_at)" +
      (withId ? " OVERRIDING SYSTEM VALUE VALUES ($9::bigint, " : " VALUES (") +
      "$1, $2, COALESCE($3, txfn._active_version()), COALESCE($4::jsonb, 'null'::jsonb)," +
      " 'running', pg_current_xact_id(), pg_current_snapshot(), $5, $6, " + DETERMINISM_VERSION + ", current_setting('transaction_isolation')," +
      " $7, $8, current_user, current_setting('application_name'), clock_timestamp())" +
      " ON CONFLICT (idempotency_key) DO NOTHING" +
      " RETURNING set_config('txfn.invocation_id', id::text, true) AS id, version, isolation, ctid," +
      " set_config('txfn.bundle_version', version::text, true) AS s2, txfn._provenance_reads_on() AS reads"
    );
  }

  const FINISH_TYPES = ["tid", "text", "text", "text"];
  /** The outcome's UPDATE: `status`, the JSON $2 in `column`, and the settings handed back ($3, $4). */
  function finishSql(status, column) {
    return (
      "UPDATE txfn.invocations SET status = '" + status + "', " + column + " = $2::jsonb, ended_at = clock_timestamp() WHERE ctid = $1" +
      " RETURNING set_config('txfn.invocation_id', $3, true), set_config('txfn.bundle_version', $4, true)"
    );
  }

  // The runtime's own statements run without a subtransaction (prepareDirect): none of their
  // errors is caught; each fails the call (or, inside the body's frame, the body) as it would
  // anyway. The exceptions: sourceMap (the error path catches its failures) and readOnly (see
  // runReadOnly).
  let plans = null;
  function preparedPlans() {
    if (plans !== null) return plans;
    plans = {
      // The claim. Rule 3: INSERT … ON CONFLICT on the unique key, never check-then-insert (its
      // dirty-snapshot probe takes no SSI predicate lock, so claims of different keys do not
      // conflict under SERIALIZABLE). The same statement resolves the active version and sets
      // the transaction-local settings provenance reads. The active version and `reads` (read
      // provenance is on) are IMMUTABLE functions the plan folds to constants, re-planned when
      // they are replaced (by triggers on txfn.bundles and txfn.provenance_config): free.
      // ctid is kept for the final update.
      claim: prepareDirect(claimSql(false), CLAIM_TYPES),
      // The same claim under a given id (option invocationId: replay on a reconstructed database).
      claimWithId: prepareDirect(claimSql(true), CLAIM_TYPES.concat(["text"])),
      recorded: prepareDirect(
        "SELECT id::text AS id, function, status, input = COALESCE($2::jsonb, 'null'::jsonb) AS same_input," +
          " txfn.envelope(i, true)::text AS envelope FROM txfn.invocations i WHERE idempotency_key = $1",
        ["text", "text"],
      ),
      // By ctid (a TID scan): an index scan on the id would take an SSI page lock on the PK's
      // rightmost leaf, where every concurrent claim inserts, and abort them under SERIALIZABLE.
      // It also hands the transaction-local settings back to the caller: the outer invocation's
      // values, or '' after a top-level one, so a plain write later in the same transaction is
      // not attributed to this invocation by provenance.
      // One plan per status, each writing only its own column (a smaller update projection).
      finishOk: prepareDirect(finishSql("ok", "output"), FINISH_TYPES),
      finishError: prepareDirect(finishSql("error", "error"), FINISH_TYPES),
      restoreId: prepareDirect(
        "SELECT set_config('txfn.invocation_id', $1, true), set_config('txfn.bundle_version', $2, true)",
        ["text", "text"],
      ),
      // With a subtransaction: a failure of the read-only call is caught (runReadOnly).
      readOnly: plv8.prepare("SELECT txfn._read_only_call()"),
      bundle: prepareDirect(
        "SELECT code, (extract(epoch FROM deployed_at) * 1000)::float8 AS deployed_ms FROM txfn.bundles WHERE version = $1",
        ["int4"],
      ),
      sourceMap: plv8.prepare("SELECT source_map FROM txfn.bundles WHERE version = $1", ["int4"]),
    };
    return plans;
  }

  /**
   * ctx.query/ctx.execute: user SQL through a per-context plan cache (bounded, oldest out
   * first), without a subtransaction per statement where supported: an SQL error the body
   * catches still fails the body (ctx.subtransaction is the way to catch one and go on).
   */
  const USER_PLAN_LIMIT = 256;
  /** A `;` followed by more SQL: several statements in one string (run unprepared, as plv8.execute does). */
  const MULTI_STATEMENT = /;\s*\S/;
  const userPlans = new Map();
  function runUserSql(inv, sql, params) {
    if (typeof sql !== "string") throw new TypeError("ctx.query/ctx.execute: sql must be a string");
    const args = params === undefined ? [] : params;
    if (!Array.isArray(args)) throw new TypeError("ctx.query/ctx.execute: params must be an array");
    const result = executeUserSql(sql, args);
    if (inv.reads) recordRead(inv, sql, args, result); // after the statement completed: a failed one is not recorded
    return result;
  }
  function executeUserSql(sql, args) {
    let plan = userPlans.get(sql);
    if (plan === undefined) {
      if (args.length === 0 && MULTI_STATEMENT.test(sql)) return plv8.execute(sql); // cannot be prepared
      plan = prepareDirect(sql);
      if (userPlans.size >= USER_PLAN_LIMIT) {
        const oldest = userPlans.keys().next().value; // first prepared goes first
        userPlans.get(oldest).free();
        userPlans.delete(oldest);
      }
      userPlans.set(sql, plan);
    }
    return plan.execute(args);
  }

  /**
   * Read provenance (provenance/README.md "Read provenance"), when the claim said it is on:
   * one row per completed ctx.query/ctx.execute through txfn._provenance_read, in the
   * statement's (sub)transaction, attributed by txfn.invocation_id. A readOnly body cannot
   * INSERT: its reads are kept (`pendingReads`) and written after its read-only call returns.
   */
  let readPlan = null; // prepared at the first read recorded (the function comes with capture)
  function recordRead(inv, sql, args, result) {
    let params = null; // parameters that cannot be encoded (a cycle) are recorded as NULL
    try {
      params = encode(args);
    } catch (_e) {}
    const read = [sql, params, Array.isArray(result) ? result.length : typeof result === "number" ? result : null];
    if (inv.pendingReads !== null) inv.pendingReads.push(read);
    else writeRead(read);
  }
  function writeRead(read) {
    if (readPlan === null) readPlan = prepareDirect("SELECT txfn._provenance_read($1, $2::jsonb, $3)", ["text", "text", "int8"]);
    readPlan.execute(read);
  }
  /** After a readOnly body's call: writes its kept reads, in order; returns `value`. */
  function writePendingReads(inv, value) {
    const pending = inv.pendingReads;
    inv.pendingReads = null;
    if (pending !== null) for (const read of pending) writeRead(read);
    return value;
  }

  // --- bundles: evaluated once per context and version ---------------------------------------

  const BUNDLE_HEADER = "(function (module, exports, require) {\n";
  const bundles = new Map(); // version → { functions: Map<name, descriptor>, names: Map<descriptor, name> }
  const BUNDLE_CACHE_LIMIT = 8; // versions kept evaluated per context (oldest loaded is dropped)

  function isDescriptor(v) {
    return v !== null && typeof v === "object" && v.__txfn === "transaction" && typeof v.body === "function";
  }

  /**
   * The evaluated bundle of `version`. `active`: the version is the one txfn._active_version()
   * named, which follows the latest committed deploy: a transaction whose snapshot is older may
   * not see its row yet, which is a serialization failure (retried in a new transaction, never
   * recorded), not a missing bundle.
   */
  function loadBundle(version, active) {
    const cached = bundles.get(version);
    if (cached !== undefined) return cached;
    const rows = preparedPlans().bundle.execute([version]);
    if (rows.length === 0 && active) {
      throw sqlError("40001", "txfn: bundle version " + version + " was activated after this transaction's snapshot was taken; retry");
    }
    if (rows.length === 0) throw sqlError(TXF_NO_BUNDLE, "txfn: bundle version " + version + " does not exist");
    const row = rows[0];
    const module = { exports: {} };
    const require = (name) => {
      throw new Error("txfn: require(" + JSON.stringify(name) + ") is not available inside the database");
    };
    // Top-level module code sees a clock pinned to the deploy time and a PRNG seeded by the
    // version, so module state is the same in every context (replay depends on it).
    withPin({ time: row.deployed_ms, random: makeRandom(version) }, () => {
      const factory = (0, eval)(BUNDLE_HEADER + row.code + "\n})\n//# sourceURL=txfn-bundle-v" + version + ".js");
      factory(module, module.exports, require);
    });
    const functions = new Map();
    const names = new Map();
    const modules = module.exports.modules || {};
    for (const file of Object.keys(modules)) {
      const ns = modules[file];
      for (const name of Object.keys(ns)) {
        const v = ns[name];
        if (isDescriptor(v) && !functions.has(name)) {
          functions.set(name, v);
          names.set(v, name);
        }
      }
    }
    const loaded = { version, functions, names, sourceMap: undefined };
    if (bundles.size >= BUNDLE_CACHE_LIMIT) bundles.delete(bundles.keys().next().value);
    bundles.set(version, loaded);
    return loaded;
  }

  // --- source maps: bundle positions → TypeScript file:line:col (error path only) ------------

  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const B64_VALUE = {};
  for (let i = 0; i < B64.length; i++) B64_VALUE[B64[i]] = i;

  /** Decodes a source map v3 `mappings` string: per generated line, [genCol, src, line, col] sorted by genCol. */
  function decodeMappings(mappings) {
    const lines = [];
    let src = 0, srcLine = 0, srcCol = 0;
    for (const lineText of mappings.split(";")) {
      const segments = [];
      let genCol = 0;
      if (lineText.length > 0) {
        for (const seg of lineText.split(",")) {
          const fields = [];
          let value = 0, shift = 0;
          for (let i = 0; i < seg.length; i++) {
            const digit = B64_VALUE[seg[i]];
            value += (digit & 31) << shift;
            if (digit & 32) {
              shift += 5;
            } else {
              fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
              value = 0;
              shift = 0;
            }
          }
          genCol += fields[0];
          if (fields.length >= 4) {
            src += fields[1];
            srcLine += fields[2];
            srcCol += fields[3];
            segments.push([genCol, src, srcLine, srcCol]);
          }
        }
      }
      lines.push(segments);
    }
    return lines;
  }

  /** Maps a 1-based generated line/column to { source, line, column } (1-based), or null. */
  function originalPosition(map, line, column) {
    const segments = map.lines[line - 1];
    if (!segments || segments.length === 0) return null;
    let lo = 0, hi = segments.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segments[mid][0] <= column - 1) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const s = segments[found === -1 ? 0 : found];
    return { source: map.sources[s[1]], line: s[2] + 1, column: s[3] + 1 };
  }

  function sourceMapOf(bundle) {
    if (bundle.sourceMap === undefined) {
      bundle.sourceMap = null;
      try {
        const rows = preparedPlans().sourceMap.execute([bundle.version]);
        const raw = rows.length > 0 && rows[0].source_map ? JSON.parse(rows[0].source_map) : null;
        if (raw) bundle.sourceMap = { sources: raw.sources || [], lines: decodeMappings(raw.mappings || "") };
      } catch (_e) {
        bundle.sourceMap = null; // a broken map must not hide the user's error
      }
    }
    return bundle.sourceMap;
  }

  const FRAME = /txfn-bundle-v(\d+)\.js:(\d+):(\d+)/g;

  /** Rewrites bundle positions in a V8 stack to the TypeScript sources. */
  function mapStack(stack) {
    if (typeof stack !== "string") return undefined;
    return stack.replace(FRAME, (whole, v, l, c) => {
      const bundle = bundles.get(Number(v));
      const map = bundle ? sourceMapOf(bundle) : null;
      // Line 1 of the stored code is line 2 of the evaluated script (BUNDLE_HEADER).
      const pos = map ? originalPosition(map, Number(l) - 1, Number(c)) : null;
      return pos ? pos.source + ":" + pos.line + ":" + pos.column : whole;
    });
  }

  /** Properties plv8/txv8 put on SQL errors → names in the recorded error. */
  const SQL_ERROR_FIELDS = {
    sqlerrcode: "sqlstate", condition_name: "condition", detail: "detail", hint: "hint", schema_name: "schema",
    table_name: "table", column_name: "column", constraint_name: "constraint", datatype_name: "datatype",
  };
  /** Own properties that are not the error's data. */
  const NOT_DATA = ["code", "context", "internalquery", "internalpos", "message", "name", "stack"];

  /** The recorded form of an application error (README "Recorded errors"). */
  function describeError(e) {
    if (e === null || typeof e !== "object") {
      return { name: "Error", message: String(e), thrown: e === undefined ? null : e };
    }
    const out = { name: String(e.name || (e.constructor && e.constructor.name) || "Error"), message: String(e.message) };
    for (const k of Object.keys(SQL_ERROR_FIELDS)) if (e[k] !== undefined && e[k] !== null) out[SQL_ERROR_FIELDS[k]] = e[k];
    const stack = mapStack(e.stack);
    if (stack) out.stack = stack;
    const data = {};
    let hasData = false;
    for (const k of Object.keys(e)) {
      if (k in SQL_ERROR_FIELDS || NOT_DATA.indexOf(k) >= 0) continue;
      data[k] = e[k];
      hasData = true;
    }
    if (hasData) {
      try {
        out.data = JSON.parse(encode(data) || "{}");
      } catch (encodeError) {
        out.data = { unencodable: String(encodeError && encodeError.message) }; // e.g. a cycle
      }
    }
    return out;
  }

  // --- options (README "Invoke options"): the one place they are checked ----------------------

  const OPTION_KEYS = ["version", "pinnedTime", "seed", "workflowId", "workflowStep", "invocationId", "relaxIsolation"];

  const NO_OPTIONS = Object.freeze({
    version: null, pinnedTime: null, seed: null, workflowId: null, workflowStep: null, invocationId: null, relaxIsolation: false,
  });

  function parseOptions(text) {
    if (text === null || text === undefined || text === "{}") return NO_OPTIONS;
    const o = JSON.parse(text);
    if (o === null || typeof o !== "object" || Array.isArray(o)) throw sqlError(TXF_BAD_OPTIONS, "txfn: options must be a JSON object");
    const unknown = Object.keys(o).filter((k) => OPTION_KEYS.indexOf(k) < 0);
    if (unknown.length) {
      throw sqlError(TXF_BAD_OPTIONS, "txfn: unknown option(s) " + unknown.join(", ") + " (allowed: " + OPTION_KEYS.join(", ") + ")");
    }
    const bad = (k, what) => sqlError(TXF_BAD_OPTIONS, "txfn: option " + k + " must be " + what + ", got " + JSON.stringify(o[k]));
    const isInt = (v, min, max) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
    const out = { version: null, pinnedTime: null, seed: null, workflowId: null, workflowStep: null, invocationId: null, relaxIsolation: false };
    if (o.version !== undefined && o.version !== null) {
      if (!isInt(o.version, 1, 2147483647)) throw bad("version", "a positive integer (a bundle version)");
      out.version = o.version;
    }
    if (o.pinnedTime !== undefined && o.pinnedTime !== null) {
      const t = typeof o.pinnedTime === "number" ? o.pinnedTime : typeof o.pinnedTime === "string" ? RealDate.parse(o.pinnedTime) : NaN;
      if (!Number.isFinite(t)) throw bad("pinnedTime", "an ISO-8601 timestamp or epoch milliseconds");
      out.pinnedTime = t;
    }
    if (o.seed !== undefined && o.seed !== null) {
      if (!isInt(o.seed, 0, 4294967295)) throw bad("seed", "an integer in [0, 2^32)");
      out.seed = o.seed;
    }
    if (o.workflowId !== undefined && o.workflowId !== null) {
      if (typeof o.workflowId !== "string" || o.workflowId === "") throw bad("workflowId", "a non-empty string");
      out.workflowId = o.workflowId;
    }
    if (o.workflowStep !== undefined && o.workflowStep !== null) {
      if (!isInt(o.workflowStep, 0, 2147483647)) throw bad("workflowStep", "a non-negative integer");
      out.workflowStep = o.workflowStep;
    }
    if (o.invocationId !== undefined && o.invocationId !== null) {
      const v = o.invocationId;
      const text = typeof v === "string" ? v : isInt(v, 1, Number.MAX_SAFE_INTEGER) ? String(v) : "";
      if (!/^[1-9][0-9]{0,18}$/.test(text) || (text.length === 19 && text > "9223372036854775807")) {
        throw bad("invocationId", "a positive bigint (decimal string or integer)");
      }
      out.invocationId = text;
    }
    if (o.relaxIsolation !== undefined && o.relaxIsolation !== null) {
      if (typeof o.relaxIsolation !== "boolean") throw bad("relaxIsolation", "a boolean");
      out.relaxIsolation = o.relaxIsolation;
    }
    return out;
  }

  // --- the context handed to bodies ----------------------------------------------------------

  const ISOLATION_RANK = { "read uncommitted": 0, "read committed": 0, "repeatable read": 1, serializable: 2 };

  /** `relax` (option relaxIsolation, replay): REPEATABLE READ satisfies a SERIALIZABLE declaration. */
  function checkIsolation(name, declared, actual, relax) {
    const needed = relax && declared === "serializable" ? "repeatable read" : declared;
    if (ISOLATION_RANK[actual] < ISOLATION_RANK[needed]) {
      throw sqlError(
        TXF_ISOLATION,
        "txfn: function " + name + " needs isolation " + declared + " but the transaction runs at " + actual,
        "run it at " + declared + ": SET default_transaction_isolation = '" + declared + "' (txfn's client does this), or BEGIN ISOLATION LEVEL " + declared.toUpperCase(),
      );
    }
  }

  function makeLog() {
    const levels = { debug: g.DEBUG1, log: g.LOG, info: g.INFO, notice: g.NOTICE, warning: g.WARNING };
    const emit = (level, args) => plv8.elog(level, ...args.map((a) => (typeof a === "string" ? a : encode(a) || String(a))));
    const log = (...args) => emit(levels.notice, args);
    for (const k of Object.keys(levels)) log[k] = (...args) => emit(levels[k], args);
    return log;
  }
  const log = makeLog();

  /** The `ctx` of a body (types.ts: Context); one per body run, methods on the prototype. */
  const INVOCATION = Symbol("txfn invocation");
  class Context {
    constructor(inv, functionName) {
      this.invocationId = inv.id;
      this.idempotencyKey = inv.key;
      this.workflowId = inv.workflowId;
      this.workflowStep = inv.workflowStep;
      this.functionName = functionName;
      this.version = inv.bundle.version;
      this[INVOCATION] = inv;
    }
    query(sql, params) {
      const r = runUserSql(this[INVOCATION], sql, params);
      return Array.isArray(r) ? r : [];
    }
    execute(sql, params) {
      const r = runUserSql(this[INVOCATION], sql, params);
      return Array.isArray(r) ? r.length : r;
    }
    subtransaction(fn) {
      if (typeof fn !== "function") throw new TypeError("ctx.subtransaction: fn must be a function");
      const pending = this[INVOCATION].pendingReads;
      const kept = pending === null ? 0 : pending.length;
      try {
        return runSubtransaction(fn);
      } catch (e) {
        if (pending !== null) pending.length = kept; // rolled back: its reads go, as recorded ones would
        throw e;
      }
    }
    call(fn, input) {
      const inv = this[INVOCATION];
      const name = typeof fn === "string" ? fn : inv.bundle.names.get(fn);
      const target = name === undefined ? undefined : inv.bundle.functions.get(name);
      if (target === undefined) {
        throw new Error("ctx.call: " + (typeof fn === "string" ? "no function " + fn : "the function is not exported by bundle") + " in bundle version " + inv.bundle.version);
      }
      checkIsolation(name, target.options.isolation, inv.isolation, inv.relaxIsolation);
      return target.body(new Context(inv, name), input);
    }
  }
  Context.prototype.log = log;

  /**
   * Runs `work` in a subtransaction (rule 4): returns { ok, value } or { ok: false, error }
   * with the ORIGINAL thrown value (plv8.subtransaction may rethrow a copy without sqlerrcode).
   * Under txv8 without statement subtransactions (DIRECT) the frame rethrows what `work` threw,
   * unless a statement failed the frame: then it throws that statement's original error, even
   * when `work` caught it and returned or threw something else, and that error is the outcome
   * (so a swallowed 40001 is still retried, never recorded).
   */
  function runIsolated(work) {
    let outcome = null;
    try {
      plv8.subtransaction(() => {
        try {
          outcome = { ok: true, value: work() };
        } catch (e) {
          outcome = { ok: false, error: e };
          throw e;
        }
      });
    } catch (e) {
      if (outcome === null) throw e;
      if (DIRECT && (outcome.ok || e !== outcome.error)) return { ok: false, error: e };
    }
    return outcome;
  }

  /** ctx.subtransaction(fn): fn's value; on a throw, rolled back and the original error rethrown. */
  function runSubtransaction(fn) {
    if (DIRECT) return plv8.subtransaction(fn); // rethrows unchanged (or the failed statement's error)
    let thrown = null;
    try {
      return plv8.subtransaction(() => {
        try {
          return fn();
        } catch (e) {
          thrown = { error: e };
          throw e;
        }
      });
    } catch (e) {
      throw thrown !== null ? thrown.error : e; // plv8 rethrows a copy without sqlerrcode
    }
  }

  /**
   * readOnly bodies run inside `txfn._read_only_call()`, an SQL function declared with
   * `SET transaction_read_only = on`: PostgreSQL restores XactReadOnly at the end of every
   * subtransaction, so a SET LOCAL through plv8.execute (which runs in its own subtransaction)
   * would not last; a function-level SET lasts exactly as long as the call. The callee runs in
   * this same JS context and picks up `readOnlyWork`.
   */
  let readOnlyWork = null;
  let readOnlyOutcome = null;
  function runReadOnly(work) {
    readOnlyWork = work;
    readOnlyOutcome = null;
    let failed = null;
    try {
      preparedPlans().readOnly.execute([]);
    } catch (e) {
      failed = { error: e };
    } finally {
      readOnlyWork = null;
    }
    const o = readOnlyOutcome;
    readOnlyOutcome = null;
    if (failed !== null) {
      // The call failed (under DIRECT: a statement of the body failed it, and it raised that
      // error). When the body let that very error escape, keep its own Error (its stack names
      // the body's source); otherwise the call's error is the outcome.
      const e = failed.error;
      const same = o !== null && !o.ok && o.error !== null && typeof o.error === "object" &&
        e !== null && typeof e === "object" && o.error.sqlerrcode === e.sqlerrcode && o.error.message === e.message;
      throw same ? o.error : e;
    }
    if (o === null) throw new Error("txfn: the read-only call did not run");
    if (!o.ok) throw o.error;
    return o.value;
  }

  /** Body of txfn._read_only_call(): runs the pending read-only work, keeping its outcome. */
  function runPendingReadOnly() {
    const work = readOnlyWork;
    readOnlyWork = null;
    if (work === null) throw new Error("txfn._read_only_call() is internal to txfn.invoke");
    try {
      readOnlyOutcome = { ok: true, value: work() };
    } catch (e) {
      if (isTransient(e)) throw e; // must fail the statement, not be kept as an outcome
      readOnlyOutcome = { ok: false, error: e };
    }
    return null;
  }

  // --- txfn._invoke ---------------------------------------------------------------------------

  let current = null; // the invocation running now (SQL-level nesting restores the outer one)

  /**
   * One invocation: claim the key, run the body pinned and isolated, record the outcome.
   * Returns the envelope as JSON text; throws (unrecorded) for unknown functions, reused keys,
   * bad options, isolation too weak and transient errors.
   */
  function invoke(fnName, inputText, key, optionsText) {
    if (typeof fnName !== "string" || fnName === "") throw sqlError(TXF_FUNCTION_NOT_FOUND, "txfn: function name must be a non-empty string");
    const options = parseOptions(optionsText);
    const p = preparedPlans();
    const time = options.pinnedTime !== null ? options.pinnedTime : realNow();
    const seed = options.seed !== null ? options.seed : Math.floor(realRandom() * 4294967296);
    const args = [key, fnName, options.version, inputText, new RealDate(time), seed, options.workflowId, options.workflowStep];
    const claimed = options.invocationId === null ? p.claim.execute(args) : p.claimWithId.execute(args.concat([options.invocationId]));
    if (claimed.length === 0) return replay(fnName, inputText, key);

    const row = claimed[0];
    if (row.version === null) throw sqlError(TXF_NO_BUNDLE, "txfn: nothing is deployed (no active bundle)", "txfn deploy <dir>");
    const bundle = loadBundle(row.version, options.version === null);
    const fn = bundle.functions.get(fnName);
    if (fn === undefined) {
      throw sqlError(
        TXF_FUNCTION_NOT_FOUND,
        "txfn: no function " + JSON.stringify(fnName) + " in bundle version " + row.version,
        "deployed functions: " + Array.from(bundle.functions.keys()).join(", "),
      );
    }
    checkIsolation(fnName, fn.options.isolation, row.isolation, options.relaxIsolation);

    const outer = current;
    const reads = row.reads === true;
    const inv = {
      id: row.id, key: key === undefined ? null : key, workflowId: options.workflowId, workflowStep: options.workflowStep,
      bundle, isolation: row.isolation, relaxIsolation: options.relaxIsolation,
      reads, pendingReads: reads && fn.options.readOnly ? [] : null,
    };
    current = inv;
    let outcome;
    try {
      const input = inputText === null || inputText === undefined ? null : JSON.parse(inputText);
      const run = () => encode(fn.body(new Context(inv, fnName), input));
      const work = fn.options.readOnly ? () => writePendingReads(inv, runReadOnly(run)) : run;
      outcome = withPin({ time, random: makeRandom(seed) }, () => runIsolated(work));
    } finally {
      current = outer;
      if (outer !== null) p.restoreId.execute([outer.id, String(outer.bundle.version)]);
    }
    if (!outcome.ok && isTransient(outcome.error)) throw outcome.error; // rule 5: never recorded
    const output = outcome.ok ? outcome.value : null;
    const error = outcome.ok ? null : recordedErrorJson(outcome.error);
    (outcome.ok ? p.finishOk : p.finishError).execute([
      row.ctid, outcome.ok ? output : error,
      outer === null ? "" : outer.id, outer === null ? "" : String(outer.bundle.version),
    ]);
    return envelopeText(row.id, row.version, output, error);
  }

  /** JSON of the recorded error; an error that cannot be described still gets recorded. */
  function recordedErrorJson(e) {
    try {
      return JSON.stringify(describeError(e), encodeReplacer);
    } catch (describeFailure) {
      return JSON.stringify({ name: "Error", message: "txfn: the thrown value could not be described: " + String(describeFailure) });
    }
  }

  /**
   * The envelope of a fresh outcome, the same JSON as txfn.envelope(i, false) builds for a
   * recorded one (README "The envelope"). Assembled from parts that are JSON already: the
   * id's digits, an integer version, and JSON.stringify output.
   */
  function envelopeText(id, version, outputJson, errorJson) {
    const meta = '"invocationId":"' + id + '","version":' + version + ',"replayed":false}';
    if (errorJson !== null) return '{"error":' + errorJson + "," + meta;
    if (outputJson !== null) return '{"output":' + outputJson + "," + meta;
    return "{" + meta;
  }

  /** Rules 2 and 7: the key was used before; return its recorded outcome or refuse. */
  function replay(fnName, inputText, key) {
    const rows = preparedPlans().recorded.execute([key, inputText]);
    if (rows.length === 0) {
      // The conflicting row vanished (its transaction rolled back): a retry will claim the key.
      throw sqlError("40001", "txfn: idempotency key " + JSON.stringify(key) + " was released by a concurrent transaction; retry");
    }
    const r = rows[0];
    if (r.function !== fnName) {
      throw sqlError(TXF_KEY_REUSED, "txfn: idempotency key " + JSON.stringify(key) + " was used for function " + r.function + ", not " + fnName);
    }
    if (!r.same_input) {
      throw sqlError(TXF_KEY_REUSED, "txfn: idempotency key " + JSON.stringify(key) + " was used for " + fnName + " with a different input");
    }
    if (r.status === "running") {
      throw sqlError(TXF_REENTRANT, "txfn: invocation " + r.id + " with key " + JSON.stringify(key) + " is still running in this transaction (a call re-entered its own key)");
    }
    return r.envelope;
  }

  /** txfn._bundle_functions(version): loads a bundle as an invocation would; JSON of its functions. */
  function bundleFunctions(version) {
    const bundle = loadBundle(version);
    const out = {};
    for (const [name, fn] of bundle.functions) out[name] = { isolation: fn.options.isolation, readOnly: fn.options.readOnly };
    return JSON.stringify(out);
  }

  return Object.freeze({
    id: runtimeId,
    invoke,
    bundleFunctions,
    runPendingReadOnly,
    // exposed for the unit tests of the pure parts (Node runs this file without a database)
    _pure: { encode, envelopeText, makeRandom, decodeMappings, originalPosition, isTransient, packSqlstate, describeError, PinnedDate, withPin },
  });
})
