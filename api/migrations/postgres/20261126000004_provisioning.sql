-- PostgreSQL dialect of ../sqlite/20261126000004_provisioning.sql (same version, same schema): BIGINT for
-- INTEGER (every integer column is 64-bit, as in SQLite), identity columns for AUTOINCREMENT,
-- DOUBLE PRECISION for REAL, no WITHOUT ROWID; e-mail addresses are unique and looked up without
-- regard to case through an index on lower(email) (SQLite: COLLATE NOCASE).

-- Provisioning and claiming.
-- Dynamic tokens are issued for a template when a device is provisioned (Blynk.Inject-style)
-- and work until `provision_expires_at` unless the device has logged in (`activated_at`).
-- Static-token devices are made in batches, unowned, each with a claim code a user redeems.
ALTER TABLE devices ADD COLUMN token_kind TEXT NOT NULL DEFAULT 'static'
    CHECK (token_kind IN ('static', 'dynamic'));
ALTER TABLE devices ADD COLUMN provision_expires_at BIGINT;
ALTER TABLE devices ADD COLUMN activated_at BIGINT;
ALTER TABLE devices ADD COLUMN claim_code TEXT;
ALTER TABLE devices ADD COLUMN claimed_at BIGINT;
CREATE UNIQUE INDEX devices_claim_code ON devices(claim_code) WHERE claim_code IS NOT NULL;
