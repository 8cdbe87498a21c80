//! Tags on devices and users: short labels (`floor-2`, `beta`) to group them, e.g. as the target
//! set of an automation or a filter of the device list.

use crate::control::Narrow;
use std::collections::BTreeSet;

use super::ControlPlane;
use super::error::{ControlError, Result};

/// Most tags on one device or user.
pub const MAX_TAGS: usize = 32;

/// Longest tag.
pub const MAX_TAG_LEN: usize = 64;

/// Whether `tag` is a valid tag: 1–64 characters, letters, digits and `_ - . :` or spaces inside.
pub fn valid_tag(tag: &str) -> bool {
    let n = tag.chars().count();
    (1..=MAX_TAG_LEN).contains(&n)
        && tag == tag.trim()
        && tag
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | ' '))
}

/// Trims, checks, de-duplicates and sorts a tag list.
pub fn normalize_tags(tags: &[String]) -> Result<Vec<String>> {
    let mut out = BTreeSet::new();
    for tag in tags {
        let tag = tag.trim();
        if !valid_tag(tag) {
            return Err(ControlError::validation(format!(
                "invalid tag {tag:?}: 1–{MAX_TAG_LEN} letters, digits, spaces or _ - . :"
            )));
        }
        out.insert(tag.to_owned());
    }
    if out.len() > MAX_TAGS {
        return Err(ControlError::validation(format!(
            "at most {MAX_TAGS} tags are allowed"
        )));
    }
    Ok(out.into_iter().collect())
}

impl ControlPlane {
    /// Replaces the tags of a device; returns them normalized.
    pub async fn set_device_tags(&self, device_id: u32, tags: &[String]) -> Result<Vec<String>> {
        let tags = normalize_tags(tags)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM device_tags WHERE device_id = $1")
            .bind(i64::from(device_id))
            .execute(&mut *tx)
            .await?;
        for tag in &tags {
            sqlx::query("INSERT INTO device_tags (device_id, tag) VALUES ($1, $2)")
                .bind(i64::from(device_id))
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(tags)
    }

    /// The tags of a device, sorted.
    pub async fn device_tags(&self, device_id: u32) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT tag FROM device_tags WHERE device_id = $1 ORDER BY tag")
                .bind(i64::from(device_id))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Replaces the tags of a user; returns them normalized.
    pub async fn set_user_tags(&self, user_id: u32, tags: &[String]) -> Result<Vec<String>> {
        let tags = normalize_tags(tags)?;
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM user_tags WHERE user_id = $1")
            .bind(i64::from(user_id))
            .execute(&mut *tx)
            .await?;
        for tag in &tags {
            sqlx::query("INSERT INTO user_tags (user_id, tag) VALUES ($1, $2)")
                .bind(i64::from(user_id))
                .bind(tag)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(tags)
    }

    /// The tags of a user, sorted.
    pub async fn user_tags(&self, user_id: u32) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT tag FROM user_tags WHERE user_id = $1 ORDER BY tag")
                .bind(i64::from(user_id))
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Ids of the devices of organization `org_id` that carry `tag`, by id (the target set of a
    /// tag-addressed action).
    pub async fn device_ids_with_tag(&self, org_id: u32, tag: &str) -> Result<Vec<u32>> {
        sqlx::query_scalar::<_, i64>(
            "SELECT d.id FROM devices d JOIN device_tags t ON t.device_id = d.id
             WHERE d.org_id = $1 AND t.tag = $2 ORDER BY d.id",
        )
        .bind(i64::from(org_id))
        .bind(tag)
        .fetch_all(&self.pool)
        .await?
        .narrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized() {
        let tags = normalize_tags(&[" beta ".into(), "floor-2".into(), "beta".into()]).unwrap();
        assert_eq!(tags, ["beta", "floor-2"]);
        for bad in ["", "a/b", &"x".repeat(65)] {
            assert!(normalize_tags(&[bad.to_owned()]).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(normalize_tags(&many).is_err());
    }
}
