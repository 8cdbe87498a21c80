//! pinhouse-api (placeholder while the crates are built up)
pub mod control;
