-- Metadata: typed fields a template declares (numbered 1, 2, … as `metaFieldId`), and the
-- values of each device (template fields and the stored system fields Hotspot Name, Time Zone).
CREATE TABLE template_metadata (
    template_id   TEXT    NOT NULL REFERENCES templates(id) ON DELETE CASCADE,
    id            INTEGER NOT NULL CHECK (id BETWEEN 1 AND 20),
    name          TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind          TEXT    NOT NULL CHECK (kind IN ('text', 'number', 'email', 'phone', 'location', 'timezone', 'imei', 'iccid')),
    default_value TEXT,
    PRIMARY KEY (template_id, id),
    UNIQUE (template_id, name)
) WITHOUT ROWID;

CREATE TABLE device_metadata (
    device_id  INTEGER NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      TEXT    NOT NULL CHECK (length(value) <= 255),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, name)
) WITHOUT ROWID;
