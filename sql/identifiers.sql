-- The identifier helpers: the vendors' published test vectors, the rules of
-- each kind, errors, NULLs, and properties over a few hundred tricky inputs.
--
-- Every expected hash below was computed outside revetl with the command in
-- the comment beside it (GNU coreutils sha256sum of the normalised literal,
-- in UTF-8). Where the vendor publishes the hash itself, it is the same
-- value. These hashes are what audiences match on: a change here changes the
-- hash of every member of every audience (docs/identifiers.md).
--
-- The tests run in a UTF-8 database with the C locale, where lower() folds
-- ASCII only: the helpers must not depend on the locale. A LATIN1 database
-- at the end checks that the hash is of the UTF-8 bytes whatever the
-- database encoding.
CREATE DATABASE identifiers_utf8 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c identifiers_utf8
CREATE EXTENSION revetl;
\set VERBOSITY default

----------------------------------------------------------------------------
-- Meta's vectors (Conversions API, "Customer Information Parameters": input,
-- normalised format, expected SHA256 output).
----------------------------------------------------------------------------
SELECT kind, input, revetl.normalize_identifier(kind, input, 'meta', region) AS normalised,
       revetl.hashed_identifier(kind, input, 'meta', region) = expected AS hash_ok
FROM (VALUES
  -- printf '%s' 'john_smith@gmail.com' | sha256sum      (Meta publishes the same hash)
  ('email', 'John_Smith@gmail.com', NULL, '62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f'),
  -- printf '%s' '16505551212' | sha256sum               (Meta publishes the same hash)
  ('phone', '(650)555-1212', 'US', 'e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176'),
  -- printf '%s' 'mary' | sha256sum                      (Meta publishes the same hash)
  ('first_name', 'Mary', NULL, '6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec'),
  -- printf '%s' '정' | sha256sum                        (Meta publishes the same hash)
  ('first_name', '정', NULL, '8fa8cd9c440be61d0151429310034083132b35975c4bea67fdd74158eb51db14'),
  -- printf '%s' 'valéry' | sha256sum                    (Meta publishes the same hash)
  ('last_name', 'Valéry', NULL, '08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c'),
  -- printf '%s' 'obriensmith' | sha256sum               (Meta: no punctuation in names)
  ('last_name', ' O''Brien-Smith ', NULL, '16765783f9c8c8a3accf27f1abb877688cb5904c21a4a7afb5f125bcfcb246ba'),
  -- printf '%s' 'menlopark' | sha256sum                 (Meta: city, no spaces)
  ('city', 'Menlo Park', NULL, '0007a3d64c01e23d5075203c5977c14e4f7e01a3fc570686fcc50b5e1dd42685'),
  -- printf '%s' 'ca' | sha256sum                        (Meta: 2-character ANSI state code)
  ('state', 'California', NULL, '6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126'),
  -- printf '%s' 'ny' | sha256sum
  ('state', 'N.Y.', NULL, '1b06e2003f8420d6fa42badd8f77ec0f706b976b7a48b13c567dc5a559681683'),
  -- printf '%s' '94025' | sha256sum                     (Meta: first 5 digits in the US)
  ('zip', '94025-1234', NULL, 'b9a9cf3cd3723a2e91b7c23ecf68456e872b6e5d86e5cab7f3d45a7302da32c7'),
  -- printf '%s' 'sw1a1' | sha256sum                     (Meta: UK area/district/sector)
  ('zip', 'SW1A 1AA', NULL, '949af780a19e6f6d4b99d7044743348dbbb7ab2245fe146863573b23d02c5890'),
  -- printf '%s' 'us' | sha256sum                        (Meta: ISO 3166-1 alpha-2, lower case)
  ('country', 'US', NULL, '79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621'),
  -- printf '%s' 'f' | sha256sum
  ('gender', 'Female', NULL, '252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111'),
  -- printf '%s' 'm' | sha256sum
  ('gender', 'M', NULL, '62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a'),
  -- printf '%s' '19970216' | sha256sum                  (Meta: YYYYMMDD)
  ('date_of_birth', '1997-02-16', NULL, '01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c'),
  -- printf '%s' '1997' | sha256sum                      (Meta: DOBY)
  ('birth_year', '1997-02-16', NULL, '0985b889a1fe4f4e1fb925061ac6fb2247f10875f5fcbe63eec2ab55ed68970e'),
  -- printf '%s' '02' | sha256sum                        (Meta: DOBM)
  ('birth_month', '1997-02-16', NULL, 'a953f09a1b6b6725b81956e9ad0b1eb49e3ad40004c04307ef8af6246a054116'),
  -- printf '%s' '16' | sha256sum                        (Meta: DOBD)
  ('birth_day', '19970216', NULL, 'b17ef6d19c7a5b1ee83b907c595526dcb1eb06db8227d650d5dda0a9f4ce8cd9')
) AS v(kind, input, region, expected);

