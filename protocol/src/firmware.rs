//! The firmware info tag the Blynk library embeds in every firmware binary:
//! the bytes `blnkinf\0`, then `key\0value\0` pairs (the same pairs the device
//! sends in its `INTERNAL` info message after login), then one more `\0`.
//!
//! An OTA server reads the tag from an uploaded binary to learn the firmware
//! type (which must match the target template), the version and the build
//! date, and later compares them with what a device reports after it
//! re-connects.

use crate::body::DeviceInfo;

/// The bytes that open the tag.
pub const TAG_MAGIC: &[u8] = b"blnkinf\0";

/// Longest tag body accepted (the library's tag is a few hundred bytes).
pub const MAX_TAG_BODY: usize = 2048;

/// Why no usable tag was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FirmwareTagError {
    /// The binary holds no `blnkinf\0` marker.
    #[error("no Blynk firmware info tag (blnkinf) in the binary")]
    Missing,
    /// The marker is there but its pairs are not closed by an empty key within the size limit.
    #[error("the firmware info tag is not terminated within {MAX_TAG_BODY} bytes")]
    Unterminated,
    /// The tag lacks a key the server needs.
    #[error("the firmware info tag has no `{0}` entry")]
    MissingKey(&'static str),
}

/// Firmware identity read from a binary's info tag.
#[derive(Debug, Clone, PartialEq)]
pub struct FirmwareTag {
    /// Firmware type (`fw-type`), matched against the template's firmware type.
    pub fw_type: String,
    /// Firmware version (`mcu`, `ncp` or `fw`).
    pub version: String,
    /// Build date and time (`build`, `__DATE__ " " __TIME__`).
    pub build: String,
    /// Blynk library version (`blynk`), when present.
    pub library: Option<String>,
    /// Every field of the tag, as the info-message parser reads it.
    pub info: DeviceInfo,
}

/// The raw `key\0value\0…` body of the first info tag in `image`, without the
/// magic and without the closing empty key.
pub fn find_tag_body(image: &[u8]) -> Result<&[u8], FirmwareTagError> {
    let start = image
        .windows(TAG_MAGIC.len())
        .position(|w| w == TAG_MAGIC)
        .ok_or(FirmwareTagError::Missing)?
        + TAG_MAGIC.len();
    let rest = &image[start..image.len().min(start + MAX_TAG_BODY + 1)];
    // Fields are NUL-terminated; the tag ends at the first empty field.
    let mut pos = 0;
    while pos < rest.len() {
        let len = rest[pos..]
            .iter()
            .position(|&b| b == 0)
            .ok_or(FirmwareTagError::Unterminated)?;
        if len == 0 {
            return Ok(&rest[..pos]);
        }
        pos += len + 1;
    }
    Err(FirmwareTagError::Unterminated)
}

/// Read the firmware identity from a binary; `fw-type`, a version and `build`
/// are required.
pub fn parse_firmware_tag(image: &[u8]) -> Result<FirmwareTag, FirmwareTagError> {
    let info = DeviceInfo::parse(find_tag_body(image)?);
    Ok(FirmwareTag {
        fw_type: info
            .fw_type
            .clone()
            .ok_or(FirmwareTagError::MissingKey("fw-type"))?,
        version: info
            .firmware
            .clone()
            .ok_or(FirmwareTagError::MissingKey("mcu"))?,
        build: info
            .build
            .clone()
            .ok_or(FirmwareTagError::MissingKey("build"))?,
        library: info.library.clone(),
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(tag: &[u8]) -> Vec<u8> {
        let mut bin = vec![0xE9, 0x03, 0x02, 0x20, 0, 0, 0, 0];
        bin.extend(std::iter::repeat_n(0x5Au8, 300));
        bin.extend_from_slice(tag);
        bin.extend(std::iter::repeat_n(0xA5u8, 100));
        bin
    }

    #[test]
    fn reads_the_library_tag() {
        let bin = image(
            b"blnkinf\0mcu\x000.3.1\0fw-type\0TMPL1234abcd\0build\0Nov 25 2026 10:11:12\0blynk\x001.3.2\0h-beat\x0045\0buff-in\x001024\0\0",
        );
        let tag = parse_firmware_tag(&bin).unwrap();
        assert_eq!(tag.fw_type, "TMPL1234abcd");
        assert_eq!(tag.version, "0.3.1");
        assert_eq!(tag.build, "Nov 25 2026 10:11:12");
        assert_eq!(tag.library.as_deref(), Some("1.3.2"));
        assert_eq!(tag.info.heartbeat_secs, Some(45));
    }

    #[test]
    fn refuses_missing_unterminated_and_incomplete_tags() {
        assert_eq!(
            parse_firmware_tag(&image(b"no tag here")),
            Err(FirmwareTagError::Missing)
        );
        let mut endless = b"blnkinf\0mcu\x001.0\0".to_vec();
        endless.extend(std::iter::repeat_n(b'x', MAX_TAG_BODY + 10));
        assert_eq!(
            parse_firmware_tag(&endless),
            Err(FirmwareTagError::Unterminated)
        );
        assert_eq!(
            parse_firmware_tag(b"blnkinf\0mcu\x001.0\0build\0x\0"),
            Err(FirmwareTagError::Unterminated)
        );
        assert_eq!(
            parse_firmware_tag(&image(b"blnkinf\0mcu\x001.0\0build\0today\0\0")),
            Err(FirmwareTagError::MissingKey("fw-type"))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(tail in proptest::collection::vec(
            proptest::prop_oneof![proptest::strategy::Just(0u8), proptest::num::u8::ANY], 0..600)) {
            let mut bin = TAG_MAGIC.to_vec();
            bin.extend_from_slice(&tail);
            let _ = parse_firmware_tag(&bin);
            let _ = parse_firmware_tag(&tail);
        }
    }
}
