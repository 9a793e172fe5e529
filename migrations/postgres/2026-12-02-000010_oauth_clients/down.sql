-- The sessions of OAuth clients end with their clients.
DELETE FROM refresh_families WHERE client_id IS NOT NULL;
DROP INDEX refresh_families_client;
ALTER TABLE refresh_families DROP COLUMN scope;
ALTER TABLE refresh_families DROP COLUMN client_id;
DROP TABLE revoked_tokens;
DROP TABLE oauth_client_groups;
DROP TABLE oauth_clients;
