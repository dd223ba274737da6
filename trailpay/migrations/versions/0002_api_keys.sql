-- Bearer API keys, stored hashed (sha256 of the secret); scopes and an optional partner binding.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    name        text NOT NULL,
    secret_hash text NOT NULL UNIQUE,
    scopes      text[] NOT NULL,
    partner_id  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
