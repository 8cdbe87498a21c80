-- Templates: datastreams that answer a device's sync after reconnect, and the dashboard layout.
ALTER TABLE datastreams ADD COLUMN sync_on_reconnect INTEGER NOT NULL DEFAULT 0
    CHECK (sync_on_reconnect IN (0, 1));
-- Dashboard layout as JSON: {"widgets": [...]}; the web console owns the widget shapes.
ALTER TABLE templates ADD COLUMN dashboard TEXT NOT NULL DEFAULT '{"widgets":[]}';
