-- A second factor: TOTP (RFC 6238) with single-use recovery codes.
-- totp_factors: one per user; the secret is encrypted at rest under the key-encryption key (as signing keys
-- are; base64 in the clear without one). confirmed_at NULL: an enrolment started and not yet confirmed.
-- last_step is the time step of the last accepted code: a code is accepted once, by a compare-and-set of this
-- column, so two replicas cannot both accept it. failures counts wrong codes in a row; locked_until is when
-- the next code may be tried (1 s after each wrong code, 5 minutes after five in a row).
CREATE TABLE totp_factors (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_step BIGINT NOT NULL DEFAULT 0,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
);

-- Recovery codes: the SHA-256 of each (80 random bits); a code is consumed by setting used_at where it is
-- still NULL, so it works once however many requests race with it.
CREATE TABLE recovery_codes (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest VARBINARY(32) NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, digest)
);

-- The proof of a login's first step (purpose 'login') or of a user who must enrol first ('enroll'), by the
-- SHA-256 of its 256-bit token; short-lived, single-use, at most 5 code attempts. context is what the
-- first step decided (JSON: the credential kind, filter_claims, required_claims).
CREATE TABLE mfa_tokens (
    digest VARBINARY(32) PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose VARCHAR(16) NOT NULL,
    context TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_tokens_expiry ON mfa_tokens (expires_at);

-- The second factor a session's login had ('otp', or 'mfa' for a recovery code): its tokens' amr.
ALTER TABLE refresh_families ADD COLUMN second_factor VARCHAR(8);
