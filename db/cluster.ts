/**
 * The embedded default: a private PostgreSQL cluster owned by one project.
 *
 * Layout of a cluster directory (default `.txfn/pg`):
 *   data/          PGDATA (initdb on first start)
 *   cluster.json   remembered port, superuser password, PostgreSQL major (mode 0600)
 *   postgres.log   server log
 *   run/           unix socket directory (or a short /tmp path when this one is too long)
 *
 * Every operation is idempotent: `start` on a running cluster only re-applies changed
 * settings, `stop` on a stopped one does nothing.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import pg from "pg";
import { clusterSettings, renderSettings } from "./settings.ts";
import { canReach, chownTree, clusterOsUser, isRoot, runAsOptions, type OsUser } from "./os-user.ts";
import { findFreePort, isPortFree } from "./ports.ts";
import { ClusterError } from "./errors.ts";
import { LockFileError, errnoText, mkdirp, withFileLock } from "./file-lock.ts";
import { libraryFingerprint, pgBinDir, pgMajorOf, requireTxv8Installed } from "./pg-install.ts";

/**
 * The bootstrap superuser of new clusters. Not "txfn": PostgreSQL's default search_path
 * starts with "$user", so a role named like the txfn schema would create every unqualified
 * table inside the system schema (where provenance does not capture it).
 */
export const SUPERUSER = "postgres";
/** Clusters created before the rename keep their superuser; their search_path is fixed at start. */
const LEGACY_SUPERUSER = "txfn";
export const DATABASE = "txfn";
export { ClusterError };

interface ClusterState {
  port: number;
  password: string;
  /** Superuser name (absent in clusters created before it was recorded: LEGACY_SUPERUSER). */
  superuser?: string;
  pgMajor: number;
  /** Fingerprint of the txv8.so the running server preloaded (see libraryFingerprint). */
  txv8Loaded?: string;
  createdAt: string;
}

export interface ClusterStatus {
  dir: string;
  initialized: boolean;
  running: boolean;
  pid?: number;
  port?: number;
  url?: string;
  log: string;
}

export interface EmbeddedClusterOptions {
  /** Cluster directory (see the layout above). Relative paths resolve against the cwd. */
  dir: string;
  /** Progress messages ("initialising…", "starting…"); silent by default. */
  log?: (message: string) => void;
}

export class EmbeddedCluster {
  readonly dir: string;
  private readonly log: (message: string) => void;

  constructor(options: EmbeddedClusterOptions) {
    this.dir = resolve(options.dir);
    this.log = options.log ?? (() => {});
  }

  /** The directory's real path: the server gets no symlinks it may be unable to follow. */
  private get base(): string {
    try {
      return realpathSync(this.dir);
    } catch {
      return this.dir;
    }
  }
  get dataDir(): string {
    return join(this.base, "data");
  }
  get logFile(): string {
    return join(this.base, "postgres.log");
  }
  private get stateFile(): string {
    return join(this.base, "cluster.json");
  }

  /** The libpq/pg connection URL (TCP on 127.0.0.1). @throws ClusterError if never initialised. */
  url(database = DATABASE): string {
    const state = this.readState();
    if (!state) throw new ClusterError(`no cluster in ${this.dir}`, "run: txfn db start");
    return `postgresql://${state.superuser ?? LEGACY_SUPERUSER}:${state.password}@127.0.0.1:${state.port}/${database}`;
  }

  status(): ClusterStatus {
    const state = this.readState();
    const initialized = state !== undefined && existsSync(join(this.dataDir, "PG_VERSION"));
    const pid = initialized ? this.livePostmasterPid() : undefined;
    return {
      dir: this.dir,
      initialized,
      running: pid !== undefined,
      ...(pid !== undefined ? { pid } : {}),
      ...(state ? { port: state.port, url: this.url() } : {}),
      log: this.logFile,
    };
  }

