-- Runtime state of devices as the ingest tier reports it, and the device event timeline.
--
-- device_status: one row per device that ever connected (upserted by ingest on login, info,
-- disconnect); kept apart from `devices` so frequent runtime updates never touch the row that
-- device CRUD writes.
CREATE TABLE device_status (
    device_id        INTEGER PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    online           INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1)),
    -- unix ms of the last login, the last disconnect, the last message seen.
    connected_at     INTEGER,
    disconnected_at  INTEGER,
    last_seen_at     INTEGER,
    -- From the `internal` info message sent after login (NULL = not reported).
    firmware         TEXT,
    firmware_type    TEXT,
    build            TEXT,
    library_version  TEXT,
    board            TEXT,
    cpu              TEXT,
    connection       TEXT,
    heartbeat_secs   INTEGER,
    buffer_in        INTEGER,
    reported_template_id TEXT,
    info_at          INTEGER
);

-- Events a template declares; a device may only log the codes of its template.
CREATE TABLE template_events (
    template_id        TEXT    NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    -- letters, digits, spaces, underscores; at most 50 characters; unique per template.
    code               TEXT    NOT NULL CHECK (length(code) BETWEEN 1 AND 50),
    name               TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    severity           TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical', 'content')),
    description        TEXT    NOT NULL DEFAULT '',
    -- Notification settings: JSON object {"email": bool, "push": bool, "webhook": bool}.
    notifications      TEXT    NOT NULL DEFAULT '{}',
    -- Notify at most once per this many seconds (NULL = no period limit) …
    notify_period_secs INTEGER CHECK (notify_period_secs IS NULL OR notify_period_secs > 0),
    -- … and only for every Nth occurrence (NULL or 1 = every one).
    notify_every_nth   INTEGER CHECK (notify_every_nth IS NULL OR notify_every_nth > 0),
    PRIMARY KEY (template_id, code)
) WITHOUT ROWID;

-- The device timeline: events logged by the device (`logEvent`, protocol or HTTP), by the
-- server (online, offline, OTA) and resolutions.
CREATE TABLE device_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id    INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    -- 'device': logged by the device; 'system': online / offline / OTA, logged by the server.
    source       TEXT    NOT NULL CHECK (source IN ('device', 'system')),
    code         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    severity     TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical', 'content')),
    description  TEXT,
    created_at   INTEGER NOT NULL,
    resolved_at  INTEGER,
    -- NULL when resolved by the device itself.
    resolved_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX device_events_timeline ON device_events(device_id, created_at);
CREATE INDEX device_events_open ON device_events(device_id, code) WHERE resolved_at IS NULL;

-- Widget properties a device set (`setProperty`, HTTP `update/property`): the latest value of
-- each (pin, property), values as a JSON array of strings.
CREATE TABLE device_properties (
    device_id   INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    pin         INTEGER NOT NULL CHECK (pin BETWEEN 0 AND 255),
    property    TEXT    NOT NULL CHECK (length(property) BETWEEN 1 AND 64),
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (device_id, pin, property)
) WITHOUT ROWID;
