//! Status codes carried by `RESPONSE` frames (reference §2).

/// Success: login accepted, ping answered, info acknowledged.
pub const OK: u16 = 200;
/// Flood limit or notification frequency limit hit.
pub const QUOTA_LIMIT: u16 = 1;
/// Malformed or unsupported hardware command.
pub const ILLEGAL_COMMAND: u16 = 2;
/// App protocol: user not registered.
pub const NOT_REGISTERED: u16 = 3;
/// Login repeated on an already logged-in connection; devices treat it like 200 at login.
pub const ALREADY_REGISTERED: u16 = 4;
/// Not authenticated; a device disconnects when it receives this.
pub const NOT_AUTHENTICATED: u16 = 5;
/// Not allowed (e.g. bridge to a foreign or unknown token).
pub const NOT_ALLOWED: u16 = 6;
/// Target device offline (bridge).
pub const DEVICE_NOT_IN_NETWORK: u16 = 7;
/// Legacy: project not running.
pub const NO_ACTIVE_DASHBOARD: u16 = 8;
/// Bad auth token at login.
pub const INVALID_TOKEN: u16 = 9;
/// Malformed body (e.g. a bad `property`).
pub const ILLEGAL_COMMAND_BODY: u16 = 11;
/// App protocol, legacy graph data failure.
pub const GET_GRAPH_DATA_EXCEPTION: u16 = 12;
/// Notification body empty or too long.
pub const NOTIFICATION_INVALID_BODY: u16 = 13;
/// No notification target configured.
pub const NOTIFICATION_NOT_AUTHORIZED: u16 = 14;
/// Notification (e.g. mail) could not be sent.
pub const NOTIFICATION_ERROR: u16 = 15;
/// Timeout (reserved).
pub const TIMEOUT: u16 = 16;
/// No data.
pub const NO_DATA: u16 = 17;
/// Device went offline.
pub const DEVICE_WENT_OFFLINE: u16 = 18;
/// Internal server error.
pub const SERVER_ERROR: u16 = 19;
/// Protocol version not supported.
pub const NOT_SUPPORTED_VERSION: u16 = 20;
/// Legacy app economy: energy limit.
pub const ENERGY_LIMIT: u16 = 21;
/// App protocol: Facebook user tried a password login.
pub const FACEBOOK_USER_LOGIN_WITH_PASS: u16 = 22;
/// Operation accepted.
pub const OPERATION_ACCEPT: u16 = 23;
/// Operation declined.
pub const OPERATION_DECLINE: u16 = 24;

/// Human-readable name of a status code; unknown codes give `"UNKNOWN"`.
pub fn name(status: u16) -> &'static str {
    match status {
        OK => "OK",
        QUOTA_LIMIT => "QUOTA_LIMIT",
        ILLEGAL_COMMAND => "ILLEGAL_COMMAND",
        NOT_REGISTERED => "NOT_REGISTERED",
        ALREADY_REGISTERED => "ALREADY_REGISTERED",
        NOT_AUTHENTICATED => "NOT_AUTHENTICATED",
        NOT_ALLOWED => "NOT_ALLOWED",
        DEVICE_NOT_IN_NETWORK => "DEVICE_NOT_IN_NETWORK",
        NO_ACTIVE_DASHBOARD => "NO_ACTIVE_DASHBOARD",
        INVALID_TOKEN => "INVALID_TOKEN",
        ILLEGAL_COMMAND_BODY => "ILLEGAL_COMMAND_BODY",
        GET_GRAPH_DATA_EXCEPTION => "GET_GRAPH_DATA_EXCEPTION",
        NOTIFICATION_INVALID_BODY => "NOTIFICATION_INVALID_BODY",
        NOTIFICATION_NOT_AUTHORIZED => "NOTIFICATION_NOT_AUTHORIZED",
        NOTIFICATION_ERROR => "NOTIFICATION_ERROR",
        TIMEOUT => "TIMEOUT",
        NO_DATA => "NO_DATA",
        DEVICE_WENT_OFFLINE => "DEVICE_WENT_OFFLINE",
        SERVER_ERROR => "SERVER_ERROR",
        NOT_SUPPORTED_VERSION => "NOT_SUPPORTED_VERSION",
        ENERGY_LIMIT => "ENERGY_LIMIT",
        FACEBOOK_USER_LOGIN_WITH_PASS => "FACEBOOK_USER_LOGIN_WITH_PASS",
        OPERATION_ACCEPT => "OPERATION_ACCEPT",
        OPERATION_DECLINE => "OPERATION_DECLINE",
        _ => "UNKNOWN",
    }
}

/// Whether a device accepts this status as a successful login (200, or 4 "already registered").
pub fn is_login_ok(status: u16) -> bool {
    status == OK || status == ALREADY_REGISTERED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(OK), "OK");
        assert_eq!(name(INVALID_TOKEN), "INVALID_TOKEN");
        assert_eq!(name(10), "UNKNOWN");
        assert!(is_login_ok(200) && is_login_ok(4) && !is_login_ok(9));
    }
}
