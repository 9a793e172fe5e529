-- A session's refresh state lives in its family row: a refresh token names its family and generation
-- (`<family>.<generation>.<secret and tag>`), and a refresh rewrites this one row instead of adding a token row,
-- so a session costs the same storage after 20 refreshes as after 200,000. The generation is `refresh_count`.
-- current_digest: SHA-256 (bytes) of the current token. tag_key: the key of the tag every token of the family
-- carries, so a token of an older generation is recognised as the family's own (a replay) and a string that only
-- names the family is not. grace: the current pair sealed under the current token, with the wraps that let the
-- tokens used within the reuse grace reach it (src/crypto/seal.rs); cleared by the sweep once the grace of the
-- last rotation (rotated_at) has passed.
-- refresh_tokens keeps only tokens issued before this migration: each still refreshes once, into the new form,
-- and the table empties as their sessions end.
ALTER TABLE refresh_families ADD COLUMN current_digest BYTEA;
ALTER TABLE refresh_families ADD COLUMN tag_key BYTEA;
ALTER TABLE refresh_families ADD COLUMN grace BYTEA;
ALTER TABLE refresh_families ADD COLUMN rotated_at BIGINT;
-- No index on rotated_at or grace here: an UPDATE that changes no indexed column can be a heap-only tuple
-- (HOT) update, whose old version is pruned within its page without waiting for VACUUM, and a refresh changes
-- both columns. Half of each page is left free so that the new version fits beside the old one. Without this
-- every refresh left a dead row version and an index entry per index behind, and the table grew with the
-- refreshes until autovacuum caught up (7 KB, then 16 KB per session in the bench). The sweep finds ended
-- graces with a scan instead.
ALTER TABLE refresh_families SET (fillfactor = 50);
