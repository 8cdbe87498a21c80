//! Server configuration: defaults < TOML file (`--config`) < `PINHOUSE_*`
//! environment variables < command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pinhouse_ingest::{CertSource, IngestConfig};
use pinhouse_storage::FsyncPolicy;
use pinhouse_storage::objects::ObjectLocation;

use crate::control::NotifyLimits;
use crate::notifier::NotifierConfig;
use serde::Deserialize;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./pinhouse-data";
/// Default HTTP address (REST, device HTTP API, SQL).
pub const DEFAULT_HTTP: &str = "0.0.0.0:8080";
/// Default plain-TCP Blynk hardware address (the legacy server's hardware port).
pub const DEFAULT_HARDWARE: &str = "0.0.0.0:8442";
/// Default TLS address: Blynk over TLS and HTTPS (the legacy server's 9443).
pub const DEFAULT_TLS: &str = "0.0.0.0:9443";
/// Default QUIC (UDP) address for Blynk sessions over QUIC.
pub const DEFAULT_QUIC: &str = "0.0.0.0:9443";

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
    /// Longest time (seconds) a value stays in memory before it is written to a Parquet file
    /// (memtables are also flushed at 1M rows): bounds WAL replay at start, and how soon the
    /// bucket of `--parquet-store` holds a value.
    #[arg(long, env = "PINHOUSE_FLUSH_INTERVAL_SECS")]
    pub flush_interval_secs: Option<u64>,
    /// Nice steps (0–19) the telemetry flush thread runs below the rest of the server, and the
    /// compaction thread 9 steps more, up to 19 (Linux), so that devices, live subscribers and
    /// queries get the CPU first, then flushing, then merging: a lower tail latency, at some
    /// maximum ingest rate when the machine is saturated. 0: both at the same priority.
    #[arg(long, env = "PINHOUSE_BACKGROUND_NICE")]
    pub background_nice: Option<u8>,
    /// Days of telemetry kept for organizations without a retention of their own
    /// (default: forever). Older day partitions are dropped, checked hourly.
    #[arg(long, env = "PINHOUSE_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// TLS listen address: Blynk over TLS and HTTPS share it.
    #[arg(long, env = "PINHOUSE_TLS")]
    pub tls: Option<SocketAddr>,
    /// QUIC (UDP) listen address for Blynk sessions over QUIC.
    #[arg(long, env = "PINHOUSE_QUIC")]
    pub quic: Option<SocketAddr>,
    /// PEM certificate chain for TLS and QUIC (default: a self-signed one
    /// generated into `<data dir>/tls/`).
    #[arg(long, env = "PINHOUSE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[arg(long, env = "PINHOUSE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Device connections held at once (all transports).
    #[arg(long, env = "PINHOUSE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Messages per second one device session may send on average (0 = no limit).
    #[arg(long, env = "PINHOUSE_MESSAGE_RATE")]
    pub message_rate: Option<u32>,
    /// Messages one device session may send in a burst above the rate.
    #[arg(long, env = "PINHOUSE_MESSAGE_BURST")]
    pub message_burst: Option<u32>,
    /// Login attempts per minute from one IP address (0 = no limit).
    #[arg(long, env = "PINHOUSE_LOGIN_RATE_PER_IP")]
    pub login_rate_per_ip: Option<u32>,
    /// Login attempts one IP address may make in a burst.
    #[arg(long, env = "PINHOUSE_LOGIN_BURST_PER_IP")]
    pub login_burst_per_ip: Option<u32>,
    /// Seconds a new device connection has to log in.
    #[arg(long, env = "PINHOUSE_LOGIN_TIMEOUT_SECS")]
    pub login_timeout_secs: Option<u64>,
    /// Largest frame body accepted from a device, in bytes (≤ 65535).
    #[arg(long, env = "PINHOUSE_MAX_FRAME_BODY")]
    pub max_frame_body: Option<usize>,
    /// Multi-node: send devices with a token unknown here to `HOST:PORT`.
    #[arg(long, env = "PINHOUSE_REDIRECT_UNKNOWN_TO")]
    pub redirect_unknown_to: Option<String>,
    /// Base URL devices reach the HTTP port at (`http://host:8080`), used in
    /// OTA download links (default: the HTTP address, 127.0.0.1 if unspecified).
    #[arg(long, env = "PINHOUSE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Lifetime of a per-device OTA download link, in seconds (default 3600).
    #[arg(long, env = "PINHOUSE_OTA_LINK_TTL_SECS")]
    pub ota_link_ttl_secs: Option<u64>,
    /// PostgreSQL wire-protocol listen address (psql, BI tools); off unless set.
    #[arg(long, env = "PINHOUSE_PG")]
    pub pg: Option<SocketAddr>,
    /// Object store for firmware binaries: `file://<dir>` or `s3://<bucket>/<prefix>`
    /// (credentials and endpoint from the AWS_* variables); default: the data directory.
    #[arg(long, env = "PINHOUSE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Bucket that also keeps every telemetry Parquet file and the catalog:
    /// `s3://<bucket>/<prefix>` (credentials and endpoint from the AWS_* variables) or
    /// `file://<dir>`; off unless set. A lost data directory is restored from it.
    #[arg(long, env = "PINHOUSE_PARQUET_STORE")]
    pub parquet_store: Option<String>,
    /// SMTP server for e-mail notifications: `smtp://host:port` (plain),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465`; off unless set.
    #[arg(long, env = "PINHOUSE_SMTP_URL")]
    pub smtp_url: Option<String>,
    /// Sender of e-mail notifications (default `pinhouse <pinhouse@localhost>`).
    #[arg(long, env = "PINHOUSE_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Notifications one organization may send per rolling hour (default 600).
    #[arg(long, env = "PINHOUSE_NOTIFY_PER_ORG_PER_HOUR")]
    pub notify_per_org_per_hour: Option<u32>,
    /// E-mails one address may receive per rolling hour (default 60).
    #[arg(long, env = "PINHOUSE_NOTIFY_PER_RECIPIENT_PER_HOUR")]
    pub notify_per_recipient_per_hour: Option<u32>,
    /// Longest an SQL query may run, in seconds (default 60).
    #[arg(long, env = "PINHOUSE_SQL_TIME_LIMIT_SECS")]
    pub sql_time_limit_secs: Option<u64>,
    /// Memory all running SQL queries may hold together, in MiB (default 1024).
    #[arg(long, env = "PINHOUSE_SQL_MEMORY_LIMIT_MB")]
    pub sql_memory_limit_mb: Option<usize>,
    /// Threads that run SQL queries, apart from the device and HTTP threads
    /// (default: half the cores, at least 1).
    #[arg(long, env = "PINHOUSE_QUERY_THREADS")]
    pub query_threads: Option<usize>,
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
    /// See [`ServeArgs::flush_interval_secs`].
    pub flush_interval_secs: Option<u64>,
    /// See [`ServeArgs::background_nice`].
    pub background_nice: Option<u8>,
    /// See [`ServeArgs::retention_days`].
    pub retention_days: Option<u32>,
    /// See [`ServeArgs::tls`].
    pub tls: Option<SocketAddr>,
    /// See [`ServeArgs::quic`].
    pub quic: Option<SocketAddr>,
    /// See [`ServeArgs::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`ServeArgs::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`ServeArgs::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`ServeArgs::message_rate`].
    pub message_rate: Option<u32>,
    /// See [`ServeArgs::message_burst`].
    pub message_burst: Option<u32>,
    /// See [`ServeArgs::login_rate_per_ip`].
    pub login_rate_per_ip: Option<u32>,
    /// See [`ServeArgs::login_burst_per_ip`].
    pub login_burst_per_ip: Option<u32>,
    /// See [`ServeArgs::login_timeout_secs`].
    pub login_timeout_secs: Option<u64>,
    /// See [`ServeArgs::max_frame_body`].
    pub max_frame_body: Option<usize>,
    /// See [`ServeArgs::redirect_unknown_to`].
    pub redirect_unknown_to: Option<String>,
    /// See [`ServeArgs::public_url`].
    pub public_url: Option<String>,
    /// See [`ServeArgs::ota_link_ttl_secs`].
    pub ota_link_ttl_secs: Option<u64>,
    /// See [`ServeArgs::pg`].
    pub pg: Option<SocketAddr>,
    /// See [`ServeArgs::object_store`].
    pub object_store: Option<String>,
    /// See [`ServeArgs::parquet_store`].
    pub parquet_store: Option<String>,
    /// See [`ServeArgs::smtp_url`].
    pub smtp_url: Option<String>,
    /// See [`ServeArgs::smtp_from`].
    pub smtp_from: Option<String>,
    /// See [`ServeArgs::notify_per_org_per_hour`].
    pub notify_per_org_per_hour: Option<u32>,
    /// See [`ServeArgs::notify_per_recipient_per_hour`].
    pub notify_per_recipient_per_hour: Option<u32>,
    /// See [`ServeArgs::sql_time_limit_secs`].
    pub sql_time_limit_secs: Option<u64>,
    /// See [`ServeArgs::sql_memory_limit_mb`].
    pub sql_memory_limit_mb: Option<usize>,
    /// See [`ServeArgs::query_threads`].
    pub query_threads: Option<usize>,
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
    /// Blynk TLS + HTTPS listen address.
    pub tls: SocketAddr,
    /// Blynk QUIC listen address (UDP).
    pub quic: SocketAddr,
    /// Certificate of the TLS and QUIC listeners.
    pub cert: CertSource,
    /// Limits and timeouts of device sessions.
    pub ingest: IngestConfig,
    /// Control-plane database URL.
    pub database_url: String,
    /// WAL fsync policy.
    pub fsync: FsyncPolicy,
    /// Longest time rows stay in the memtable before a flush to Parquet.
    pub flush_interval: Duration,
    /// Nice steps of the storage's flush thread (the compaction thread: 9 more, up to 19).
    pub background_nice: u8,
    /// Telemetry retention of organizations without one of their own (`None`: forever).
    pub default_retention: Option<Duration>,
    /// Base URL of the HTTP port as devices see it (`None`: derived from `http`).
    pub public_url: Option<String>,
    /// Lifetime of OTA download links.
    pub ota_link_ttl: Duration,
    /// PostgreSQL wire-protocol listen address, if enabled.
    pub pg: Option<SocketAddr>,
    /// Where firmware binaries are stored.
    pub object_store: ObjectLocation,
    /// Bucket that also keeps the telemetry Parquet files, if any.
    pub parquet_store: Option<ObjectLocation>,
    /// SMTP server and sender of e-mail notifications.
    pub notifier: NotifierConfig,
    /// Rate limits of notifications.
    pub notify_limits: NotifyLimits,
    /// Longest an SQL query may run.
    pub sql_time_limit: Duration,
    /// Memory all running SQL queries may hold together, in bytes.
    pub sql_memory_limit: usize,
    /// Threads of the query runtime.
    pub query_threads: usize,
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
        let flush_interval = match args.flush_interval_secs.or(file.flush_interval_secs) {
            None => Duration::from_secs(60),
            Some(secs @ 1..=86_400) => Duration::from_secs(secs),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "flush_interval_secs",
                    message: format!("{other} is not between 1 and 86400 seconds"),
                });
            }
        };
        let background_nice = match args.background_nice.or(file.background_nice) {
            None => 10,
            Some(n @ 0..=19) => n,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "background_nice",
                    message: format!("{other} is not between 0 and 19"),
                });
            }
        };
        let default_retention = match args.retention_days.or(file.retention_days) {
            None => None,
            Some(days @ 1..=crate::control::MAX_RETENTION_DAYS) => {
                Some(Duration::from_secs(86_400 * u64::from(days)))
            }
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: "retention_days",
                    message: format!(
                        "{other} is not between 1 and {} days",
                        crate::control::MAX_RETENTION_DAYS
                    ),
                });
            }
        };
        let tls = args
            .tls
            .or(file.tls)
            .unwrap_or_else(|| parse_default(DEFAULT_TLS));
        let quic = args
            .quic
            .or(file.quic)
            .unwrap_or_else(|| parse_default(DEFAULT_QUIC));
        let cert = match (
            args.tls_cert.or(file.tls_cert),
            args.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => CertSource::Files { cert, key },
            (None, None) => CertSource::SelfSigned {
                dir: data_dir.join("tls"),
                names: Vec::new(),
            },
            _ => {
                return Err(ConfigError::Invalid {
                    key: "tls_cert",
                    message: "tls_cert and tls_key must be given together".into(),
                });
            }
        };
        let mut ingest = IngestConfig::default();
        if let Some(v) = args.max_connections.or(file.max_connections) {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key: "max_connections",
                    message: "must be at least 1".into(),
                });
            }
            ingest.max_connections = v;
        }
        if let Some(v) = args.message_rate.or(file.message_rate) {
            ingest.message_rate = v;
        }
        if let Some(v) = args.message_burst.or(file.message_burst) {
            ingest.message_burst = v;
        }
        if let Some(v) = args.login_rate_per_ip.or(file.login_rate_per_ip) {
            ingest.login_rate_per_ip = v;
        }
        if let Some(v) = args.login_burst_per_ip.or(file.login_burst_per_ip) {
            ingest.login_burst_per_ip = v;
        }
        if let Some(v) = args.login_timeout_secs.or(file.login_timeout_secs) {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key: "login_timeout_secs",
                    message: "must be at least 1".into(),
                });
            }
            ingest.login_timeout = Duration::from_secs(v);
        }
        if let Some(v) = args.max_frame_body.or(file.max_frame_body) {
            if !(64..=65_535).contains(&v) {
                return Err(ConfigError::Invalid {
                    key: "max_frame_body",
                    message: format!("{v} is not within 64..=65535"),
                });
            }
            ingest.max_body = v;
        }
        if let Some(target) = args.redirect_unknown_to.or(file.redirect_unknown_to) {
            let parsed = target
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host.to_owned(), port.parse::<u16>().ok()?)))
                .filter(|(host, port)| !host.is_empty() && host.len() <= 63 && *port > 0);
            let Some(parsed) = parsed else {
                return Err(ConfigError::Invalid {
                    key: "redirect_unknown_to",
                    message: format!("`{target}` is not HOST:PORT (host at most 63 characters)"),
                });
            };
            ingest.redirect_unknown = Some(parsed);
        }
        let public_url = args.public_url.or(file.public_url);
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "public_url",
                message: format!("`{url}` must start with http:// or https://"),
            });
        }
        let ttl_secs = args
            .ota_link_ttl_secs
            .or(file.ota_link_ttl_secs)
            .unwrap_or(3600);
        if ttl_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "ota_link_ttl_secs",
                message: "must be at least 1".into(),
            });
        }
        let sql_time_limit_secs = args
            .sql_time_limit_secs
            .or(file.sql_time_limit_secs)
            .unwrap_or(60);
        if sql_time_limit_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "sql_time_limit_secs",
                message: "must be at least 1".into(),
            });
        }
        let sql_memory_limit_mb = args
            .sql_memory_limit_mb
            .or(file.sql_memory_limit_mb)
            .unwrap_or(1024);
        if sql_memory_limit_mb < 16 {
            return Err(ConfigError::Invalid {
                key: "sql_memory_limit_mb",
                message: "must be at least 16".into(),
            });
        }
        let query_threads = args
            .query_threads
            .or(file.query_threads)
            .unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
            });
        if query_threads == 0 {
            return Err(ConfigError::Invalid {
                key: "query_threads",
                message: "must be at least 1".into(),
            });
        }
        let location = |key: &'static str, text: String| {
            ObjectLocation::parse(&text).map_err(|e| ConfigError::Invalid {
                key,
                message: e.to_string(),
            })
        };
        let object_store = match args.object_store.or(file.object_store) {
            Some(text) => location("object_store", text)?,
            None => ObjectLocation::Local(data_dir.clone()),
        };
        let parquet_store = args
            .parquet_store
            .or(file.parquet_store)
            .map(|text| location("parquet_store", text))
            .transpose()?;
        let defaults = NotifyLimits::default();
        let notify_limits = NotifyLimits {
            per_org_per_hour: args
                .notify_per_org_per_hour
                .or(file.notify_per_org_per_hour)
                .unwrap_or(defaults.per_org_per_hour),
            per_recipient_per_hour: args
                .notify_per_recipient_per_hour
                .or(file.notify_per_recipient_per_hour)
                .unwrap_or(defaults.per_recipient_per_hour),
        };
        let notifier = NotifierConfig {
            smtp_url: args.smtp_url.or(file.smtp_url),
            from: args.smtp_from.or(file.smtp_from),
        };
        Ok(Self {
            data_dir,
            http,
            hardware,
            tls,
            quic,
            cert,
            ingest,
            database_url,
            fsync,
            flush_interval,
            background_nice,
            default_retention,
            public_url,
            ota_link_ttl: Duration::from_secs(ttl_secs),
            pg: args.pg.or(file.pg),
            object_store,
            parquet_store,
            notifier,
            notify_limits,
            sql_time_limit: Duration::from_secs(sql_time_limit_secs),
            sql_memory_limit: sql_memory_limit_mb.saturating_mul(1 << 20),
            query_threads,
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
        assert_eq!(cfg.tls, DEFAULT_TLS.parse().unwrap());
        assert!(
            matches!(cfg.cert, CertSource::SelfSigned { ref dir, .. } if dir == Path::new("/from/file/tls"))
        );
        assert_eq!(
            cfg.ingest.message_rate,
            IngestConfig::default().message_rate
        );
    }

    #[test]
    fn ingest_limits_come_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pinhouse.toml");
        std::fs::write(
            &file,
            "message_rate = 50\nmax_connections = 10\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n",
        )
        .unwrap();
        let cfg = ServerConfig::resolve(ServeArgs {
            config: Some(file),
            max_connections: Some(20),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(cfg.ingest.message_rate, 50);
        assert_eq!(cfg.ingest.max_connections, 20);
        assert!(matches!(cfg.cert, CertSource::Files { .. }));
        let err = ServerConfig::resolve(ServeArgs {
            tls_cert: Some("/c.pem".into()),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("together"), "{err}");
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
        let err = ServerConfig::resolve(ServeArgs {
            background_nice: Some(20),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("background_nice"), "{err}");
    }

    #[test]
    fn background_threads_default_to_nice_10() {
        let cfg = ServerConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(cfg.background_nice, 10);
        let cfg = ServerConfig::resolve(ServeArgs {
            background_nice: Some(0),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(cfg.background_nice, 0);
    }
}
