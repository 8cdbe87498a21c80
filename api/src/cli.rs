//! Entry point shared by the `pinhouse` binary and the end-to-end tests.

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, ServerConfig};
use crate::server::ServeError;

/// Parse `args` (including the program name), set up logging and run.
pub fn run<I, T>(args: I) -> Result<(), ServeError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    init_logging();
    match cli.command {
        Command::Serve(args) => {
            let config = ServerConfig::resolve(args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("pinhouse")
                .build()
                .map_err(|source| ServeError::Io {
                    context: "cannot start the async runtime".into(),
                    source,
                })?;
            runtime.block_on(crate::server::serve(config))
        }
    }
}

/// Logs to stderr; `RUST_LOG` (e.g. `pinhouse=debug`) overrides the default `info`.
fn init_logging() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
