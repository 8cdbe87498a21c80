//! Command codes: the first byte of every frame header.
//!
//! The numbers are those of the Blynk hardware protocol (reference §3). Codes marked *legacy* are
//! only sent by old libraries against the legacy server; the codec decodes every code (0–255) as a
//! [`crate::Frame`] and leaves it to the session to decide which commands it serves.

/// Reply frame: the header's length field carries a status code and no body follows.
pub const RESPONSE: u8 = 0;
/// App protocol only (legacy `REGISTER`); never sent by devices.
pub const REGISTER: u8 = 1;
/// Device login, old code: body = auth token. Sent by C++ libraries before 2018-10 and by the
/// `blynklib` Python client (0.2.x).
pub const LOGIN: u8 = 2;
/// App protocol only (legacy `HARDWARE_CONNECTED`).
pub const HARDWARE_CONNECTED: u8 = 4;
/// Keep-alive; answered with `RESPONSE 200` carrying the same message id.
pub const PING: u8 = 6;
/// Legacy tweet (text body).
pub const TWEET: u8 = 12;
/// Legacy e-mail: `to\0subject\0body` or `subject\0body`.
pub const EMAIL: u8 = 13;
/// Legacy push notification (text body).
pub const NOTIFY: u8 = 14;
/// Legacy device-to-device bridge.
pub const BRIDGE: u8 = 15;
/// Ask the server to replay stored pin values.
pub const HARDWARE_SYNC: u8 = 16;
/// Internal sub-commands (`info`, `rtc`, `utc`, `meta`, `ota`, `dbg`, …).
pub const INTERNAL: u8 = 17;
/// Legacy SMS (text body).
pub const SMS: u8 = 18;
/// Widget / datastream property.
pub const PROPERTY: u8 = 19;
/// Pin operations (`vw`, `vr`, `dw`, `dr`, `aw`, `ar`, `pm`).
pub const HARDWARE: u8 = 20;
/// Group of writes sharing one timestamp (`b`, `t\0<ms>`, `e`).
pub const GROUP: u8 = 21;
/// Device login, current code: body = auth token.
pub const HW_LOGIN: u8 = 29;
/// Server tells the device to reconnect elsewhere: `host\0port`.
pub const REDIRECT: u8 = 41;
/// Text the device prints as `Server: <text>`.
pub const DEBUG_PRINT: u8 = 55;
/// Log an event: `code` or `code\0description`.
pub const EVENT_LOG: u8 = 64;
/// Resolve an event: `code` or `code\0all`.
pub const EVENT_CLEAR: u8 = 65;
/// App protocol only (legacy `RESOLVE_EVENT`); devices use [`EVENT_CLEAR`].
pub const APP_RESOLVE_EVENT: u8 = 75;

/// Human-readable name of a command code, for logs and error messages. Unknown codes give `"UNKNOWN"`.
pub fn name(code: u8) -> &'static str {
    match code {
        RESPONSE => "RESPONSE",
        REGISTER => "REGISTER",
        LOGIN => "LOGIN",
        HARDWARE_CONNECTED => "HARDWARE_CONNECTED",
        PING => "PING",
        TWEET => "TWEET",
        EMAIL => "EMAIL",
        NOTIFY => "NOTIFY",
        BRIDGE => "BRIDGE",
        HARDWARE_SYNC => "HARDWARE_SYNC",
        INTERNAL => "INTERNAL",
        SMS => "SMS",
        PROPERTY => "PROPERTY",
        HARDWARE => "HARDWARE",
        GROUP => "GROUP",
        HW_LOGIN => "HW_LOGIN",
        REDIRECT => "REDIRECT",
        DEBUG_PRINT => "DEBUG_PRINT",
        EVENT_LOG => "EVENT_LOG",
        EVENT_CLEAR => "EVENT_CLEAR",
        APP_RESOLVE_EVENT => "APP_RESOLVE_EVENT",
        _ => "UNKNOWN",
    }
}

/// `true` for both login codes ([`LOGIN`] 2 and [`HW_LOGIN`] 29).
pub fn is_login(code: u8) -> bool {
    code == LOGIN || code == HW_LOGIN
}

/// `true` for the codes a Blynk device accepts from a server (reference §3: 0, 29, 6, 41, 20, 15,
/// 17, 55). A device treats anything else as a broken link and reconnects, so a server must not
/// send other codes.
pub fn accepted_by_device(code: u8) -> bool {
    matches!(
        code,
        RESPONSE | HW_LOGIN | PING | REDIRECT | HARDWARE | BRIDGE | INTERNAL | DEBUG_PRINT
    )
}

/// `true` for codes a device may send to a server (both logins, ping, hardware, sync, internal,
/// property, group, events, bridge and the legacy notifications).
pub fn sent_by_device(code: u8) -> bool {
    matches!(
        code,
        RESPONSE
            | LOGIN
            | HW_LOGIN
            | PING
            | TWEET
            | EMAIL
            | NOTIFY
            | BRIDGE
            | HARDWARE_SYNC
            | INTERNAL
            | SMS
            | PROPERTY
            | HARDWARE
            | GROUP
            | EVENT_LOG
            | EVENT_CLEAR
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_known_codes() {
        assert_eq!(name(HW_LOGIN), "HW_LOGIN");
        assert_eq!(name(LOGIN), "LOGIN");
        assert_eq!(name(EVENT_CLEAR), "EVENT_CLEAR");
        assert_eq!(name(99), "UNKNOWN");
        for code in 0..=255u8 {
            if accepted_by_device(code) || sent_by_device(code) {
                assert_ne!(name(code), "UNKNOWN", "code {code}");
            }
        }
    }

    #[test]
    fn login_codes() {
        assert!(is_login(2) && is_login(29));
        assert!(!is_login(0) && !is_login(20));
    }
}
