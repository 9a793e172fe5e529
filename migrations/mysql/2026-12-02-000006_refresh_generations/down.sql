-- Sessions whose tokens have the new form cannot be expressed in the old layout: they end.
DELETE FROM refresh_families WHERE current_digest IS NOT NULL;
DROP INDEX refresh_families_grace ON refresh_families;
ALTER TABLE refresh_families
    DROP COLUMN rotated_at,
    DROP COLUMN grace,
    DROP COLUMN tag_key,
    DROP COLUMN current_digest;
