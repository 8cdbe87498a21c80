-- Notifications: the webhooks of an organization, and the outbox of deliveries (e-mail,
-- webhook, push) that a background worker delivers with retries.

CREATE TABLE webhooks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id     INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    url        TEXT    NOT NULL CHECK (length(url) BETWEEN 8 AND 2000),
    -- Key of the HMAC-SHA256 signature header (64 hex characters); shown once, at creation.
    secret     TEXT    NOT NULL,
    -- Channels it carries: JSON array of "webhook", "push", "sms" (push and SMS go to a
    -- gateway behind a webhook).
    channels   TEXT    NOT NULL DEFAULT '["webhook"]',
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX webhooks_org ON webhooks(org_id);

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    device_id       INTEGER REFERENCES devices(id) ON DELETE SET NULL,
    event_id        INTEGER REFERENCES device_events(id) ON DELETE SET NULL,
    channel         TEXT    NOT NULL CHECK (channel IN ('email', 'webhook', 'push', 'sms')),
    -- The e-mail address (channel email) …
    recipient       TEXT,
    -- … or the webhook (other channels).
    webhook_id      INTEGER REFERENCES webhooks(id) ON DELETE CASCADE,
    subject         TEXT    NOT NULL,
    -- E-mail: the plain-text body; webhooks: the JSON payload, sent byte for byte.
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'rate_limited')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX notifications_due ON notifications(status, next_attempt_at);
CREATE INDEX notifications_org ON notifications(org_id, created_at);
CREATE INDEX notifications_recipient ON notifications(recipient, created_at);

-- Per device and event code: occurrences and the last notification, for a template event's
-- notify_every_nth and notify_period_secs.
CREATE TABLE event_notify_state (
    device_id        INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    code             TEXT    NOT NULL,
    occurrences      INTEGER NOT NULL DEFAULT 0,
    last_notified_at INTEGER,
    PRIMARY KEY (device_id, code)
) WITHOUT ROWID;
