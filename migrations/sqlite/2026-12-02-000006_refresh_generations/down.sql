-- Sessions whose tokens have the new form cannot be expressed in the old layout: they end.
DELETE FROM refresh_families WHERE current_digest IS NOT NULL;
DROP INDEX refresh_families_grace;
ALTER TABLE refresh_families DROP COLUMN rotated_at;
ALTER TABLE refresh_families DROP COLUMN grace;
ALTER TABLE refresh_families DROP COLUMN tag_key;
ALTER TABLE refresh_families DROP COLUMN current_digest;
