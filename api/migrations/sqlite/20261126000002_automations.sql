-- Automations: a trigger and the actions it runs (JSON, validated by the server), per
-- organization, with the record of their last firing.
CREATE TABLE automations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    enabled       INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    trigger       TEXT    NOT NULL,
    actions       TEXT    NOT NULL,
    cooldown_secs INTEGER NOT NULL DEFAULT 0 CHECK (cooldown_secs BETWEEN 0 AND 86400),
    created_by    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_fired_at INTEGER,
    fire_count    INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT
);
CREATE INDEX automations_org ON automations(org_id);
