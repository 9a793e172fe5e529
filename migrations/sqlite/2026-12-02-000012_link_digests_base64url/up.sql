-- Link tokens (account_tokens) are stored under the base64url of their SHA-256 (43 characters) instead of its
-- 64-character hex, like every other digest Tessera stores (refresh families and client secrets keep theirs as
-- bytes). The link tokens already sent keep working: their rows are converted here, in SQL.
-- (refresh_tokens keeps hex: it holds only sessions from before 2026-12-02-000006 and empties as they end.)
-- SQLite has no base64 function: 3 hex digits are 12 bits, exactly 2 base64url characters, so a table of the
-- 4,096 chunks converts 63 of the 64 digits; the last digit's 4 bits make the 43rd character.
CREATE TEMP TABLE b64_chunks (hex TEXT PRIMARY KEY NOT NULL, b64 TEXT NOT NULL);
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 4095)
INSERT INTO b64_chunks
SELECT printf('%03x', x),
       substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (x >> 6) + 1, 1) || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (x & 63) + 1, 1)
FROM n;
UPDATE account_tokens SET token_hash =
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 1, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 4, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 7, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 10, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 13, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 16, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 19, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 22, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 25, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 28, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 31, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 34, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 37, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 40, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 43, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 46, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 49, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 52, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 55, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 58, 3)) ||
    (SELECT b64 FROM b64_chunks WHERE hex = substr(token_hash, 61, 3)) ||
    substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', ((instr('0123456789abcdef', substr(token_hash, 64, 1)) - 1) << 2) + 1, 1)
WHERE length(token_hash) = 64 AND lower(token_hash) = token_hash AND token_hash NOT GLOB '*[^0-9a-f]*';
DROP TABLE b64_chunks;
