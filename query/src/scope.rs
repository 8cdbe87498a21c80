//! The set of organizations a query may read.

/// Organizations whose rows a query may see. Built by the caller from the
/// authenticated principal (its organization and, later, its sub-organizations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgScope {
    org_ids: Vec<u32>,
}

impl OrgScope {
    /// Scope of exactly one organization.
    pub fn single(org_id: u32) -> Self {
        Self {
            org_ids: vec![org_id],
        }
    }

    /// Scope of several organizations (duplicates removed, sorted).
    pub fn many(mut org_ids: Vec<u32>) -> Self {
        org_ids.sort_unstable();
        org_ids.dedup();
        Self { org_ids }
    }

    /// The organizations, sorted ascending.
    pub fn org_ids(&self) -> &[u32] {
        &self.org_ids
    }

    /// Whether rows of `org_id` are visible.
    pub fn contains(&self, org_id: u32) -> bool {
        self.org_ids.binary_search(&org_id).is_ok()
    }
}
