-- Self-service accounts. Link tokens (registration and email confirmation, password reset) are stored only as
-- SHA-256 hex, used once, and expire. A pending registration lives here until its address confirms, so an
-- unconfirmed account is not a user and cannot log in.
CREATE TABLE account_tokens (
    token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
    kind VARCHAR(16) NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX account_tokens_user ON account_tokens (user_id, kind);
CREATE INDEX account_tokens_expiry ON account_tokens (expires_at);

-- Which anonymous token a registration presented (each can register one account).
CREATE TABLE anonymous_links (
    anonymous_id VARCHAR(64) PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    linked_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX anonymous_links_user ON anonymous_links (user_id);

-- Every message goes here first, in the transaction of the change that causes it; a worker sends it. A replica
-- owns a row while claimed_until is in the future, so two never send one message at once; a failure waits
-- next_attempt_at (exponential backoff). Sent rows are deleted; given-up rows keep only their error.
CREATE TABLE email_outbox (
    id BIGINT PRIMARY KEY NOT NULL,
    recipient VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    body_text TEXT NOT NULL,
    body_html TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    failed_at BIGINT,
    last_error TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX email_outbox_due ON email_outbox (next_attempt_at);

-- The RSA key for TokTok-style encrypted login/register bodies (registration.rsa_encryption), shared by every
-- replica: the first to start creates it.
CREATE TABLE form_keys (
    id VARCHAR(64) PRIMARY KEY NOT NULL,
    private_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
