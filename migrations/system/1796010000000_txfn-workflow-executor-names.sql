-- The workflows each executor serves: txfn.workflow_executors.workflows is {name: code hash} of
-- the workflows registered with that incarnation (written at registration). Starting a workflow
-- by a name that no executor has registered (live, or expired within the last hour) is refused
-- as unknown, unless the caller asks to queue it for an executor not up yet
-- (workflows/README.md "Unknown workflow names").

-- Up Migration

ALTER TABLE txfn.workflow_executors ADD COLUMN workflows jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Down Migration
ALTER TABLE txfn.workflow_executors DROP COLUMN workflows;
