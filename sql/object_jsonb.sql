-- revetl.object_jsonb: the plan's key and payload objects. It must return
-- jsonb_build_object's bytes for the same arguments (a shadow key is the
-- object's text; without hashed values the row hash is the hash of the
-- payload's text), for every kind of value: each row below is compared by
-- jsonb_send, not by jsonb equality, which would call 1.0 and 1.00 equal.
CREATE DATABASE object_jsonb ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c object_jsonb
CREATE EXTENSION revetl;
SET TimeZone = 'America/New_York';
SET extra_float_digits = 0;

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN small_int AS int CHECK (VALUE < 1000);
CREATE DOMAIN email AS text;
CREATE TYPE pair AS (a int, b text);
-- A type of its own with a cast to json, which jsonb_build_object uses.
CREATE TYPE tagged AS ENUM ('t1', 't2');
CREATE FUNCTION tagged_json(tagged) RETURNS json LANGUAGE sql IMMUTABLE
  AS $$ SELECT json_build_object('tag', $1::text) $$;
CREATE CAST (tagged AS json) WITH FUNCTION tagged_json(tagged);

CREATE TABLE kinds (
  id int, i2 smallint, i4 int, i8 bigint, f4 real, f8 double precision, n numeric,
  t text, vc varchar(10), c char(5), b boolean, d date, ts timestamp, tz timestamptz, tm time,
  iv interval, u uuid, j json, jb jsonb, arr int[], tarr text[], m mood, si small_int, e email,
  p pair, tg tagged, by bytea, inet_ inet, ch "char", nm name, o oid, mon money
);
INSERT INTO kinds VALUES
  (1, 1, 2, 3, 1.5, 2.25, 3.75, 'plain', 'vc', 'ab', true, '2024-02-29', '2024-01-01 12:34:56.789',
   '2024-06-01 12:00:00+02', '10:11:12', '1 day 2 hours', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
   '{"b": 1, "a": [1, 2.50, null], "a": "dup"}', '{"z": {"y": [true, null, 1.10]}}', '{1,NULL,3}',
   '{"x","y z"}', 'happy', 7, 'a@example.com', ROW(1, 'one'), 't1', '\x00ff', '10.0.0.1/8',
   'q', 'a name', 42, 12.34),
  (2, -32768, -2147483648, -9223372036854775808, 'NaN', 'Infinity', 'NaN', '', '', '', false,
   'infinity', '-infinity', 'infinity', '00:00', '0', '00000000-0000-0000-0000-000000000000',
   '"a json string"', '"a jsonb string"', '{}', '{}', 'sad', -1, '', ROW(NULL, NULL), 't2', '\x',
   '::1', ' ', '', 0, 0),
  (3, 32767, 2147483647, 9223372036854775807, '-Infinity', '-0', '-0.000', E'quote " backslash \\ tab \t nl \n é ☃ 😀',
   'x', 'x', NULL, '4713-01-01 BC', '294276-12-31 23:59:59.999999', '1999-12-31 23:00-05', NULL, NULL, NULL,
   '123', '456.000', '{{1,2},{3,4}}', '{NULL}', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (4, 0, 0, 0, 3.4028235e38, 1e-300, 12345678901234567890.123456789012345678901234567890, repeat('long ', 2000),
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (5, NULL, NULL, NULL, NULL, NULL, 1.50, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   '[1, {"k": 2}]', '[]', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);

-- Every column, one call; then each column alone (its own call site and
-- cache); both must match jsonb_build_object's bytes.
SELECT id,
       jsonb_send(revetl.object_jsonb('id', id, 'i2', i2, 'i4', i4, 'i8', i8, 'f4', f4, 'f8', f8, 'n', n,
         't', t, 'vc', vc, 'c', c, 'b', b, 'd', d, 'ts', ts, 'tz', tz, 'tm', tm, 'iv', iv, 'u', u, 'j', j,
         'jb', jb, 'arr', arr, 'tarr', tarr, 'm', m, 'si', si, 'e', e, 'p', p, 'tg', tg, 'by', by,
         'inet', inet_, 'ch', ch, 'nm', nm, 'o', o, 'mon', mon))
     = jsonb_send(jsonb_build_object('id', id, 'i2', i2, 'i4', i4, 'i8', i8, 'f4', f4, 'f8', f8, 'n', n,
         't', t, 'vc', vc, 'c', c, 'b', b, 'd', d, 'ts', ts, 'tz', tz, 'tm', tm, 'iv', iv, 'u', u, 'j', j,
         'jb', jb, 'arr', arr, 'tarr', tarr, 'm', m, 'si', si, 'e', e, 'p', p, 'tg', tg, 'by', by,
         'inet', inet_, 'ch', ch, 'nm', nm, 'o', o, 'mon', mon)) AS same_bytes
FROM kinds ORDER BY id;

SELECT k.id, c.name
FROM kinds k, LATERAL (VALUES
  ('i2', jsonb_send(revetl.object_jsonb('v', k.i2)) = jsonb_send(jsonb_build_object('v', k.i2))),
  ('i8', jsonb_send(revetl.object_jsonb('v', k.i8)) = jsonb_send(jsonb_build_object('v', k.i8))),
  ('f4', jsonb_send(revetl.object_jsonb('v', k.f4)) = jsonb_send(jsonb_build_object('v', k.f4))),
  ('f8', jsonb_send(revetl.object_jsonb('v', k.f8)) = jsonb_send(jsonb_build_object('v', k.f8))),
  ('n', jsonb_send(revetl.object_jsonb('v', k.n)) = jsonb_send(jsonb_build_object('v', k.n))),
  ('t', jsonb_send(revetl.object_jsonb('v', k.t)) = jsonb_send(jsonb_build_object('v', k.t))),
  ('c', jsonb_send(revetl.object_jsonb('v', k.c)) = jsonb_send(jsonb_build_object('v', k.c))),
  ('tz', jsonb_send(revetl.object_jsonb('v', k.tz)) = jsonb_send(jsonb_build_object('v', k.tz))),
  ('j', jsonb_send(revetl.object_jsonb('v', k.j)) = jsonb_send(jsonb_build_object('v', k.j))),
  ('jb', jsonb_send(revetl.object_jsonb('v', k.jb)) = jsonb_send(jsonb_build_object('v', k.jb))),
  ('p', jsonb_send(revetl.object_jsonb('v', k.p)) = jsonb_send(jsonb_build_object('v', k.p))),
  ('tg', jsonb_send(revetl.object_jsonb('v', k.tg)) = jsonb_send(jsonb_build_object('v', k.tg))),
  ('whole row', jsonb_send(revetl.object_jsonb('v', k)) = jsonb_send(jsonb_build_object('v', k)))
) AS c(name, same)
WHERE NOT c.same;

-- What the values become, for the reader (the comparison above is the test).
SELECT revetl.object_jsonb('id', id, 'i8', i8, 'f8', f8, 'n', n, 'b', b, 'tz', tz, 'm', m, 'tg', tg, 'jb', jb)
FROM kinds WHERE id <= 3 ORDER BY id;

-- The same key twice: the last value wins, as in jsonb_build_object.
SELECT revetl.object_jsonb('a', 1, 'b', 2, 'a', 3),
       jsonb_send(revetl.object_jsonb('a', 1, 'b', 2, 'a', 3))
         = jsonb_send(jsonb_build_object('a', 1, 'b', 2, 'a', 3)) AS same_bytes;
-- Keys as text and varchar values, not only literals.
SELECT revetl.object_jsonb('x'::text, 1, 'y'::varchar, 'z');
-- Settings that change a value's text change it in both alike.
SET TimeZone = 'Asia/Kolkata';
SET extra_float_digits = 3;
SELECT jsonb_send(revetl.object_jsonb('tz', tz, 'f4', f4, 'f8', f8))
     = jsonb_send(jsonb_build_object('tz', tz, 'f4', f4, 'f8', f8)) AS same_bytes
FROM kinds ORDER BY id;

-- Errors.
SELECT revetl.object_jsonb('a');
SELECT revetl.object_jsonb(NULL::text, 1);
SELECT revetl.object_jsonb(1, 'one');
SELECT revetl.object_jsonb(VARIADIC ARRAY['a', 'b']);

\c postgres
DROP DATABASE object_jsonb;
