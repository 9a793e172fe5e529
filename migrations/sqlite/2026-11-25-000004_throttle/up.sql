-- Brute-force and rate limits shared by every replica. Names are SHA-256 hex of "<kind>:<identifier or address>",
-- so neither usernames nor client addresses are stored.

-- Token buckets as GCRA: one theoretical arrival time (Unix milliseconds) per bucket.
CREATE TABLE throttle_buckets (
    name VARCHAR(64) PRIMARY KEY NOT NULL,
    tat BIGINT NOT NULL
);

-- Failed logins per identifier (whether or not a user has that name): growing delays, then a lock.
CREATE TABLE login_failures (
    name VARCHAR(64) PRIMARY KEY NOT NULL,
    failures BIGINT NOT NULL,
    last_failure BIGINT NOT NULL,
    locked_until BIGINT NOT NULL
);
