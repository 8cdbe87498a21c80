-- Access management: scoped API tokens, invitations, password reset tokens, tags.

-- Actions an API token is limited to: JSON array of names from docs/permissions.md
-- (e.g. ["device.read"]); NULL = everything the user's role allows (sessions, unscoped tokens).
ALTER TABLE api_tokens ADD COLUMN scopes TEXT;

-- Invitations to join an organization; the secret is shown once, only its SHA-256 is stored.
CREATE TABLE invitations (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id              INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email               TEXT    NOT NULL COLLATE NOCASE,
    role                TEXT    NOT NULL CHECK (role IN ('admin', 'staff', 'user')),
    token_hash          TEXT    NOT NULL UNIQUE,
    invited_by_user_id  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    accepted_at         INTEGER,
    accepted_user_id    INTEGER REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX invitations_org_id ON invitations(org_id);

-- One-time password reset tokens (SHA-256 stored), short-lived.
CREATE TABLE password_resets (
    token_hash  TEXT    PRIMARY KEY NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
);
CREATE INDEX password_resets_user_id ON password_resets(user_id);

CREATE TABLE user_tags (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tag      TEXT    NOT NULL CHECK (length(tag) BETWEEN 1 AND 64),
    PRIMARY KEY (user_id, tag)
) WITHOUT ROWID;
CREATE INDEX user_tags_tag ON user_tags(tag);

CREATE TABLE device_tags (
    device_id  INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    tag        TEXT    NOT NULL CHECK (length(tag) BETWEEN 1 AND 64),
    PRIMARY KEY (device_id, tag)
) WITHOUT ROWID;
CREATE INDEX device_tags_tag ON device_tags(tag);
