-- txv8 1.0: the language, its handlers and the plv8-compatible helpers.
\echo Use "CREATE EXTENSION txv8" to load this file. \quit

CREATE FUNCTION txv8_call_handler() RETURNS language_handler
  AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION txv8_inline_handler(internal) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C;
CREATE FUNCTION txv8_call_validator(oid) RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C;

CREATE TRUSTED LANGUAGE txv8
  HANDLER txv8_call_handler
  INLINE txv8_inline_handler
  VALIDATOR txv8_call_validator;

COMMENT ON LANGUAGE txv8 IS 'PL/V8-compatible JavaScript (txv8)';

-- Dispose of the calling user's JS context: fresh globals (and txv8.start_proc) on the next call.
CREATE FUNCTION txv8_reset() RETURNS void
  AS 'MODULE_PATHNAME' LANGUAGE C;

-- One object per live JS context of this backend, with the engine's heap figures (superuser only).
CREATE FUNCTION txv8_info() RETURNS json
  AS 'MODULE_PATHNAME' LANGUAGE C;
REVOKE ALL ON FUNCTION txv8_info() FROM PUBLIC;

-- The loaded library's version (plv8.txv8_version), which may be newer than this script's.
CREATE FUNCTION txv8_version() RETURNS text
  AS 'MODULE_PATHNAME' LANGUAGE C STABLE;
