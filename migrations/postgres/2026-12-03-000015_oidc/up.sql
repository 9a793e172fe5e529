-- Sign-in through upstream OpenID providers (users.providers of type oidc).

-- Who a provider says a user is: the provider's name, the id_token's iss and sub. The account a first login
-- created or joined; a user has at most one identity per provider. Deleting the user deletes its identities.
CREATE TABLE oidc_identities (
    provider VARCHAR(64) NOT NULL,
    issuer VARCHAR(255) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (provider, issuer, subject)
);
CREATE INDEX oidc_identities_user ON oidc_identities (user_id);

-- An authorization request on its way through the provider, by the SHA-256 of its state (256 random bits, also
-- held by the browser's cookie): the nonce and PKCE verifier it was sent with and where the browser goes after.
-- The callback deletes it, so a state works once; it lives 10 minutes.
CREATE TABLE oidc_flows (
    digest BYTEA PRIMARY KEY NOT NULL,
    provider VARCHAR(64) NOT NULL,
    nonce VARCHAR(64) NOT NULL,
    verifier VARCHAR(128) NOT NULL,
    next_url TEXT NOT NULL,
    xfer VARCHAR(8) NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expiry ON oidc_flows (expires_at);

-- A verified upstream login waiting for POST /api/login: the SHA-256 of its exchange pair (the "id_token" and
-- "access_code" the callback page hands over, 256 random bits), redeemed once within 2 minutes.
CREATE TABLE oidc_exchanges (
    digest BYTEA PRIMARY KEY NOT NULL,
    provider VARCHAR(64) NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX oidc_exchanges_expiry ON oidc_exchanges (expires_at);
