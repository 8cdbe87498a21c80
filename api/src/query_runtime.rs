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

    /// Runs `task` on the query threads within the time limit and waits for its output:
    /// `None` when the limit was reached (the task is dropped, which cancels a DataFusion
    /// query) or the runtime stopped.
    pub async fn run<F>(&self, task: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let limit = self.time_limit();
        self.spawn(async move {
            if let Ok(output) = tokio::time::timeout(limit, task).await {
                let _ = tx.send(output);
            }
        });
        rx.await.ok()
    }

    /// Longest a query may run.
    pub fn time_limit(&self) -> Duration {
        self.time_limit
    }
}
