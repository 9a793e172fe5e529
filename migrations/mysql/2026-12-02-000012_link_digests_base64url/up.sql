-- Link tokens (account_tokens) are stored under the base64url of their SHA-256 (43 characters) instead of its
-- 64-character hex, like every other digest Tessera stores (refresh families and client secrets keep theirs as
-- bytes). The link tokens already sent keep working: their rows are converted here, in SQL.
-- (refresh_tokens keeps hex: it holds only sessions from before 2026-12-02-000006 and empties as they end.)
UPDATE account_tokens
SET token_hash = TRIM(TRAILING '=' FROM REPLACE(REPLACE(TO_BASE64(UNHEX(token_hash)), '+', '-'), '/', '_'))
WHERE CHAR_LENGTH(token_hash) = 64 AND token_hash REGEXP BINARY '^[0-9a-f]{64}$';