----------------------------------------------------------------------------
-- Google's vectors (Data Manager API, "Format user data" and its quickstart).
----------------------------------------------------------------------------
SELECT kind, input, revetl.normalize_identifier(kind, input, 'google', region) AS normalised,
       revetl.hashed_identifier(kind, input, 'google', region) = expected AS hash_ok
FROM (VALUES
  -- printf '%s' 'cloudysanfrancisco@gmail.com' | sha256sum
  ('email', 'cloudy.sanfrancisco+shopping@gmail.com', NULL, '223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4'),
  -- printf '%s' 'user.name+nyc@example.com' | sha256sum
  ('email', 'user.name+NYC@Example.com', NULL, 'f109a2a632fbcea5fc82049f50beed3d8621bf9034399f437fb622222acccdac'),
  -- printf '%s' 'cloudysanfrancisco@gmail.com' | sha256sum
  ('email', 'cloudySanFrancisco@GMAIL.com', NULL, '223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4'),
  -- printf '%s' 'baklavainthebalkans@gmail.com' | sha256sum
  ('email', 'baklavainthebalkans@gmail.com  ', NULL, 'f1fcde379f31f4d446b76ee8f34860eca2288adc6b6d6c0fdc56d9eee75a2fa5'),
  -- printf '%s' 'alexj@cymbalgroup.com' | sha256sum
  ('email', ' AlexJ@cymbalgroup.com', NULL, '54e410b14fa652a4b49b43aff6eaf92ad680d4d1e5e62ed71b86cd3188385a51'),
  -- printf '%s' 'quinn@cymbalgroup.com' | sha256sum
  ('email', 'quinn@CYMBALGROUP.com', NULL, '05bb62526f091b45d20e243d194766cca8869137421047dc53fa4876d111a6f0'),
  -- printf '%s' 'danam@example.com' | sha256sum
  ('email', 'DanaM@example.com', NULL, '1df6b43bc68dd38eca94e6a65b4f466ae537b796c81a526918b40ac4a7b906c7'),
  -- printf '%s' '+18005550100' | sha256sum
  ('phone', '(800)555-0100', 'US', 'fb4f73a6ec5fdb7077d564cdd22c3554b43ce49168550c3b12c547b78c517b30'),
  -- printf '%s' '+16505551212' | sha256sum
  ('phone', '+1 650-555-1212', NULL, '1e231c66011e7a2d867a9cfae267a6aff103cf4913640b6e71a99850fc0ffbc8'),
  -- printf '%s' 'mary' | sha256sum
  ('first_name', '  MARY ', NULL, '6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec'),
  -- printf '%s' "o'brien-smith" | sha256sum             (Google keeps punctuation)
  ('last_name', 'O''Brien-Smith', NULL, '5349291f7c643970cc1b897c8ffb45a8b630e59c1fecc3d1e4dc8e292a7971a9')
) AS v(kind, input, region, expected);

-- The default rule: what both vendors agree on.
SELECT kind, input, revetl.normalize_identifier(kind, input, 'default', region) AS normalised,
       revetl.hashed_identifier(kind, input, default_region => region) = expected AS hash_ok