  /**
   * Initialises (first time), applies settings and starts the cluster; waits until it
   * accepts connections. Returns the connection URL.
   * @throws ClusterError naming the cause (txv8 missing or built for another major,
   *   data directory owned by someone else, server failed to start: with the log's tail).
   */
  async start(): Promise<string> {
    this.requireUsableDir();
    if (existsSync(this.dir)) clusterOsUser(this.dir); // a foreign owner is reported before anything is touched
    return this.locked(async () => {
      const major = pgMajorOf(pgBinDir());
      const txv8 = libraryFingerprint(requireTxv8Installed(major));
      this.placeDirectory();
      const user = clusterOsUser(this.dir);
      let state = this.readState();
      const fresh = !existsSync(join(this.dataDir, "PG_VERSION"));
      if (fresh) state = await this.initialise(user, major);
      if (!state) throw new ClusterError(`${this.stateFile} is missing or unreadable`, `destroy and recreate: txfn db destroy --yes && txfn db start`);
      if (state.pgMajor !== major) {
        throw new ClusterError(
          `the cluster in ${this.dir} was created by PostgreSQL ${state.pgMajor}, but the server binaries are ${major}`,
          `use ${state.pgMajor}'s binaries (TXFN_PG_BIN) or recreate it: txfn db destroy --yes`,
        );
      }

      let running = this.livePostmasterPid() !== undefined;
      if (!running && !(await isPortFree(state.port))) {
        const port = await findFreePort(this.dir, [state.port]);
        this.log(`port ${state.port} is taken by another program; moving the cluster to port ${port}`);
        state = { ...state, port };
        this.writeState(state, user);
      }
      const socketDir = this.socketDir(state.port, user);
      const settingsChanged = this.writeSettings(state, socketDir, user);
      const txv8Changed = state.txv8Loaded !== undefined && state.txv8Loaded !== txv8;
      if (running && (settingsChanged || txv8Changed)) {
        this.log(`${settingsChanged ? "settings changed" : "txv8 was reinstalled"}; restarting the cluster to apply it`);
        this.pgCtl(user, ["stop", "-m", "fast", "-w", "-t", "60"]);
        running = false;
      }
      if (!running) {
        await this.launch(user, socketDir, state.port);
        this.writeState({ ...state, txv8Loaded: txv8 }, user);
      }
      if (fresh) await this.createApplicationDatabase();
      if (state.superuser === undefined) {
        await this.onPostgresDatabase((c) => c.query(`ALTER ROLE ${LEGACY_SUPERUSER} SET search_path = public`));
        this.writeState({ ...this.readState()!, superuser: LEGACY_SUPERUSER }, user);
        this.log(`set search_path = public for the superuser ${LEGACY_SUPERUSER} (its name shadows the txfn schema)`);
      }
      return this.url();
    });
  }

  /** Stops the cluster (fast shutdown: open transactions roll back). Returns false if it was not running. */
  async stop(): Promise<boolean> {
    this.requireUsableDir();
    return this.locked(async () => {
      if (this.livePostmasterPid() === undefined) return false;
      const user = clusterOsUser(this.dir);
      const res = this.pgCtl(user, ["stop", "-m", "fast", "-w", "-t", "60"]);
      if (res.status !== 0) {
        this.log("fast shutdown did not finish in 60 s; using immediate shutdown");
        this.pgCtl(user, ["stop", "-m", "immediate", "-w", "-t", "30"]);
      }
      if (this.livePostmasterPid() !== undefined) throw new ClusterError(`the server in ${this.dataDir} did not stop`, `see ${this.logFile}`);
      return true;
    });
  }

