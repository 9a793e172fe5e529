-- Back to SHA-256 hex.
UPDATE account_tokens
SET token_hash = encode(decode(translate(token_hash, '-_', '+/') || '=', 'base64'), 'hex')
WHERE length(token_hash) = 43;