FROM (VALUES
  -- printf '%s' 'john.smith@gmail.com' | sha256sum      (dots kept, unlike Google's rule)
  ('email', ' John.Smith@GMAIL.com ', NULL, 'd0c648bc36f12061bec770df216cea2ab95851b9350fd54b658de53b0407767a'),
  -- printf '%s' '+16505551212' | sha256sum              (E.164 with +, like Google)
  ('phone', '(650)555-1212', 'us', '1e231c66011e7a2d867a9cfae267a6aff103cf4913640b6e71a99850fc0ffbc8'),
  -- printf '%s' 'valéry' | sha256sum
  ('first_name', ' VALÉRY', NULL, '08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c')
) AS v(kind, input, region, expected);

----------------------------------------------------------------------------
-- normalize_email and e164.
----------------------------------------------------------------------------
SELECT input, revetl.normalize_email(input) AS "default",
       revetl.normalize_email(input, 'google') AS google, revetl.normalize_email(input, 'meta') AS meta
FROM (VALUES ('  John.Smith+Tag@GMail.com '), ('J.O.H.N@googlemail.com'), ('first.last@google.com'),
             (E'\u00a0Jörg@Example.DE\u3000'), ('ÉLODIE@exemple.fr'), ('j ohn@example.com'),
             ('not an email'), ('@example.com'), ('john@'), ('...+x@gmail.com'), ('')) AS v(input);
SELECT input, region, revetl.e164(input, region)
FROM (VALUES ('(650)555-1212', 'US'), ('(650)555-1212', NULL), ('+44 20 7946 0018', NULL),
             ('020 7946 0018', 'gb'), ('0044 20 7946 0018', 'DE'), ('+1 (650) 253-0000', 'FR'),
             ('1-800-FLOWERS', 'US'), ('+1 650 253 0000 ext. 7', NULL), ('+1 555 555 5555', NULL),
             ('12', 'US'), ('phone', 'US'), ('', 'US'), ('+1 650 253 0000', '')) AS v(input, region);

-- NULL in, NULL out; a value that cannot be normalised is NULL, not an error.
SELECT revetl.normalize_email(NULL) IS NULL AS email_null,
       revetl.normalize_email('x@y', NULL) IS NULL AS rule_null,
       revetl.e164(NULL) IS NULL AS phone_null,
       revetl.e164(NULL, 'US') IS NULL AS phone_null_region,
       revetl.hashed_identifier('email', NULL) IS NULL AS value_null,
       revetl.hashed_identifier(NULL, 'x@y') IS NULL AS kind_null,
       revetl.hashed_identifier('email', 'x@y', NULL) IS NULL AS rule_null_hash,
       revetl.hashed_identifier('email', 'no at sign', 'google') IS NULL AS not_email,
       revetl.hashed_identifier('phone', '555-1212') IS NULL AS no_country,
       revetl.hashed_identifier('date_of_birth', '16/02/1997', 'meta') IS NULL AS ambiguous_date,
       revetl.hashed_identifier('gender', 'x', 'meta') IS NULL AS unknown_gender;

-- A value that already is 64 lower-case hex characters is hashed like any
-- other value: no vendor documents an exception (docs/identifiers.md).
SELECT revetl.hashed_identifier('first_name',
         '6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec', 'meta')
       -- printf '%s' '6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec' | sha256sum
       = '15e754b6fd4d4635b2d3a482d100e2f87dbe5d9a155fa3058b239dfdf042ccd5' AS rehashed;

----------------------------------------------------------------------------
-- Errors.
----------------------------------------------------------------------------
SELECT revetl.normalize_email('a@b.c', 'gogle');
SELECT revetl.hashed_identifier('emial', 'a@b.c');
SELECT revetl.hashed_identifier('phones', '+16505551212');
SELECT revetl.hashed_identifier('email', 'a@b.c', 'facebook');
SELECT revetl.hashed_identifier('zip', '94025', 'google');
SELECT revetl.hashed_identifier('city', NULL);
SELECT revetl.e164('+16505551212', 'USA');
SELECT revetl.hashed_identifier('phone', '6505551212', 'google', 'XX');
-- The region is checked for phone numbers only.
SELECT revetl.hashed_identifier('email', 'A@B.C', 'google', 'XX')
       -- printf '%s' 'a@b.c' | sha256sum
       = 'd648b243a3e817eaa3309e00e183483f2867baadf522099f0c2121770536b25a' AS region_ignored;

----------------------------------------------------------------------------
-- How the functions are declared, and hashed_identifier inlined into the
-- calling query (so it costs what its parts cost).
----------------------------------------------------------------------------
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict, p.proconfig
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'revetl'
  AND p.proname IN ('normalize_email', 'e164', 'normalize_identifier', 'hashed_identifier', '_identifier_bytes')
ORDER BY p.proname;
CREATE TABLE members (email text);
EXPLAIN (VERBOSE, COSTS OFF) SELECT revetl.hashed_identifier('email', email, 'google') FROM members;

----------------------------------------------------------------------------
-- Properties over a few hundred generated and tricky inputs: normalising
-- twice is normalising once, and hashed_identifier is SHA-256 of the UTF-8
-- of the normalised text.
----------------------------------------------------------------------------
CREATE TABLE samples AS
SELECT p || l || a || d || s AS x
FROM unnest(ARRAY['', ' ', E'\t', E'\u00a0', E'\u3000']) AS p,
     unnest(ARRAY['John.Smith', 'ÉLODIE', 'a+b', '.x.', 'ΟΔΟΣ', 'İstanbul', 'Mary-Ann O''Neil', '']) AS l,
     unnest(ARRAY['@', '']) AS a,
     unnest(ARRAY['GMail.com', 'googlemail.COM', 'Example.com', '']) AS d,
     unnest(ARRAY['', ' ', E'\n']) AS s
UNION ALL
SELECT p || n || s
FROM unnest(ARRAY['', ' ', '+', '00', E'\u00a0']) AS p,
     unnest(ARRAY['1 650 555 1212', '(650) 555-1212', '44 20 7946 0018', '020 7946 0018', '1-800-FLOWERS',
                  '١٦٥٠٥٥٥١٢١٢', '+1 650 555 1212 ext. 7', '16505551212', '', '++1', 'phone']) AS n,
     unnest(ARRAY['', ' ']) AS s
UNION ALL
SELECT unnest(ARRAY['New York', 'SW1A 1AA', '94025-1234', 'K1A 0B1', '1997-02-16', '19970216', '2', '31',
                    'Female', 'm', 'US', 'gb', 'Menlo Park', 'St. John', '정', 'Valéry', '...', NULL]);
SELECT count(*) AS samples FROM samples;

-- normalize_email(normalize_email(x, r), r) = normalize_email(x, r)
SELECT r AS rule, count(n) AS emails,
       count(*) FILTER (WHERE revetl.normalize_email(n, r) IS DISTINCT FROM n) AS changed_by_second_pass
FROM samples, unnest(ARRAY['default', 'google', 'meta']) AS r,
     LATERAL (SELECT revetl.normalize_email(x, r)) AS e(n)
WHERE n IS NOT NULL OR x IS NULL
GROUP BY r ORDER BY r;

-- e164(e164(x)) = e164(x), whatever the default region of the first pass
SELECT coalesce(region, '(none)') AS region, count(n) AS numbers,
       count(*) FILTER (WHERE revetl.e164(n) IS DISTINCT FROM n) AS changed_by_second_pass
FROM samples, unnest(ARRAY[NULL, 'US', 'GB']) AS region,
     LATERAL (SELECT revetl.e164(x, region)) AS e(n)
WHERE n IS NOT NULL
GROUP BY region ORDER BY region;

-- For every kind and rule: normalising twice changes nothing, and the hash
-- is encode(sha256(convert_to(normalised, 'UTF8')), 'hex').
WITH combos(kind, rule) AS (
  SELECT k, r FROM unnest(ARRAY['email', 'phone', 'first_name', 'last_name']) AS k,
                   unnest(ARRAY['default', 'google', 'meta']) AS r
  UNION ALL
  SELECT k, 'meta' FROM unnest(ARRAY['city', 'state', 'zip', 'country', 'gender', 'date_of_birth',
                                     'birth_year', 'birth_month', 'birth_day']) AS k
)
SELECT kind, rule, count(n) AS normalised,
       count(*) FILTER (WHERE revetl.normalize_identifier(kind, n, rule, 'US') IS DISTINCT FROM n)
         AS changed_by_second_pass,
       count(*) FILTER (WHERE revetl.hashed_identifier(kind, x, rule, 'US')
                              IS DISTINCT FROM encode(sha256(convert_to(n, 'UTF8')), 'hex')) AS hash_mismatches,
       count(*) FILTER (WHERE revetl.hashed_identifier(kind, x, rule, 'US') !~ '^[0-9a-f]{64}$') AS not_hex
FROM combos, samples, LATERAL (SELECT revetl.normalize_identifier(kind, x, rule, 'US')) AS e(n)
GROUP BY kind, rule ORDER BY kind, rule;

----------------------------------------------------------------------------
-- In a sync's MAP: what a run would send (hashes, or null for a value that
-- cannot be normalised).
----------------------------------------------------------------------------
CREATE SERVER hooks FOREIGN DATA WRAPPER revetl OPTIONS (type 'webhook', url 'http://127.0.0.1:9/audience');
CREATE TABLE vips (customer_id int PRIMARY KEY, email text, phone text, country text, birth_date date);
INSERT INTO vips VALUES (1, ' Cloudy.SanFrancisco+shopping@GMAIL.com', '(650) 555-1212', 'us', '1997-02-16'),
                        (2, 'not an email', '12', 'US', NULL);
