-- PostgreSQL dialect of ../sqlite/20261125000005_template_extras.sql (same version, same schema): BIGINT for
-- INTEGER (every integer column is 64-bit, as in SQLite), identity columns for AUTOINCREMENT,
-- DOUBLE PRECISION for REAL, no WITHOUT ROWID; e-mail addresses are unique and looked up without
-- regard to case through an index on lower(email) (SQLite: COLLATE NOCASE).

-- Templates: datastreams that answer a device's sync after reconnect, and the dashboard layout.
ALTER TABLE datastreams ADD COLUMN sync_on_reconnect BIGINT NOT NULL DEFAULT 0
    CHECK (sync_on_reconnect IN (0, 1));
-- Dashboard layout as JSON: {"widgets": [...]}; the web console owns the widget shapes.
ALTER TABLE templates ADD COLUMN dashboard TEXT NOT NULL DEFAULT '{"widgets":[]}';
