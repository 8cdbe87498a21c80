//! `pinhouse-bench report`: the Markdown report of one results directory.
//!
//! Reads the JSON reports a full run wrote there (`ingest-<transport>.json`, `ingest-fleet.json`,
//! `ingest-live.json`, `connections.json`, `mixed.json`, `storage.json`, `query.json` and the
//! peers' `peer-<name>.json`), and writes `report.md` beside them: the machine, every target of the
//! ingest, storage and query issues marked met or not met, ratios against the peers measured in
//! the same run, and the PNG charts found in the directory. A missing file leaves its rows out
//! (and says so); nothing is filled in that was not measured.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Flags of `pinhouse-bench report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Directory holding the JSON reports (and charts) of one run; `report.md` is written there.
    #[arg(long)]
    results: PathBuf,
    /// A line of context printed under the title (build, commit, what else ran).
    #[arg(long, default_value = "")]
    note: String,
}

fn load(dir: &Path, name: &str) -> Result<Option<Value>> {
    let path = dir.join(name);
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // Peer scripts' files are pure JSON; tolerate a table printed before the JSON object.
    let start = text
        .find('{')
        .with_context(|| format!("{} holds no JSON", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text[start..])
            .with_context(|| format!("parsing {}", path.display()))?,
    ))
}

/// A target verdict.
fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**not met**" }
}

fn num(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_f64()
}

use crate::meter::si;

/// One row of the targets table.
struct Target {
    area: &'static str,
    measure: String,
    value: Option<(f64, String)>,
    target: &'static str,
    met: fn(f64) -> bool,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cores} cores ({cpu}), {mem} RAM; load average at report time {}",
        load.join(" ")
    )
}