SELECT * FROM revetl.execute($$
  CREATE SYNC vip_audience FROM vips TO hooks KEY (customer_id)
    MAP (revetl.hashed_identifier('email', email, 'google') AS email,
         revetl.hashed_identifier('phone', phone, 'meta', country) AS phone,
         revetl.hashed_identifier('date_of_birth', to_char(birth_date, 'YYYYMMDD'), 'meta') AS db)
$$);
-- email: printf '%s' 'cloudysanfrancisco@gmail.com' | sha256sum
-- phone: printf '%s' '16505551212' | sha256sum   (Meta's vector)
-- db:    printf '%s' '19970216' | sha256sum
SELECT action, key, payload->>'email' = '223ebda6f6889b1494551ba902d9d381daf2f642bae055888e96343d53e9f9c4' AS email_ok,
       payload->>'phone' = 'e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176' AS phone_ok,
       payload->>'db' = '01acdbf6ec7b4f478a225f1a246e5d6767eeab1a7ffa17f025265b5b94f40f0c' AS db_ok
FROM revetl.preview_sync('vip_audience') ORDER BY key::text;
SELECT * FROM revetl.execute('DROP SYNC vip_audience');

----------------------------------------------------------------------------
-- A LATIN1 database: the text is converted, and the hash is still that of
-- the UTF-8 bytes, so it matches Meta's published vector.
----------------------------------------------------------------------------
\c regression
DROP DATABASE identifiers_utf8;
CREATE DATABASE identifiers_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c identifiers_latin1
SET client_encoding = 'UTF8';
CREATE EXTENSION revetl;
SELECT revetl.normalize_identifier('last_name', ' VALÉRY', 'meta') AS normalised,
       -- printf '%s' 'valéry' | sha256sum                    (Meta publishes the same hash)
       revetl.hashed_identifier('last_name', ' VALÉRY', 'meta')
         = '08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c' AS hash_ok,
       revetl.normalize_email('ÉLODIE@Exemple.FR') AS email;
\c regression
DROP DATABASE identifiers_latin1;
