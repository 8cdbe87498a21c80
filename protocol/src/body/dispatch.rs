//! [`Body`]: one typed view over any message body, chosen by command code.

use super::{
    Bridge, Email, Group, Hardware, HardwareSync, Internal, LogEvent, MultiProperty, Property,
    Redirect, ResolveEvent, fields,
};
use crate::command;
use crate::error::Result;

/// A message body parsed according to its command code, as received by a server (a `BRIDGE`
/// body carries the bridge pin; see [`Bridge`]). Bodies of commands this crate has no parser for
/// are returned as [`Body::Unknown`], not as errors.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    /// `LOGIN` (2) or `HW_LOGIN` (29): the raw auth token, exactly as sent.
    Login {
        /// Which of the two login codes was used.
        command: u8,
        /// Raw token bytes.
        token: &'a [u8],
    },
    /// `PING` (6); any body is ignored.
    Ping,
    /// `HARDWARE` (20).
    Hardware(Hardware<'a>),
    /// `BRIDGE` (15).
    Bridge(Bridge<'a>),
    /// `HARDWARE_SYNC` (16).
    HardwareSync(HardwareSync<'a>),
    /// `INTERNAL` (17).
    Internal(Internal<'a>),
    /// `PROPERTY` (19), one pin.
    Property(Property<'a>),
    /// `PROPERTY` (19), several pins.
    MultiProperty(MultiProperty<'a>),
    /// `GROUP` (21).
    Group(Group),
    /// `EVENT_LOG` (64).
    LogEvent(LogEvent<'a>),
    /// `EVENT_CLEAR` (65).
    ResolveEvent(ResolveEvent<'a>),
    /// `REDIRECT` (41).
    Redirect(Redirect<'a>),
    /// `DEBUG_PRINT` (55): raw text.
    DebugPrint {
        /// Raw text.
        text: &'a [u8],
    },
    /// `NOTIFY` (14), `TWEET` (12) or `SMS` (18): raw text.
    Text {
        /// Which of the three commands.
        command: u8,
        /// Raw text.
        text: &'a [u8],
    },
    /// `EMAIL` (13).
    Email(Email<'a>),
    /// Any other command code (including app-protocol codes): the raw body.
    Unknown {
        /// Command code.
        command: u8,
        /// Raw body.
        body: &'a [u8],
    },
}

impl<'a> Body<'a> {
    /// Parses `body` as the body of `command`. `RESPONSE` has no body and yields `Unknown`.
    pub fn parse(command: u8, body: &'a [u8]) -> Result<Self> {
        Ok(match command {
            command::LOGIN | command::HW_LOGIN => Body::Login {
                command,
                token: body,
            },
            command::PING => Body::Ping,
            command::HARDWARE => Body::Hardware(Hardware::parse(body)?),
            command::BRIDGE => Body::Bridge(Bridge::parse(body)?),
            command::HARDWARE_SYNC => Body::HardwareSync(HardwareSync::parse(body)?),
            command::INTERNAL => Body::Internal(Internal::parse(body)?),
            command::PROPERTY => {
                let second = fields(body).nth(1);
                if second.is_some_and(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit)) {
                    Body::MultiProperty(MultiProperty::parse(body)?)
                } else {
                    Body::Property(Property::parse(body)?)
                }
            }
            command::GROUP => Body::Group(Group::parse(body)?),
            command::EVENT_LOG => Body::LogEvent(LogEvent::parse(body)?),
            command::EVENT_CLEAR => Body::ResolveEvent(ResolveEvent::parse(body)?),
            command::REDIRECT => Body::Redirect(Redirect::parse(body)?),
            command::DEBUG_PRINT => Body::DebugPrint { text: body },
            command::NOTIFY | command::TWEET | command::SMS => Body::Text {
                command,
                text: body,
            },
            command::EMAIL => Body::Email(Email::parse(body)?),
            _ => Body::Unknown { command, body },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches() {
        assert_eq!(
            Body::parse(command::HW_LOGIN, b"tok").unwrap(),
            Body::Login {
                command: 29,
                token: b"tok"
            }
        );
        assert_eq!(Body::parse(command::PING, b"").unwrap(), Body::Ping);
        assert!(matches!(
            Body::parse(command::HARDWARE, b"vw\x001\x002").unwrap(),
            Body::Hardware(Hardware::VirtualWrite { pin: 1, .. })
        ));
        assert!(matches!(
            Body::parse(command::PROPERTY, b"1\x002\x00label\x00x").unwrap(),
            Body::MultiProperty(_)
        ));
        assert!(matches!(
            Body::parse(command::PROPERTY, b"1\x00label\x00x").unwrap(),
            Body::Property(_)
        ));
        assert_eq!(
            Body::parse(command::NOTIFY, b"hi").unwrap(),
            Body::Text {
                command: 14,
                text: b"hi"
            }
        );
        assert_eq!(
            Body::parse(99, b"x").unwrap(),
            Body::Unknown {
                command: 99,
                body: b"x"
            }
        );
        assert!(Body::parse(command::GROUP, b"z").is_err());
    }
}
