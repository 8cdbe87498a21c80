-- Audit log of user actions: every authenticated request that changes something.
-- user/org ids are kept as plain values (no foreign keys): entries outlive deleted users.
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    user_id  INTEGER NOT NULL,
    -- e-mail at the time of the action.
    email    TEXT    NOT NULL,
    -- organization of the user at the time of the action.
    org_id   INTEGER NOT NULL,
    method   TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    status   INTEGER NOT NULL
);
CREATE INDEX audit_log_org ON audit_log(org_id, id);
