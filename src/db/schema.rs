//! The one diesel schema, shared by all three backends (the migrations keep them identical).

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Nullable<Text>,
        fname -> Text,
        lname -> Text,
        source -> Text,
        password_hash -> Nullable<Text>,
        password_salt -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        version -> BigInt,
    }
}

diesel::table! {
    claim_groups (id) {
        id -> BigInt,
        name -> Text,
        description -> Text,
        created_at -> BigInt,
        /// The kinds of credential whose logins get this group's claims, comma-separated (NULL: every kind).
        credentials -> Nullable<Text>,
    }
}

diesel::table! {
    claims (id) {
        id -> BigInt,
        name -> Text,
        short_name -> Text,
        value -> Text,
        description -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    user_claim_groups (user_id, claim_group_id) {
        user_id -> BigInt,
        claim_group_id -> BigInt,
    }
}

diesel::table! {
    claim_group_claims (claim_group_id, claim_id) {
        claim_group_id -> BigInt,
        claim_id -> BigInt,
    }
}

diesel::table! {
    group_links (id) {
        id -> BigInt,
        link_type -> Text,
        resource_spec -> Text,
        claim_group_id -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        public_jwk -> Text,
        private_key -> Text,
        rotation_step -> BigInt,
        publish_at -> BigInt,
        sign_from -> BigInt,
        expires_at -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        last_used_at -> BigInt,
        expires_at -> BigInt,
        refresh_count -> BigInt,
        filter_claims -> Nullable<Text>,
        revoked_at -> Nullable<BigInt>,
        revoked_reason -> Nullable<Text>,
        /// SHA-256 of the family's current refresh token (NULL: a session from before generations, whose
        /// current token is still a `refresh_tokens` row).
        current_digest -> Nullable<Binary>,
        /// The key of the tag every refresh token of the family carries.
        tag_key -> Nullable<Binary>,
        /// The current pair sealed for the tokens used within the reuse grace (`crypto::seal::grace`).
        grace -> Nullable<Binary>,
        /// When the last rotation was.
        rotated_at -> Nullable<BigInt>,
        /// The OAuth client that started the session (NULL: a Stoke `/api/login` session).
        client_id -> Nullable<Text>,
        /// The scope granted to that client, space-separated.
        scope -> Nullable<Text>,
        /// The kind of credential the session was started with (`crate::credential::Kind`).
        credential_kind -> Text,
        /// The API key the session was started with.
        api_key_id -> Nullable<Text>,
        /// The second factor of the session's login: `otp` (a TOTP code) or `mfa` (a recovery code).
        second_factor -> Nullable<Text>,
    }
}

diesel::table! {
    /// A user's TOTP factor; the secret encrypted at rest.
    totp_factors (user_id) {
        user_id -> BigInt,
        secret -> Text,
        created_at -> BigInt,
        confirmed_at -> Nullable<BigInt>,
        last_step -> BigInt,
        failures -> BigInt,
        locked_until -> BigInt,
    }
}

diesel::table! {
    /// Single-use recovery codes, by SHA-256.
    recovery_codes (user_id, digest) {
        user_id -> BigInt,
        digest -> Binary,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Proofs of a login's first step, or of a user who must enrol, by SHA-256.
    mfa_tokens (digest) {
        digest -> Binary,
        user_id -> BigInt,
        purpose -> Text,
        context -> Text,
        attempts -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// API keys: `tsk_<id>_<secret>`, the secret kept as its SHA-256.
    api_keys (id) {
        id -> Text,
        user_id -> BigInt,
        name -> Text,
        secret_digest -> Binary,
        /// A JSON array of claim short names (NULL: every claim).
        claim_filter -> Nullable<Text>,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Refresh tokens issued before generations (SHA-256 hex): each still refreshes once into the new form, and
    /// the table empties as their sessions end.
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
        successor_hash -> Nullable<Text>,
        successor_sealed -> Nullable<Text>,
    }
}

diesel::table! {
    dbinit_files (file_name, content_hash) {
        file_name -> Text,
        content_hash -> Text,
        applied_at -> BigInt,
    }
}

diesel::joinable!(user_claim_groups -> users (user_id));
diesel::joinable!(user_claim_groups -> claim_groups (claim_group_id));
diesel::joinable!(claim_group_claims -> claim_groups (claim_group_id));
diesel::joinable!(claim_group_claims -> claims (claim_id));
diesel::joinable!(group_links -> claim_groups (claim_group_id));
diesel::joinable!(refresh_families -> users (user_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(totp_factors -> users (user_id));
diesel::joinable!(oidc_identities -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    claim_groups,
    claims,
    user_claim_groups,
    claim_group_claims,
    group_links,
    signing_keys,
    refresh_families,
    refresh_tokens,
    dbinit_files,
    audit_log,
    oauth_clients,
    oauth_client_groups,
    revoked_tokens,
    api_keys,
    totp_factors,
    recovery_codes,
    mfa_tokens,
    oidc_identities,
    oidc_flows,
    oidc_exchanges,
);

diesel::table! {
    /// Who an upstream OpenID provider says a user is (see the `oidc` migration).
    oidc_identities (provider, issuer, subject) {
        provider -> Text,
        issuer -> Text,
        subject -> Text,
        user_id -> BigInt,
        created_at -> BigInt,
        last_login_at -> BigInt,
    }
}

diesel::table! {
    /// Authorization requests on their way through a provider, by the SHA-256 of their state.
    oidc_flows (digest) {
        digest -> Binary,
        provider -> Text,
        nonce -> Text,
        verifier -> Text,
        next_url -> Text,
        xfer -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    /// Verified upstream logins waiting for `/api/login`, by the SHA-256 of their exchange pair.
    oidc_exchanges (digest) {
        digest -> Binary,
        provider -> Text,
        user_id -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    audit_log (id) {
        id -> BigInt,
        at -> BigInt,
        actor -> Text,
        action -> Text,
        target -> Text,
        detail -> Text,
    }
}

diesel::table! {
    throttle_buckets (name) {
        name -> Text,
        tat -> BigInt,
    }
}

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        kind -> Text,
        user_id -> Nullable<BigInt>,
        payload -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    login_failures (name) {
        name -> Text,
        failures -> BigInt,
        last_failure -> BigInt,
        locked_until -> BigInt,
    }
}

diesel::table! {
    anonymous_links (anonymous_id) {
        anonymous_id -> Text,
        user_id -> BigInt,
        linked_at -> BigInt,
    }
}

diesel::table! {
    email_outbox (id) {
        id -> BigInt,
        recipient -> Text,
        subject -> Text,
        body_text -> Text,
        body_html -> Text,
        created_at -> BigInt,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        claimed_until -> BigInt,
        failed_at -> Nullable<BigInt>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    form_keys (id) {
        id -> Text,
        private_key -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// OAuth 2.0 clients; the secret only as SHA-256 digests.
    oauth_clients (client_id) {
        client_id -> Text,
        name -> Text,
        /// `confidential` or `public`.
        kind -> Text,
        /// Space-separated.
        grant_types -> Text,
        /// Space-separated.
        scopes -> Text,
        /// A JSON array.
        redirect_uris -> Text,
        audience -> Nullable<Text>,
        /// A JSON array of short names; NULL: every claim.
        claim_filter -> Nullable<Text>,
        access_token_ttl -> Nullable<BigInt>,
        refresh_token_ttl -> Nullable<BigInt>,
        jwt_profile -> Nullable<Text>,
        /// 1: may call `/oauth/introspect`.
        introspect -> BigInt,
        signing_alg -> Nullable<Text>,
        secret_digest -> Nullable<Binary>,
        /// The secret before the last rotation, valid until `previous_until`.
        previous_digest -> Nullable<Binary>,
        previous_until -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// The claim groups an OAuth client's own subject holds (`client_credentials`).
    oauth_client_groups (client_id, claim_group_id) {
        client_id -> Text,
        claim_group_id -> BigInt,
    }
}

diesel::table! {
    /// Access tokens revoked through `/oauth/revoke`, until they expire.
    revoked_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(oauth_client_groups -> oauth_clients (client_id));
diesel::joinable!(oauth_client_groups -> claim_groups (claim_group_id));
