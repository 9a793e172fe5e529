-- Back to SHA-256 hex.
CREATE TEMP TABLE b64_chunks (b64 TEXT PRIMARY KEY NOT NULL, hex TEXT NOT NULL);
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 4095)
INSERT INTO b64_chunks
SELECT substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (x >> 6) + 1, 1) || substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', (x & 63) + 1, 1), printf('%03x', x)
FROM n;
UPDATE account_tokens SET token_hash =
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 1, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 3, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 5, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 7, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 9, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 11, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 13, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 15, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 17, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 19, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 21, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 23, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 25, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 27, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 29, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 31, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 33, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 35, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 37, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 39, 2)) ||
    (SELECT hex FROM b64_chunks WHERE b64 = substr(token_hash, 41, 2)) ||
    substr('0123456789abcdef', ((instr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', substr(token_hash, 43, 1)) - 1) >> 2) + 1, 1)
WHERE length(token_hash) = 43;
DROP TABLE b64_chunks;