/// Writes `report.md`; returns its path.
pub fn run(args: ReportArgs) -> Result<PathBuf> {
    let dir = &args.results;
    let mut md = String::new();
    writeln!(md, "# pinhouse benchmark report\n")?;
    if !args.note.is_empty() {
        writeln!(md, "{}\n", args.note)?;
    }
    writeln!(md, "Machine: {}.\n", machine())?;

    // Ingest runs: one per transport (pipelined), then over TCP the fleet run (one frame per
    // write) and the run paced at half the TCP rate with the live probe.
    let runs = [
        ("tcp", "tcp"),
        ("tls", "tls"),
        ("ws", "ws"),
        ("quic", "quic"),
        ("http", "http"),
        ("fleet", "tcp, one frame per write"),
        ("live", "tcp at half load, live probe"),
    ];
    let ingest: Vec<(&str, &str, Value)> = runs
        .iter()
        .filter_map(|(file, label)| {
            load(dir, &format!("ingest-{file}.json"))
                .transpose()
                .map(|r| r.map(|v| (*file, *label, v)))
        })
        .collect::<Result<_>>()?;
    let ingest_run = |name: &str| {
        ingest
            .iter()
            .find(|(file, _, _)| *file == name)
            .map(|(_, _, v)| v)
    };
    let committed =
        |name: &str| ingest_run(name).and_then(|v| num(v, &["committed_values_per_sec"]));
    let connections = load(dir, "connections.json")?;
    let mixed = load(dir, "mixed.json")?;
    let storage = load(dir, "storage.json")?;
    let storage_fleet = load(dir, "storage-fleet.json")?;
    let query = load(dir, "query.json")?;
    let peers: Vec<(&str, Option<Value>)> = ["victoriametrics", "influxdb", "mosquitto"]
        .iter()
        .map(|p| Ok((*p, load(dir, &format!("peer-{p}.json"))?)))
        .collect::<Result<_>>()?;
    let peer = |name: &str| {
        peers
            .iter()
            .find(|(p, _)| *p == name)
            .and_then(|(_, v)| v.as_ref())
    };

    // Targets.
    let tcp = committed("tcp");
    let of_tcp = |name: &str| Some(committed(name)? / tcp?);
    let live = ingest_run("live");
    let interval_write = storage.as_ref().and_then(|s| {
        s["throughput"]
            .as_array()?
            .iter()
            .find(|r| r["policy"] == "interval")
            .and_then(|r| r["values_per_s"].as_f64())
    });
    let q = query.as_ref();
    let sql_worst = q.and_then(|q| {
        q["sql"]
            .as_array()?
            .iter()
            .skip(1)
            .filter_map(|r| r["ratio_to_duckdb"].as_f64())
            .reduce(f64::max)
    });
    let fleet_hourly = q.and_then(|q| q["sql"].get(0)?["seconds"].as_f64());
    let ms = |x: f64| format!("{x:.2} ms");
    let targets = [
        Target {
            area: "ingest",
            measure: "committed values/s over TCP, pipelined writes".into(),
            value: tcp.map(|x| (x, si(x))),
            target: "≥ 2 M/s",
            met: |x| x >= 2e6,
        },
        Target {
            area: "ingest",
            measure: format!(
                "committed values/s from {} devices, one frame per write",
                ingest_run("fleet").map_or("?".into(), |v| v["devices"].to_string())
            ),
            value: committed("fleet").map(|x| (x, si(x))),
            target: "≥ 300 K/s from 10,000 devices",
            met: |x| x >= 3e5,
        },
        Target {
            area: "ingest",
            measure: format!(
                "device → live subscriber p99, at {} of the TCP rate",
                live.and_then(|_| of_tcp("live"))
                    .map_or("?".into(), |r| format!("{:.0}%", r * 100.0))
            ),
            value: live
                .and_then(|v| num(v, &["live_latency", "p99_ms"]))
                .map(|x| (x, ms(x))),
            target: "≤ 5 ms at half of maximum load",
            met: |x| x <= 5.0,
        },
        Target {
            area: "ingest",
            measure: "QUIC committed values/s / TCP".into(),
            value: of_tcp("quic").map(|r| (r, format!("{:.0}%", r * 100.0))),
            target: "≥ 50%",
            met: |r| r >= 0.5,
        },
        Target {
            area: "ingest",
            measure: "server memory per idle session".into(),
            value: connections
                .as_ref()
                .and_then(|c| num(c, &["bytes_per_session"]))
                .map(|x| (x, format!("{x:.0} bytes"))),
            target: "≤ 2 KB",
            met: |x| x <= 2048.0,
        },
        Target {
            area: "storage",
            measure: "values/s into WAL + memtable (fsync interval)".into(),
            value: interval_write.map(|x| (x, si(x))),
            target: "≥ 5 M/s",
            met: |x| x >= 5e6,
        },
        Target {
            area: "storage",
            measure: "bytes per point after compaction".into(),
            value: storage
                .as_ref()
                .and_then(|s| num(s, &["size", "compacted_bytes_per_point"]))
                .map(|x| (x, format!("{x:.3}"))),
            target: "≤ 1.0",
            met: |x| x <= 1.0,
        },
        Target {
            area: "query",
            measure: "history, 24 h at 1,440 points, p50".into(),
            value: q
                .and_then(|q| num(q, &["dashboard", "history_24h_1440", "p50_us"]))
                .map(|us| (us / 1000.0, ms(us / 1000.0))),
            target: "≤ 2 ms",
            met: |x| x <= 2.0,
        },
        Target {
            area: "query",
            measure: "history, 1 year at 1,000 points, p50".into(),
            value: q
                .and_then(|q| num(q, &["dashboard", "history_1y_1000", "p50_us"]))
                .map(|us| (us / 1000.0, ms(us / 1000.0))),
            target: "≤ 20 ms",
            met: |x| x <= 20.0,
        },
        Target {
            area: "query",
            measure: "last value of a pin, p99".into(),
            value: q
                .and_then(|q| num(q, &["dashboard", "last_value_ns", "p99"]))
                .map(|ns| (ns / 1000.0, format!("{:.2} µs", ns / 1000.0))),
            target: "≤ 100 µs",
            met: |x| x <= 100.0,
        },
        Target {
            area: "query",
            measure: "fleet-wide hourly average per device, one day".into(),
            value: fleet_hourly.map(|s| (s, format!("{s:.3} s"))),
            target: "≤ 1 s",
            met: |x| x <= 1.0,
        },
        Target {
            area: "query",
            measure: "data-team SQL, worst pinhouse / DuckDB ratio".into(),
            value: sql_worst.map(|r| (r, format!("{r:.2}×"))),
            target: "≤ 1.0× (no slower than DuckDB)",
            met: |x| x <= 1.0,
        },
    ];
    writeln!(md, "## Targets\n")?;
    writeln!(md, "| area | measure | pinhouse | target | verdict |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for t in &targets {
        let (value, v) = match &t.value {
            Some((x, text)) => (text.clone(), verdict((t.met)(*x))),
            None => ("not measured".into(), "—"),
        };
        writeln!(
            md,
            "| {} | {} | {value} | {} | {v} |",
            t.area, t.measure, t.target
        )?;
    }

    // Ingest.
    writeln!(md, "\n## Ingest (`pinhouse-bench ingest`)\n")?;
    if ingest.is_empty() {
        writeln!(md, "No ingest report in this run.")?;
    } else {
        writeln!(
            md,
            "| run | devices | frames/write | values | sent/s | committed/s | / TCP | write → ping p50 / p99 | device → live p50 / p99 |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
        for (file, label, v) in &ingest {
            let pair = |class: &str| match (num(v, &[class, "p50_ms"]), num(v, &[class, "p99_ms"]))
            {
                (Some(a), Some(b)) => format!("{a:.2} / {b:.2} ms"),
                _ => "—".into(),
            };
            writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v["devices"],
                v["frames_per_write"],
                v["values"],
                num(v, &["sent_values_per_sec"]).map_or("—".into(), si),
                num(v, &["committed_values_per_sec"]).map_or("—".into(), si),
                of_tcp(file).map_or("—".into(), |r| format!("{:.0}%", r * 100.0)),
                pair("write_latency"),
                pair("live_latency"),
            )?;
        }
        for (name, p) in [
            ("VictoriaMetrics", "victoriametrics"),
            ("InfluxDB 1.x", "influxdb"),
        ] {
            if let Some(peer) = peer(p)
                && let Some(rate) = num(peer, &["values_per_sec"])
            {
                let ratio = |name: &str| {
                    committed(name).map_or("—".into(), |x| format!("**{:.2}**", x / rate))
                };
                writeln!(
                    md,
                    "\n{name} took the shared data set (`bench/src/data.rs`) as line protocol over \
                     HTTP at {} values/s. pinhouse (committed) / {name}: over HTTP (timestamped \
                     JSON batches) {}, over TCP (Blynk frames) {} (same machine, same run).",
                    si(rate),
                    ratio("http"),
                    ratio("tcp"),
                )?;
            }
        }
    }

    // Mixed.
    writeln!(md, "\n## Mixed load (`pinhouse-bench mixed`)\n")?;
    match &mixed {
        None => writeln!(md, "No mixed report in this run.")?,
        Some(m) => {
            writeln!(
                md,
                "{} devices × {} values/s over {}, {} dashboards, {} SQL clients, {:.0} s measured \
                 after {} s warm-up: **{} values/s** sent, every value visible in SQL {:.2} s \
                 after the end, {} request errors.\n",
                m["devices"],
                m["rate_per_device"],
                m["transport"].as_str().unwrap_or("?"),
                m["dashboards"],
                m["sql_clients"],
                num(m, &["seconds"]).unwrap_or(0.0),
                m["warmup_seconds"],
                num(m, &["ingest_values_per_sec"]).map_or("—".into(), si),
                num(m, &["commit_lag_seconds"]).unwrap_or(f64::NAN),
                m["errors"],
            )?;
            writeln!(
                md,
                "| class | requests | p50 | p90 | p99 | p99.9 | max (ms) |"
            )?;
            writeln!(md, "|---|---|---|---|---|---|---|")?;
            for class in ["history", "last_value", "sql", "write"] {
                let l = &m["latency"][class];
                if l.is_null() {
                    continue;
                }
                let f = |k: &str| num(l, &[k]).map_or("—".into(), |x| format!("{x:.2}"));
                writeln!(
                    md,
                    "| {class} | {} | {} | {} | {} | {} | {} |",
                    l["count"],
                    f("p50_ms"),
                    f("p90_ms"),
                    f("p99_ms"),
                    f("p999_ms"),
                    f("max_ms")
                )?;
            }
        }
    }

    // Storage.
    writeln!(md, "\n## Storage engine (`pinhouse-bench storage`)\n")?;
    match &storage {
        None => writeln!(md, "No storage report in this run.")?,
        Some(s) => {
            writeln!(md, "| fsync policy | values/s | WAL groups | fsyncs |")?;
            writeln!(md, "|---|---|---|---|")?;
            for r in s["throughput"].as_array().into_iter().flatten() {
                writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    r["policy"].as_str().unwrap_or("?"),
                    r["values_per_s"].as_f64().map_or("—".into(), si),
                    r["wal_groups"],
                    r["wal_fsyncs"]
                )?;
            }
            if let Some(size) = s.get("size") {
                writeln!(
                    md,
                    "\n{} points: {:.3} bytes/point after the flushes, {:.3} after compaction.",
                    size["points"],
                    num(size, &["flushed_bytes_per_point"]).unwrap_or(f64::NAN),
                    num(size, &["compacted_bytes_per_point"]).unwrap_or(f64::NAN)
                )?;
            }
            if let Some(fleet) = &storage_fleet {
                let rate = fleet["throughput"]
                    .as_array()
                    .and_then(|rows| rows.iter().find(|r| r["policy"] == "interval"))
                    .and_then(|r| r["values_per_s"].as_f64());
                writeln!(
                    md,
                    "\nFleet scale, {} devices × 4 pins: {} values/s (fsync interval){}.",
                    fleet["devices"],
                    rate.map_or("—".into(), si),
                    match (
                        num(fleet, &["size", "reopen_seconds"]),
                        num(fleet, &["size", "series"])
                    ) {
                        (Some(secs), Some(series)) => {
                            format!(
                                "; a restart restored {series} series' last values in {secs:.2} s"
                            )
                        }
                        _ => String::new(),
                    }
                )?;
            }
            if let Some(vm) = peer("victoriametrics")
                && let (Some(theirs), Some(ours)) = (
                    num(vm, &["bytes_per_point"]),
                    num(s, &["size", "compacted_bytes_per_point"]),
                )
            {
                writeln!(
                    md,
                    "VictoriaMetrics: {theirs:.3} bytes per stored point (the shared data set, its samples counted back); \
                     pinhouse / VictoriaMetrics = **{:.2}**.",
                    ours / theirs
                )?;
            }
            if let Some(influx) = peer("influxdb")
                && let Some(theirs) = num(influx, &["bytes_per_point"])
            {
                writeln!(md, "InfluxDB 1.x: {theirs:.3} bytes per point.")?;
            }
        }
    }

    // Query.
    writeln!(md, "\n## Query (`pinhouse-bench query`)\n")?;
    match q {
        None => writeln!(md, "No query report in this run.")?,
        Some(q) => {
            writeln!(
                md,
                "Data set: {} rows in {} Parquet files.\n",
                q["store"]["rows"], q["store"]["files"]
            )?;
            writeln!(
                md,
                "| statement | pinhouse s | DuckDB s | pinhouse / DuckDB |"
            )?;
            writeln!(md, "|---|---|---|---|")?;
            for r in q["sql"].as_array().into_iter().flatten() {
                let f =
                    |k: &str, d: usize| r[k].as_f64().map_or("—".into(), |x| format!("{x:.d$}"));
                writeln!(
                    md,
                    "| {} | {} | {} | {} |",
                    r["name"].as_str().unwrap_or("?"),
                    f("seconds", 3),
                    f("duckdb_seconds", 3),
                    f("ratio_to_duckdb", 2)
                )?;
            }
        }
    }

    // Connections.
    writeln!(md, "\n## Idle sessions (`pinhouse-bench connections`)\n")?;
    match &connections {
        None => writeln!(md, "No connections report in this run.")?,
        Some(c) => {
            let ours = num(c, &["bytes_per_session"]);
            writeln!(
                md,
                "pinhouse: {} sessions, {} bytes per session.",
                c["sessions"],
                ours.map_or("—".into(), |b| format!("{b:.0}"))
            )?;
            if let Some(m) = peer("mosquitto")
                && let Some(theirs) = num(m, &["bytes_per_session"])
            {
                writeln!(
                    md,
                    "Mosquitto: {} sessions, {theirs:.0} bytes per session{}.",
                    m["sessions"],
                    ours.map_or(String::new(), |o| format!(
                        "; pinhouse / Mosquitto = **{:.2}**",
                        o / theirs
                    ))
                )?;
            }
        }
    }

    // Charts.
    let mut charts: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    charts.sort();
    if !charts.is_empty() {
        writeln!(md, "\n## Charts\n")?;
        for c in &charts {
            writeln!(md, "![{c}]({c})\n")?;
        }
    }
    let missing: Vec<&str> = peers
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(p, _)| *p)
        .collect();
    if !missing.is_empty() {
        writeln!(
            md,
            "\nPeers not measured in this run: {}.",
            missing.join(", ")
        )?;
    }
    let path = dir.join("report.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(path)
}
