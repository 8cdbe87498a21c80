//! Integration tests of `pinhouse-storage` (one binary; topics in `tests/storage/`).

#[path = "storage/common.rs"]
mod common;

#[path = "storage/concurrency.rs"]
mod concurrency;
#[path = "storage/crash.rs"]
mod crash;
#[path = "storage/flush.rs"]
mod flush;
#[path = "storage/lifecycle.rs"]
mod lifecycle;
#[path = "storage/replay.rs"]
mod replay;
#[path = "storage/snapshot.rs"]
mod snapshot;