  /** Stops the cluster and deletes its directory (and the relocated target of a symlink). */
  async destroy(): Promise<void> {
    if (!existsSync(this.dir) && !isSymlink(this.dir)) return;
    this.requireUsableDir(); // a regular file given as --data-dir is not deleted
    if (this.status().running) await this.stop();
    if (isSymlink(this.dir)) {
      const target = resolve(dirname(this.dir), readlinkSync(this.dir));
      rmSync(target, { recursive: true, force: true });
      unlinkSync(this.dir);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
    rmSync(`${this.dir}.lock`, { force: true });
  }

  // ---------------------------------------------------------------------------------

  private unusable(why: string): ClusterError {
    return new ClusterError(
      `the data directory ${this.dir} is not usable: ${why}`,
      "pass --data-dir (or set TXFN_DATA_DIR to) a directory you can write, or a path where one can be created; the default is .txfn/pg in the project",
    );
  }

  /** @throws ClusterError when the cluster directory exists but is not a directory (a regular file, say). */
  private requireUsableDir(): void {
    let stat;
    try {
      stat = statSync(this.dir);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT") return; // created by start()
      throw this.unusable(errnoText(e));
    }
    if (!stat.isDirectory()) throw this.unusable("it exists and is not a directory");
  }

  /** Runs `body` holding the cluster's lock file (`<dir>.lock`); one that cannot be created makes the directory unusable. */
  private async locked<T>(body: () => Promise<T>): Promise<T> {
    let inside = false;
    try {
      return await withFileLock(`${this.dir}.lock`, () => {
        inside = true;
        return body();
      });
    } catch (err) {
      if (!inside && err instanceof LockFileError) throw this.unusable(err.message);
      throw err;
    }
  }

  /**
   * Creates the cluster directory so that the database's OS user can reach it. When
   * that user cannot enter the requested place (a clone under /root, say), the cluster
   * lives under /var/lib/txfn instead and the requested path becomes a symlink to it.
   */
  private placeDirectory(): void {
    if (existsSync(this.dir)) return;
    try {
      mkdirp(dirname(this.dir));
      mkdirSync(this.dir, { mode: 0o700 });
    } catch (err) {
      throw this.unusable(`cannot create it: ${errnoText(err as NodeJS.ErrnoException)}`);
    }
    const user = clusterOsUser(this.dir);
    if (!isRoot()) return;
    chownTree(this.dir, user);
    if (canReach(user, this.dir)) return;
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync("/var/lib/txfn", { recursive: true });
    chmodSync("/var/lib/txfn", 0o755);
    const target = join("/var/lib/txfn", createHash("sha1").update(this.dir).digest("hex").slice(0, 16));
    mkdirSync(target, { mode: 0o700 });
    chownTree(target, user);
    symlinkSync(target, this.dir);
    this.log(`user ${user.name} cannot reach ${this.dir}; the cluster lives in ${target} (linked from ${this.dir})`);
  }

  private async initialise(user: OsUser, major: number): Promise<ClusterState> {
    this.log(`initialising a PostgreSQL ${major} cluster in ${this.dataDir} (runs as ${user.name})`);
    const state: ClusterState = {
      port: await findFreePort(this.dir),
      password: randomBytes(18).toString("hex"),
      superuser: SUPERUSER,
      pgMajor: major,
      createdAt: new Date().toISOString(),
    };
    rmSync(this.dataDir, { recursive: true, force: true });
    const pwfile = join(this.base, ".initdb-password");
    writeFileSync(pwfile, `${state.password}\n`, { mode: 0o600 });
    chownTree(pwfile, user);
    try {
      const res = this.runPg(user, "initdb", [
        "-D", this.dataDir, "-U", SUPERUSER, `--pwfile=${pwfile}`, "--auth=scram-sha-256",
        "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions",
      ]);
      if (res.status !== 0) throw new ClusterError(`initdb failed:\n${res.stderr.trim()}`);
    } finally {
      rmSync(pwfile, { force: true });
    }
    const conf = join(this.dataDir, "postgresql.conf");
    writeFileSync(conf, `${readFileSync(conf, "utf8")}\n# txfn's settings (db/settings.ts)\ninclude_if_exists = 'txfn.conf'\n`);
    this.writeState(state, user);
    return state;
  }

  private async createApplicationDatabase(): Promise<void> {
    await this.onPostgresDatabase(async (client) => {
      const { rowCount } = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [DATABASE]);
      if (!rowCount) await client.query(`CREATE DATABASE ${DATABASE}`);
    });
  }

