-- Provisioning and claiming.
-- Dynamic tokens are issued for a template when a device is provisioned (Blynk.Inject-style)
-- and work until `provision_expires_at` unless the device has logged in (`activated_at`).
-- Static-token devices are made in batches, unowned, each with a claim code a user redeems.
ALTER TABLE devices ADD COLUMN token_kind TEXT NOT NULL DEFAULT 'static'
    CHECK (token_kind IN ('static', 'dynamic'));
ALTER TABLE devices ADD COLUMN provision_expires_at INTEGER;
ALTER TABLE devices ADD COLUMN activated_at INTEGER;
ALTER TABLE devices ADD COLUMN claim_code TEXT;
ALTER TABLE devices ADD COLUMN claimed_at INTEGER;
CREATE UNIQUE INDEX devices_claim_code ON devices(claim_code) WHERE claim_code IS NOT NULL;
