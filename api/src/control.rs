//! Control plane (placeholder)
