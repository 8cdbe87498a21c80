//! Server configuration: defaults < TOML file (`--config`) < `PINHOUSE_*`
//! environment variables < command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pinhouse_storage::FsyncPolicy;
use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./pinhouse-data";
/// Default HTTP address (REST, device HTTP API, SQL).
pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
/// Default plain-TCP Blynk hardware address (the legacy server's hardware port).
pub const DEFAULT_HARDWARE: &str = "0.0.0.0:8442";

/// `pinhouse`: a self-hosted IoT platform for Blynk devices.
#[derive(Debug, Parser)]
#[command(name = "pinhouse", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every tier (ingest, storage, query, HTTP) in one process.
    Serve(ServeArgs),
}

/// Flags of `pinhouse serve`; each can also be set in the TOML file or the
/// environment.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "PINHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where telemetry (WAL, Parquet) and the embedded control-plane database live.
    #[arg(long, env = "PINHOUSE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address: REST API, Blynk device HTTP API, SQL.
    #[arg(long, env = "PINHOUSE_HTTP")]
    pub http: Option<SocketAddr>,
    /// Plain-TCP Blynk hardware listen address.
    #[arg(long, env = "PINHOUSE_HARDWARE")]
    pub hardware: Option<SocketAddr>,
    /// Control-plane database URL (default: SQLite file in the data dir).
    #[arg(long, env = "PINHOUSE_DATABASE_URL")]
    pub database_url: Option<String>,
    /// WAL fsync policy: `always`, `interval` (default) or `never`.
    #[arg(long, env = "PINHOUSE_FSYNC")]
    pub fsync: Option<String>,
    /// Interval of the `interval` fsync policy, in milliseconds.
    #[arg(long, env = "PINHOUSE_FSYNC_INTERVAL_MS")]
    pub fsync_interval_ms: Option<u64>,
}

/// The TOML file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`ServeArgs::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`ServeArgs::http`].
    pub http: Option<SocketAddr>,
    /// See [`ServeArgs::hardware`].
    pub hardware: Option<SocketAddr>,
    /// See [`ServeArgs::database_url`].
    pub database_url: Option<String>,
    /// See [`ServeArgs::fsync`].
    pub fsync: Option<String>,
    /// See [`ServeArgs::fsync_interval_ms`].
    pub fsync_interval_ms: Option<u64>,
}

/// Settings after merging all sources.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// HTTP listen address.
    pub http: SocketAddr,
    /// Blynk TCP listen address.
    pub hardware: SocketAddr,
    /// Control-plane database URL.
    pub database_url: String,
    /// WAL fsync policy.
    pub fsync: FsyncPolicy,
    /// First admin's e-mail (`PINHOUSE_ADMIN_EMAIL`), used on first start only.
    pub admin_email: Option<String>,
    /// First admin's password (`PINHOUSE_ADMIN_PASSWORD`), used on first start only.
    pub admin_password: Option<String>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File named by `--config`.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File named by `--config`.
        path: PathBuf,
        /// Cause.
        source: Box<toml::de::Error>,
    },
    /// A setting has a value outside its domain.
    #[error("invalid setting {key}: {message}")]
    Invalid {
        /// Setting name.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl ServerConfig {
    /// Merge flags/env (`args`) over the TOML file over the defaults.
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => Self::read_file(path)?,
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let http = args
            .http
            .or(file.http)
            .unwrap_or_else(|| parse_default(DEFAULT_HTTP));
        let hardware = args
            .hardware
            .or(file.hardware)
            .unwrap_or_else(|| parse_default(DEFAULT_HARDWARE));
        let database_url = args.database_url.or(file.database_url).unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("control.db").display()
            )
        });
        let fsync_name = args
            .fsync
            .or(file.fsync)
            .unwrap_or_else(|| "interval".into());
        let interval = Duration::from_millis(
            args.fsync_interval_ms
                .or(file.fsync_interval_ms)
                .unwrap_or(10),
        );
        let fsync = match fsync_name.as_str() {
            "always" => FsyncPolicy::Always,
            "interval" => FsyncPolicy::Interval(interval),
            "never" => FsyncPolicy::Never,
            other => {
                return Err(ConfigError::Invalid {
                    key: "fsync",
                    message: format!("`{other}` is not one of always, interval, never"),
                });
            }
        };
        Ok(Self {
            data_dir,
            http,
            hardware,
            database_url,
            fsync,
            admin_email: non_empty_env("PINHOUSE_ADMIN_EMAIL"),
            admin_password: non_empty_env("PINHOUSE_ADMIN_PASSWORD"),
        })
    }

    fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }
}

fn parse_default(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or_else(|_| unreachable!("default address {addr} parses"))
}

fn non_empty_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pinhouse.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\nhttp = \"127.0.0.1:9000\"\nfsync = \"always\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(file),
            http: Some("127.0.0.1:9100".parse().unwrap()),
            ..ServeArgs::default()
        };
        let cfg = ServerConfig::resolve(args).unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/from/file"));
        assert_eq!(cfg.http, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(cfg.hardware, DEFAULT_HARDWARE.parse().unwrap());
        assert_eq!(cfg.fsync, FsyncPolicy::Always);
        assert!(cfg.database_url.contains("/from/file/control.db"));
    }

    #[test]
    fn fsync_defaults_to_interval_10ms() {
        let cfg = ServerConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(cfg.fsync, FsyncPolicy::Interval(Duration::from_millis(10)));
        assert_eq!(cfg.fsync, pinhouse_storage::DEFAULT_FSYNC);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "htp = \"x\"\n").unwrap();
        let err = ServerConfig::resolve(ServeArgs {
            config: Some(file),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("invalid config file"), "{err}");
        let err = ServerConfig::resolve(ServeArgs {
            fsync: Some("sometimes".into()),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }
}
