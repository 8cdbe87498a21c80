//! `pinhouse-bench`: load generator for a running pinhouse server.
//!
//! Scenario `ingest`: creates a template and N devices through the REST API,
//! connects N real protocol sessions over TCP, streams `vw` frames as fast as
//! the sockets take them (several frames per write), then waits until SQL
//! sees every value, and reports sent and committed values per second.
//!
//! Scenario `connections`: holds N idle sessions against pinhouse or an MQTT
//! broker and reports the server's resident memory per session.
//!
//! Scenario `line`: sends the realistic data set ([`data`]) as InfluxDB line
//! protocol, to measure peers with the same data.
//!
//! Scenario `storage`: the storage engine in-process: values/s into WAL + memtable per fsync
//! policy, and bytes per point on disk for a realistic fleet.
//!
//! Scenario `query`: dashboard reads and data-team SQL over a large data set in-process,
//! optionally beside DuckDB.
//!
//! Scenario `mixed`: ingest, dashboard reads and SQL at once against one running server.
//!
//! Every scenario prints a summary table and, with `--json` / `--json-file`, a JSON report;
//! `ingest` and `mixed` draw PNG charts with `--chart-dir`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod chart;
mod connections;
mod data;
mod device;
mod fleet;
mod ingest;
mod latency;
mod line;
mod meter;
mod mixed;
mod output;
mod probe;
mod query;
mod report;
mod rest;
mod storage;
mod transport;

use clap::{Parser, Subcommand};

/// Load generator for pinhouse.
#[derive(Debug, Parser)]
#[command(name = "pinhouse-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Simulated devices stream virtual-pin values over TCP, TLS, WebSocket or QUIC.
    Ingest(ingest::IngestArgs),
    /// Hold many idle device sessions (pinhouse or an MQTT broker) and report
    /// the server's memory per session.
    Connections(connections::ConnectionsArgs),
    /// Send the realistic data set as InfluxDB line protocol over HTTP, to
    /// measure peers (VictoriaMetrics, InfluxDB) with the same data.
    Line(line::LineArgs),
    /// The storage engine in-process: write throughput per fsync policy, bytes per point.
    Storage(storage::StorageArgs),
    /// Dashboard reads and data-team SQL over a large data set in-process, optionally side by
    /// side with DuckDB on the same Parquet files.
    Query(query::QueryArgs),
    /// Ingest, dashboard reads (history, last values) and SQL at once against one running
    /// server: values/s and the latency of each request class.
    Mixed(mixed::MixedArgs),
    /// Write `report.md` from the JSON reports and charts of one results directory.
    Report(report::ReportArgs),
}

fn main() -> anyhow::Result<()> {
    pinhouse_storage::allocator::configure();
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.scenario {
        Scenario::Ingest(args) => runtime()?.block_on(ingest::run(args)),
        Scenario::Connections(args) => runtime()?.block_on(connections::run(args)),
        Scenario::Line(args) => runtime()?.block_on(line::run(args)),
        Scenario::Storage(args) => storage::run(args),
        Scenario::Query(args) => runtime()?.block_on(query::run(args)),
        Scenario::Mixed(args) => runtime()?.block_on(mixed::run(args)),
        Scenario::Report(args) => report::run(args).map(drop),
    }
}
