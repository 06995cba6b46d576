-- txfn system schema: durable workflows (workflows/README.md has the protocol).
--
-- txfn.workflows        one row per workflow run: status, input, output/error, the bundle version
--                       and workflow-code hash it is pinned to, and which executor incarnation owns it.
-- txfn.workflow_steps   the checkpointed history: one row per step, in step order; a step that
--                       has a row is never run again (replay returns its recorded outcome).
-- txfn.workflow_executors  one row per executor process (incarnation) with its lease.

-- Up Migration

-- An executor process. Its lease is renewed by heartbeats; once `expired` is set it is never
-- unset (by the executor on a clean stop, by a newer incarnation of the same executor_id at
-- start-up, or by any executor that finds the lease past lease_expires_at), so the workflows it
-- owned can be claimed by others and a late heartbeat from it fails (it then stops its runs).
CREATE TABLE txfn.workflow_executors (
  incarnation      uuid PRIMARY KEY,
  executor_id      text NOT NULL,               -- stable name (--executor-id); a restart is a new incarnation
  hostname         text,
  pid              integer,
  started_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
  lease_expires_at timestamptz NOT NULL,
  expired          boolean NOT NULL DEFAULT false,
  expired_at       timestamptz
);
CREATE INDEX workflow_executors_live ON txfn.workflow_executors (executor_id) WHERE NOT expired;

CREATE TABLE txfn.workflows (
  id                text PRIMARY KEY,
  name              text NOT NULL,
  input             jsonb NOT NULL,             -- 'null' when started without input
  status            text NOT NULL CHECK (status IN ('PENDING', 'SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED')),
  output            jsonb,                      -- SUCCESS: the result (NULL = undefined)
  error             jsonb,                      -- ERROR / COMPENSATED / CANCELLED: what happened
  park_reason       text CHECK (park_reason IN ('code-changed', 'recovery-limit', 'non-determinism')),
                                                -- ERROR set by the engine, not by the workflow: `resume` continues it
  parent_id         text,                       -- child workflows: the parent and its step
  parent_step       integer,
  bundle_version    integer,                    -- active bundle at start; every ctx.transaction runs this version
  code_hash         text,                       -- sha256 of the workflow's module; NULL until an executor first runs it
  executor_id       text,                       -- last executor that ran it
  owner             uuid,                       -- incarnation that may run it now; NULL = any executor may claim it
  attempts          integer NOT NULL DEFAULT 0, -- times an executor began running it
  recovery_attempts integer NOT NULL DEFAULT 0, -- consecutive claims that found no new step since the previous one
  progress_steps    integer NOT NULL DEFAULT 0, -- steps recorded at the last claim (for recovery_attempts)
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  ended_at          timestamptz
) WITH (fillfactor = 80);                       -- claim and finish are HOT updates
CREATE INDEX workflows_pending ON txfn.workflows (created_at) WHERE status = 'PENDING';
CREATE INDEX workflows_created_at ON txfn.workflows USING brin (created_at);
CREATE INDEX workflows_parent ON txfn.workflows (parent_id) WHERE parent_id IS NOT NULL;

-- No foreign key to txfn.workflows: the check would take a KEY SHARE lock on the workflow row
-- inside serializable step transactions (40001 when the row was updated meanwhile).
CREATE TABLE txfn.workflow_steps (
  workflow_id   text NOT NULL,
  step          integer NOT NULL CHECK (step >= 1),
  kind          text NOT NULL CHECK (kind IN ('transaction', 'step', 'sleep', 'now', 'random', 'child')),
  name          text NOT NULL,
  status        text NOT NULL CHECK (status IN ('ok', 'error')),
  output        jsonb,                          -- ok: the result (NULL = undefined); sleep: wake-up time (epoch ms)
  error         jsonb,                          -- error: the recorded error
  invocation_id bigint,                         -- transaction steps: txfn.invocations.id
  attempts      integer,                        -- external steps: attempts made by the run that recorded it
  compensates   integer,                        -- steps run while compensating step N
  started_at    timestamptz,
  ended_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (workflow_id, step)
);

GRANT SELECT, INSERT, UPDATE ON txfn.workflows, txfn.workflow_steps, txfn.workflow_executors TO txfn_invoker;

-- Down Migration
DROP TABLE txfn.workflow_steps;
DROP TABLE txfn.workflows;
DROP TABLE txfn.workflow_executors;
