DROP INDEX refresh_families_api_key;
ALTER TABLE refresh_families DROP COLUMN api_key_id;
ALTER TABLE refresh_families DROP COLUMN credential_kind;
ALTER TABLE claim_groups DROP COLUMN credentials;
DROP TABLE api_keys;
