-- Window functions: plv8.get_window_object() and its API.
CREATE SCHEMA win;
SET search_path = win, public;
CREATE TABLE s (grp text, x int);
INSERT INTO s VALUES ('a', 1), ('a', 2), ('a', 2), ('a', 5), ('b', 10), ('b', 20);

CREATE FUNCTION js_row_number() RETURNS int8 LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object();
  return BigInt(w.get_current_position() + 1);
$$;
CREATE FUNCTION js_count() RETURNS int LANGUAGE txv8 WINDOW AS $$ return plv8.get_window_object().get_partition_row_count(); $$;
CREATE FUNCTION js_lag(v int, off int) RETURNS int LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object();
  var r = w.get_func_arg_in_partition(0, -off, w.SEEK_CURRENT, false);
  return r === undefined ? -1 : r;
$$;
CREATE FUNCTION js_frame_sum(v int) RETURNS int LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object(), s = 0, i = 0, r;
  while ((r = w.get_func_arg_in_frame(0, i++, w.SEEK_HEAD, false)) !== undefined) s += r;
  return s;
$$;
CREATE FUNCTION js_rank() RETURNS int LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object();
  var pos = w.get_current_position();
  var st = w.get_partition_local() || { rank: 0, last: -1 };
  if (st.last < 0 || !w.rows_are_peers(st.last, pos)) st.rank = pos + 1;
  st.last = pos;
  w.set_partition_local(st);
  return st.rank;
$$;
CREATE FUNCTION js_current(v int) RETURNS text LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object();
  return w.get_func_arg_current(0) + '@' + w.SEEK_HEAD + w.SEEK_TAIL + w.SEEK_CURRENT;
$$;
SELECT grp, x,
       js_row_number() OVER w AS rn, js_count() OVER w AS cnt, js_lag(x, 1) OVER w AS lag1,
       js_frame_sum(x) OVER w AS running, js_rank() OVER w AS rank, rank() OVER w AS pg_rank,
       js_current(x) OVER w AS cur
FROM s WINDOW w AS (PARTITION BY grp ORDER BY x) ORDER BY grp, x;

-- misuse: not enough arguments, a kept WindowObject, a non-window call
CREATE FUNCTION js_misuse(v int) RETURNS text LANGUAGE txv8 WINDOW AS $$
  var w = plv8.get_window_object(), out = [];
  try { w.get_func_arg_in_partition(0); } catch (e) { out.push(e.message); }
  globalThis.kept_window = w;
  try { w.get_current_position.call({}); } catch (e) { out.push(e.message); }
  try { w.set_partition_local('x'.repeat(5000)); } catch (e) { out.push(e.message); }
  return out.join(' | ');
$$;
SELECT js_misuse(x) OVER () FROM s LIMIT 1;
DO $$ try { kept_window.get_current_position(); } catch (e) { plv8.elog(NOTICE, e.message); } $$ LANGUAGE txv8;
CREATE FUNCTION not_window() RETURNS int LANGUAGE txv8 AS $$ return plv8.get_window_object(); $$;
SELECT not_window();

SET client_min_messages = warning;
DROP SCHEMA win CASCADE;
