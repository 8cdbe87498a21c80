//! The crate's error type.
//!
//! Every failure of the codec and of the body parsers is one variant of [`ProtocolError`]; nothing in
//! this crate panics on input bytes. "Need more bytes" is *not* an error: [`crate::Codec::decode`]
//! returns `Ok(None)` for it.

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, ProtocolError>;

/// Why a frame or a body was rejected.
///
/// Framing errors (`BodyTooLarge`, `ZeroMessageId`) leave the byte stream out of sync: the caller
/// must drop the connection. Body errors leave the stream intact: the caller may answer with a
/// `RESPONSE` status (usually [`crate::status::ILLEGAL_COMMAND`]) and carry on.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// The header announces a body longer than the configured maximum. Detected from the 5-byte
    /// header alone, before any of the body has arrived.
    #[error("frame body of {len} bytes exceeds the maximum of {max}")]
    BodyTooLarge {
        /// Length announced by the header.
        len: usize,
        /// Configured maximum ([`crate::Codec::max_body`]).
        max: usize,
    },
    /// A header carries message id 0, which no Blynk peer may send.
    #[error("message id 0 is invalid")]
    ZeroMessageId,
    /// A body does not have the shape its command requires.
    #[error("malformed body for command {command} ({}): {reason}", crate::command::name(*command))]
    MalformedBody {
        /// Command code of the frame whose body was rejected.
        command: u8,
        /// Short, static description of what is wrong.
        reason: &'static str,
    },
    /// A pin field is not a decimal number in 0–255.
    #[error("pin is not a decimal number in 0..=255")]
    InvalidPin,
    /// A numeric field (timestamp, port, heartbeat…) is not a valid decimal number of its type.
    #[error("invalid number in body of command {command} ({})", crate::command::name(*command))]
    InvalidNumber {
        /// Command code of the frame whose body was rejected.
        command: u8,
    },
    /// Encoding was asked for a body the 16-bit length field cannot express.
    #[error("body of {len} bytes cannot be encoded (the length field is 16 bits)")]
    BodyTooLongToEncode {
        /// Length of the body that was to be encoded.
        len: usize,
    },
    /// The device client received a command a Blynk device does not accept from a server.
    #[error("unexpected command {command} ({}) from the server", crate::command::name(*command))]
    UnexpectedCommand {
        /// The offending command code.
        command: u8,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_command() {
        let e = ProtocolError::MalformedBody {
            command: crate::command::HARDWARE,
            reason: "missing pin",
        };
        assert_eq!(
            e.to_string(),
            "malformed body for command 20 (HARDWARE): missing pin"
        );
        let e = ProtocolError::BodyTooLarge {
            len: 40_000,
            max: 32_767,
        };
        assert!(e.to_string().contains("40000"));
    }
}
