-- Back to SHA-256 hex.
UPDATE account_tokens
SET token_hash = LOWER(HEX(FROM_BASE64(CONCAT(REPLACE(REPLACE(token_hash, '-', '+'), '_', '/'), '='))))
WHERE CHAR_LENGTH(token_hash) = 43;
