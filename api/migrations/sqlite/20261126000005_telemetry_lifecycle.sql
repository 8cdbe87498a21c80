-- Telemetry lifecycle.
-- An organization's retention of telemetry, in days (NULL: the server's default, see
-- `--retention-days`); whole day partitions older than it are dropped.
ALTER TABLE organizations ADD COLUMN retention_days INTEGER
    CHECK (retention_days IS NULL OR retention_days BETWEEN 1 AND 36500);
-- Devices whose telemetry is still to be deleted from the store: a row is added in the
-- transaction that deletes the device and removed once its rows are gone from every file.
CREATE TABLE telemetry_deletions (
    org_id       INTEGER NOT NULL,
    device_id    INTEGER NOT NULL,
    requested_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, device_id)
);
