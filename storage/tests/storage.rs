//! Integration tests of `pinhouse-storage` (one binary; topics in `tests/storage/`).

#[path = "storage/common.rs"]
mod common;

#[path = "storage/concurrency.rs"]
mod concurrency;
#[path = "storage/crash.rs"]
mod crash;
#[path = "storage/durability.rs"]
mod durability;
#[path = "storage/flush.rs"]
mod flush;
#[path = "storage/late_and_duplicates.rs"]
mod late_and_duplicates;
#[path = "storage/lifecycle.rs"]
mod lifecycle;
#[path = "storage/maintenance.rs"]
mod maintenance;
#[path = "storage/remote.rs"]
mod remote;
#[path = "storage/replay.rs"]
mod replay;
#[path = "storage/snapshot.rs"]
mod snapshot;
