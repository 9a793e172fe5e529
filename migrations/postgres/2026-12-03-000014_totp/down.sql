ALTER TABLE refresh_families DROP COLUMN second_factor;
DROP TABLE mfa_tokens;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
