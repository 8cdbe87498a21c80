-- PostgreSQL dialect of ../sqlite/20261126000003_metadata.sql (same version, same schema): BIGINT for
-- INTEGER (every integer column is 64-bit, as in SQLite), identity columns for AUTOINCREMENT,
-- DOUBLE PRECISION for REAL, no WITHOUT ROWID; e-mail addresses are unique and looked up without
-- regard to case through an index on lower(email) (SQLite: COLLATE NOCASE).

-- Metadata: typed fields a template declares (numbered 1, 2, … as `metaFieldId`), and the
-- values of each device (template fields and the stored system fields Hotspot Name, Time Zone).
CREATE TABLE template_metadata (
    template_id   TEXT    NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    id            BIGINT NOT NULL CHECK (id BETWEEN 1 AND 20),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind          TEXT    NOT NULL CHECK (kind IN ('text', 'number', 'email', 'phone', 'location', 'timezone', 'imei', 'iccid')),
    default_value TEXT,
    PRIMARY KEY (template_id, id),
    UNIQUE (template_id, name)
);

CREATE TABLE device_metadata (
    device_id  BIGINT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL CHECK (length(value) <= 255),
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, name)
);
