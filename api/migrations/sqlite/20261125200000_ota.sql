-- OTA firmware updates (Blynk.Air-style shipments).
--
-- Firmware binaries live in the data directory (`firmware/<sha256>.bin`); this table keeps what
-- their Blynk info tag says and their checksums. A shipment sends one firmware to a set of
-- devices in cohorts; each device's progress is one row of ota_shipment_devices.

CREATE TABLE firmware (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    template_id TEXT    NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    file_name   TEXT    NOT NULL,
    fw_type     TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    build       TEXT    NOT NULL,
    library     TEXT,
    size        INTEGER NOT NULL CHECK (size > 0),
    md5         TEXT    NOT NULL,
    sha256      TEXT    NOT NULL,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX firmware_org_id ON firmware(org_id);

CREATE TABLE ota_shipments (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    firmware_id        INTEGER NOT NULL REFERENCES firmware(id),
    name               TEXT    NOT NULL,
    status             TEXT    NOT NULL
                       CHECK (status IN ('running', 'paused', 'cancelled', 'halted', 'completed')),
    -- Why the shipment halted (health gate) or was cancelled.
    status_reason      TEXT,
    -- JSON array of cumulative percentages of the target devices, ending with 100.
    cohorts            TEXT    NOT NULL,
    current_cohort     INTEGER NOT NULL DEFAULT 0,
    -- Largest fraction of a cohort's devices that may fail before the shipment halts.
    failure_threshold  REAL    NOT NULL CHECK (failure_threshold BETWEEN 0 AND 1),
    -- A device must come back with the new firmware within this time after the signal.
    device_timeout_ms  INTEGER NOT NULL CHECK (device_timeout_ms > 0),
    -- After the new firmware reports, the device must send data within this time.
    health_grace_ms    INTEGER NOT NULL CHECK (health_grace_ms >= 0),
    attempts_limit     INTEGER NOT NULL CHECK (attempts_limit > 0),
    -- Minutes after midnight (UTC) during which signals are sent; NULL = any time.
    window_start_min   INTEGER CHECK (window_start_min BETWEEN 0 AND 1439),
    window_end_min     INTEGER CHECK (window_end_min BETWEEN 0 AND 1439),
    created_by         INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX ota_shipments_org_id ON ota_shipments(org_id);
CREATE INDEX ota_shipments_status ON ota_shipments(status);

CREATE TABLE ota_shipment_devices (
    shipment_id    INTEGER NOT NULL REFERENCES ota_shipments(id) ON DELETE CASCADE,
    device_id      INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    cohort         INTEGER NOT NULL,
    status         TEXT    NOT NULL
                   CHECK (status IN ('pending', 'sent', 'downloading', 'success', 'failed', 'timed_out')),
    reason         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    -- SHA-256 (hex) of the per-device download token of the current attempt.
    link_hash      TEXT UNIQUE,
    link_expires_at INTEGER,
    bytes_sent     INTEGER NOT NULL DEFAULT 0,
    downloads      INTEGER NOT NULL DEFAULT 0,
    sent_at        INTEGER,
    downloaded_at  INTEGER,
    reported_at    INTEGER,
    finished_at    INTEGER,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (shipment_id, device_id)
) WITHOUT ROWID;
CREATE INDEX ota_shipment_devices_device ON ota_shipment_devices(device_id);

