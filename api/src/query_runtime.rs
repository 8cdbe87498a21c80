//! The query runtime: DataFusion runs on its own tokio runtime and threads, so
//! a heavy query cannot stall the threads that serve devices and the HTTP API.

use std::future::Future;
use std::time::Duration;

use tokio::runtime::{Builder, Handle, Runtime};

/// Owner of the query threads; shuts them down when dropped (also from async
/// code, without blocking).
#[derive(Debug)]
pub struct QueryRuntimeOwner(Option<Runtime>);

impl Drop for QueryRuntimeOwner {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Handle on the query runtime, cheap to clone, plus the per-query time limit.
#[derive(Debug, Clone)]
pub struct QueryRuntime {
    handle: Handle,
    time_limit: Duration,
}

impl QueryRuntime {
    /// Starts `threads` query worker threads named `pinhouse-query`.
    pub fn start(
        threads: usize,
        time_limit: Duration,
    ) -> std::io::Result<(QueryRuntime, QueryRuntimeOwner)> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("pinhouse-query")
            .enable_time()
            .build()?;
        let handle = runtime.handle().clone();
        Ok((
            QueryRuntime { handle, time_limit },
            QueryRuntimeOwner(Some(runtime)),
        ))
    }

    /// Runs `task` on the query threads.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(task);
    }

    /// Longest a query may run.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }
}
