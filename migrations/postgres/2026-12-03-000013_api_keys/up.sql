-- API keys (Keyosk's model): long-lived credentials a user owns, for scripts, CI jobs and devices. A key is
-- `tsk_<id>_<secret>`; only the SHA-256 of its secret (32 bytes) is kept: the secret is 256 random bits, not a
-- human password, so a digest is enough and a key login needs no slow hash. claim_filter is a JSON array of
-- short names (NULL: every claim the owner holds). Deleting the user deletes the keys.
CREATE TABLE api_keys (
    id VARCHAR(32) PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    secret_digest BYTEA NOT NULL,
    claim_filter TEXT,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    expires_at BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- A claim group may be limited to kinds of credential (comma-separated: password, api_key, ldap, oidc,
-- anonymous, client); NULL admits every kind, as before.
ALTER TABLE claim_groups ADD COLUMN credentials VARCHAR(255);

-- The kind of credential a session was started with (its claims are assembled for that kind at every
-- refresh), and the API key it was started with: revoking the key ends its sessions.
ALTER TABLE refresh_families ADD COLUMN credential_kind VARCHAR(16) NOT NULL DEFAULT 'password';
ALTER TABLE refresh_families ADD COLUMN api_key_id VARCHAR(32);
CREATE INDEX refresh_families_api_key ON refresh_families (api_key_id);

-- Sessions started before this migration by a directory login.
UPDATE refresh_families SET credential_kind = 'ldap'
WHERE user_id IN (SELECT id FROM users WHERE source LIKE 'LDAP%');
