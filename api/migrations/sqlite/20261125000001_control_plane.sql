-- pinhouse control plane, first schema.
--
-- Conventions:
-- * timestamps are INTEGER unix milliseconds (UTC); the API renders them as RFC 3339;
-- * ids that reach the telemetry store (organizations, devices) are INTEGER PRIMARY KEY
--   AUTOINCREMENT: they fit in u32 for a long time and are never reused after a delete,
--   so old telemetry can never be attributed to a new device;
-- * every tenant-owned row carries org_id; the API scopes every read and write by it.

CREATE TABLE organizations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for a root organization; sub-organizations form a tree.
    parent_id   INTEGER REFERENCES organizations(id),
    name        TEXT    NOT NULL CHECK (length(name) > 0),
    created_at  INTEGER NOT NULL
);
CREATE INDEX organizations_parent_id ON organizations(parent_id);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email          TEXT    NOT NULL COLLATE NOCASE UNIQUE CHECK (length(email) > 0),
    name           TEXT    NOT NULL DEFAULT '',
    -- PHC string of an argon2id hash.
    password_hash  TEXT    NOT NULL,
    role           TEXT    NOT NULL CHECK (role IN ('admin', 'staff', 'user')),
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at     INTEGER NOT NULL
);
CREATE INDEX users_org_id ON users(org_id);

-- Bearer tokens of users: login sessions and (later) long-lived API tokens.
-- Only a digest of the token is stored; the token itself is shown once.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL CHECK (kind IN ('session', 'api')),
    name        TEXT,
    created_at  INTEGER NOT NULL,
    -- NULL = never expires (API tokens only).
    expires_at  INTEGER
);
CREATE INDEX api_tokens_user_id ON api_tokens(user_id);
CREATE INDEX api_tokens_expires_at ON api_tokens(expires_at);

CREATE TABLE templates (
    -- Blynk-style template id: 'TMPL' + 8 alphanumerics; globally unique because
    -- devices send it in their firmware (BLYNK_TEMPLATE_ID).
    id           TEXT    PRIMARY KEY NOT NULL,
    org_id       INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL CHECK (length(name) > 0),
    description  TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    -- target of the devices (template_id, org_id) foreign key.
    UNIQUE (id, org_id)
);
CREATE INDEX templates_org_id ON templates(org_id);

CREATE TABLE datastreams (
    template_id    TEXT    NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    pin            INTEGER NOT NULL CHECK (pin BETWEEN 0 AND 255),
    name           TEXT    NOT NULL CHECK (length(name) > 0),
    kind           TEXT    NOT NULL CHECK (kind IN ('integer', 'double', 'string', 'enum', 'location')),
    min            REAL,
    max            REAL,
    units          TEXT,
    decimals       INTEGER CHECK (decimals BETWEEN 0 AND 255),
    default_value  TEXT,
    PRIMARY KEY (template_id, pin),
    CHECK (min IS NULL OR max IS NULL OR min <= max)
) WITHOUT ROWID;

CREATE TABLE devices (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id         INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    template_id    TEXT    NOT NULL,
    name           TEXT    NOT NULL CHECK (length(name) > 0),
    -- Blynk auth token: 32 lowercase hex characters (128 random bits).
    token          TEXT    NOT NULL UNIQUE,
    owner_user_id  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at     INTEGER NOT NULL,
    -- a device can only use a template of its own organization.
    FOREIGN KEY (template_id, org_id) REFERENCES templates(id, org_id)
);
CREATE INDEX devices_org_id ON devices(org_id);
CREATE INDEX devices_template_id ON devices(template_id, org_id);
