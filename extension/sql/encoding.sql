-- A database in another encoding: strings are converted both ways, unconvertible ones refused clearly.
SELECT current_database() AS regress_db \gset
CREATE DATABASE txv8_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c txv8_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION txv8;
CREATE FUNCTION echo(s text) RETURNS text LANGUAGE txv8 AS $$ return s; $$;
CREATE FUNCTION info(s text) RETURNS text LANGUAGE txv8 AS $$ return s.length + ' ' + s.charCodeAt(1).toString(16) + ' ' + encodeURIComponent(s); $$;
SELECT echo('café'), info('café');
CREATE FUNCTION from_js() RETURNS text LANGUAGE txv8 AS $$ return 'na\u00efve \u00bd'; $$;
SELECT from_js();
CREATE FUNCTION euro() RETURNS text LANGUAGE txv8 AS $$ return 'price: \u20ac5'; $$;
SELECT euro();
CREATE FUNCTION keys() RETURNS jsonb LANGUAGE txv8 AS $$ return { 'clé': 'été', n: [1, 'ü'] }; $$;
SELECT keys();
CREATE TABLE t ("colonne_é" text);
INSERT INTO t VALUES ('données');
CREATE FUNCTION rows() RETURNS text LANGUAGE txv8 AS $$ return JSON.stringify(plv8.execute('SELECT * FROM t')); $$;
SELECT rows();
CREATE FUNCTION body_text() RETURNS text LANGUAGE txv8 AS $$ /* é */ return 'ünïcödé in the body'; $$;
SELECT body_text();
\c :regress_db
DROP DATABASE txv8_latin1;