  private async onPostgresDatabase<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.url("postgres") });
    await client.connect();
    try {
      return await body(client);
    } finally {
      await client.end();
    }
  }

  /** Writes txfn.conf; returns true when its content changed. */
  private writeSettings(state: ClusterState, socketDir: string, user: OsUser): boolean {
    const text = renderSettings(clusterSettings({ port: state.port, socketDir }));
    const file = join(this.dataDir, "txfn.conf");
    const old = existsSync(file) ? readFileSync(file, "utf8") : "";
    if (old === text) return false;
    writeFileSync(file, text, { mode: 0o600 });
    chownTree(file, user);
    return true;
  }

  /** A socket directory whose socket path fits the 107-byte limit of sun_path. */
  private socketDir(port: number, user: OsUser): string {
    let dir = join(this.base, "run");
    if (Buffer.byteLength(join(dir, `.s.PGSQL.${port}.lock`)) > 100) {
      dir = join("/tmp", `txfn-${createHash("sha1").update(this.dir).digest("hex").slice(0, 12)}`);
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownTree(dir, user);
    return dir;
  }

  private async launch(user: OsUser, socketDir: string, port: number): Promise<void> {
    await this.removeStaleLockFiles(socketDir, port);
    this.log(`starting PostgreSQL (data ${this.dataDir}, log ${this.logFile})`);
    for (let attempt = 1; ; attempt++) {
      const logStart = existsSync(this.logFile) ? readFileSync(this.logFile).length : 0;
      const res = this.pgCtl(user, ["start", "-w", "-t", "60", "-l", this.logFile]);
      if (res.status === 0) return;
      const tail = existsSync(this.logFile) ? readFileSync(this.logFile).subarray(logStart).toString("utf8") : res.stderr;
      // After a SIGKILLed postmaster, its orphaned backends hold shared memory for a moment.
      if (/pre-existing shared memory block .* is still in use/.test(tail) && attempt < 15) {
        await sleep(1000);
        continue;
      }
      throw explainStartFailure(tail || res.stderr, this.logFile);
    }
  }

  /** The postmaster's pid when one is really running on this data directory. */
  private livePostmasterPid(): number | undefined {
    const pidFile = join(this.dataDir, "postmaster.pid");
    let pid: number;
    try {
      pid = Number(readFileSync(pidFile, "utf8").split("\n")[0]);
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      // The postmaster's working directory is its data directory.
      return realpathSync(`/proc/${pid}/cwd`) === realpathSync(this.dataDir) ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * A server killed with SIGKILL leaves postmaster.pid and the socket's lock file behind,
   * naming a pid that is dying, a zombie, or reused by another program. PostgreSQL
   * refuses to start while such a pid exists, so wait for a dying one and remove both.
   */
  private async removeStaleLockFiles(socketDir: string, port: number): Promise<void> {
    const pidFile = join(this.dataDir, "postmaster.pid");
    const socketLock = join(socketDir, `.s.PGSQL.${port}.lock`);
    const stale = [pidFile, socketLock].filter((f) => existsSync(f));
    if (stale.length === 0 || this.livePostmasterPid() !== undefined) return;
    for (const file of stale) {
      const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
      for (let waited = 0; waited < 5000 && isRunning(pid); waited += 100) await sleep(100);
    }
    this.log("removing the lock files of a server that is no longer running (killed?)");
    for (const file of stale) rmSync(file, { force: true });
    rmSync(join(socketDir, `.s.PGSQL.${port}`), { force: true });
  }

  private pgCtl(user: OsUser, args: string[]) {
    return this.runPg(user, "pg_ctl", ["-D", this.dataDir, ...args]);
  }

  private runPg(user: OsUser, program: string, args: string[]) {
    return spawnSync(join(pgBinDir(), program), args, {
      ...runAsOptions(user),
      cwd: this.base,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  }

  private readState(): ClusterState | undefined {
    try {
      return JSON.parse(readFileSync(this.stateFile, "utf8")) as ClusterState;
    } catch {
      return undefined;
    }
  }

  private writeState(state: ClusterState, user: OsUser): void {
    writeFileSync(this.stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    chownTree(this.stateFile, user);
  }
}

/** Turns the log lines of a failed start into an error that says what to do. */
function explainStartFailure(log: string, logFile: string): ClusterError {
  const lines = log.trim().split("\n").slice(-8).join("\n");
  if (/incompatible library|Server is version \d+, library is version/.test(log)) {
    return new ClusterError(`txv8 was built for another PostgreSQL major version:\n${lines}`, "rebuild it: bash scripts/setup");
  }
  if (/could not (load|access file) .*txv8/.test(log)) {
    return new ClusterError(`the server could not load txv8:\n${lines}`, "build and install it: bash scripts/setup");
  }
  if (/could not bind|Address already in use/.test(log)) {
    return new ClusterError(`the server could not listen on its port:\n${lines}`, "run txfn db start again: it picks a free port");
  }
  return new ClusterError(`PostgreSQL did not start:\n${lines}`, `see ${logFile}`);
}

/** True while `pid` exists and is not a zombie. */
function isRunning(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
