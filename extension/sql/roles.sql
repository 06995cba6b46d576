-- One JS context per effective user: SET ROLE, SECURITY DEFINER, txv8.start_proc, txv8_reset().
CREATE SCHEMA roles;
SET search_path = roles, public;
CREATE ROLE roles_a;
CREATE ROLE roles_b;
GRANT USAGE, CREATE ON SCHEMA roles TO roles_a, roles_b;

CREATE FUNCTION peek() RETURNS text LANGUAGE txv8 AS $$
  return (typeof secret === 'undefined' ? 'none' : secret) + '/' + (plv8.tag || 'untagged');
$$;
CREATE FUNCTION plant(v text) RETURNS text LANGUAGE txv8 AS $$ secret = v; plv8.tag = v; return peek_fn(); function peek_fn() { return secret; } $$;
GRANT EXECUTE ON FUNCTION peek(), plant(text) TO roles_a, roles_b;

SET ROLE roles_a;
SELECT plant('a-secret'), peek();
SET ROLE roles_b;
SELECT peek();
SELECT plant('b-secret'), peek();
SET ROLE roles_a;
SELECT peek();
RESET ROLE;
SELECT peek();

-- SECURITY DEFINER runs in the owner's context, even inside another role's call
CREATE FUNCTION peek_as_b() RETURNS text LANGUAGE txv8 SECURITY DEFINER AS $$ return peek() + ' via definer'; function peek() { return plv8.execute('SELECT roles.peek() AS p')[0].p; } $$;
ALTER FUNCTION peek_as_b() OWNER TO roles_b;
GRANT EXECUTE ON FUNCTION peek_as_b() TO roles_a;
SET ROLE roles_a;
SELECT peek(), peek_as_b(), peek();
RESET ROLE;

-- txv8_reset() gives the calling user fresh globals, only that user
SET ROLE roles_a;
SELECT txv8_reset();
SELECT peek();
SET ROLE roles_b;
SELECT peek();
RESET ROLE;
-- resetting the context a running function belongs to is safe
CREATE FUNCTION reset_self() RETURNS text LANGUAGE txv8 AS $$
  globalThis.mark = 'old';
  plv8.execute('SELECT txv8_reset()');
  return typeof mark + ' ' + plv8.execute('SELECT roles.peek() AS p')[0].p;
$$;
SELECT reset_self();

-- txv8.start_proc runs once per new context, with `this` the global object
CREATE FUNCTION startup() RETURNS void LANGUAGE txv8 AS $$
  this.started = (this.started || 0) + 1;
  greeting = 'hello from start_proc';
$$;
CREATE FUNCTION show_start() RETURNS text LANGUAGE txv8 AS $$ return greeting + ' ' + started; $$;
GRANT EXECUTE ON FUNCTION show_start() TO roles_a;
SET txv8.start_proc = 'roles.startup';
SELECT txv8_reset();
SELECT show_start(), show_start();
-- a context created before start_proc was set keeps its globals; a new one runs it
SET ROLE roles_a;
SELECT show_start();
SELECT txv8_reset();
SELECT show_start();
RESET ROLE;
-- without EXECUTE on the procedure: a WARNING, no start-up
REVOKE EXECUTE ON FUNCTION startup() FROM PUBLIC;
SET ROLE roles_a;
SELECT txv8_reset();
SELECT peek();
RESET ROLE;
-- a missing or non-JS start procedure is a WARNING
SET txv8.start_proc = 'roles.no_such_function';
SELECT txv8_reset();
SELECT peek();
CREATE FUNCTION sql_start() RETURNS void LANGUAGE sql AS $$ SELECT $$;
SET txv8.start_proc = 'roles.sql_start';
SELECT txv8_reset();
SELECT peek();
-- a failing start procedure fails the call and is retried by the next one
CREATE FUNCTION bad_start() RETURNS void LANGUAGE txv8 AS $$ throw new Error('start failed'); $$;
SET txv8.start_proc = 'roles.bad_start';
SELECT txv8_reset();
SELECT peek();
RESET txv8.start_proc;
SELECT peek();
-- only superusers may set it
SET ROLE roles_a;
SET txv8.start_proc = 'roles.startup';
RESET ROLE;

-- txv8_info() is for superusers
SELECT json_typeof(txv8_info()), json_array_length(txv8_info()) >= 1 AS has_contexts;
SET ROLE roles_a;
SELECT txv8_info();
RESET ROLE;

SET client_min_messages = warning;
DROP SCHEMA roles CASCADE;
DROP OWNED BY roles_a;
DROP OWNED BY roles_b;
DROP ROLE roles_a;
DROP ROLE roles_b;
