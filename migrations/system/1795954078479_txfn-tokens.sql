-- txfn system schema: bearer tokens of the HTTP proxy (`txfn token create`), and the
-- notifications the proxy listens to so its caches follow deploys and token changes at once.

-- Up Migration

-- Only the sha256 of a token is stored (tokens are 256 random bits, so no salt or slow hash is
-- needed); `prefix` is its first characters, shown by `txfn token list` to recognise it.
-- `functions`/`workflows` list what the token may call; '*' means all.
CREATE TABLE txfn.tokens (
  id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text,
  hash        text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{64}$'),
  prefix      text NOT NULL,
  functions   text[] NOT NULL DEFAULT '{}',
  workflows   text[] NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  created_by  name NOT NULL DEFAULT current_user,
  expires_at  timestamptz,
  revoked_at  timestamptz
);
CREATE UNIQUE INDEX tokens_live_name ON txfn.tokens (name) WHERE revoked_at IS NULL AND name IS NOT NULL;

-- The proxy's only way to read tokens: by hash, so a caller must already hold the token to
-- learn anything. Expired tokens are returned (with expires_at) so a cached entry can expire.
CREATE FUNCTION txfn.token_grants(token_hash text)
RETURNS TABLE (id integer, functions text[], workflows text[], expires_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.id, t.functions, t.workflows, t.expires_at FROM txfn.tokens t
  WHERE t.hash = token_hash AND t.revoked_at IS NULL
$$;
REVOKE ALL ON FUNCTION txfn.token_grants(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION txfn.token_grants(text) TO txfn_invoker;

-- Delivered at commit, duplicates within a transaction collapsed by PostgreSQL.
CREATE FUNCTION txfn._notify_tokens() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('txfn_tokens', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER tokens_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON txfn.tokens
  FOR EACH STATEMENT EXECUTE FUNCTION txfn._notify_tokens();

CREATE FUNCTION txfn._notify_deploys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('txfn_deploys', '');
  RETURN NULL;
END
$$;
CREATE TRIGGER bundles_activated AFTER UPDATE OF active ON txfn.bundles
  FOR EACH STATEMENT EXECUTE FUNCTION txfn._notify_deploys();

-- Down Migration
DROP TRIGGER bundles_activated ON txfn.bundles;
DROP FUNCTION txfn._notify_deploys();
DROP TABLE txfn.tokens;
DROP FUNCTION txfn._notify_tokens();
DROP FUNCTION txfn.token_grants(text);
