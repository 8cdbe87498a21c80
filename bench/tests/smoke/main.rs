//! Smoke runs of every `pinhouse-bench` scenario at tiny sizes, so that none can rot
//! silently: `ingest` over each transport (the Blynk HTTP API included), `connections`, `mixed` (with its charts), the
//! in-process `storage` and `query`, and the Markdown `report` of their JSON files. The
//! server is the real one, started from this test binary in a child process on free loopback
//! ports (as the end-to-end tests do); the bench tool is the built binary, run as a user would.
//! Sizes are far too small for any figure to mean anything: these tests check that every
//! scenario runs to the end and reports what it measured, not how fast.

mod server;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use server::{ADMIN_EMAIL, ADMIN_PASSWORD, Server};

/// Not a test: the child process that runs the server for the other tests (see
/// [`server::Server::start`]); without `PINHOUSE_BENCH_SERVER_ARGS` it returns at once.
#[test]
#[ignore = "runs the server when spawned by the smoke tests"]
fn server_process() {
    server::serve_if_asked();
}

/// Runs `pinhouse-bench <args> --json-file <dir>/<name>.json` and returns its JSON report.
fn bench(dir: &Path, name: &str, args: &[&str]) -> Value {
    let json = dir.join(format!("{name}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_pinhouse-bench"))
        .args(args)
        .arg("--json-file")
        .arg(&json)
        .env_remove("PINHOUSE_ADMIN_EMAIL")
        .env_remove("PINHOUSE_ADMIN_PASSWORD")
        .output()
        .expect("running pinhouse-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pinhouse-bench {args:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&json).expect("JSON report written");
    serde_json::from_str(&text).expect("JSON report parses")
}

/// Asserts `path` is a non-trivial PNG file.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // A blank 1000 × 560 image compresses to well under 5 KB; axes, text and lines do not.
    assert!(
        bytes.len() > 5_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number `{key}` in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_then_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let server = Server::start(&tmp.path().join("server")).await.unwrap();
    let http = format!("http://{}", server.http);
    let (hardware, tls, quic) = (
        server.hardware.to_string(),
        server.tls.to_string(),
        server.quic.to_string(),
    );
    let ca = server.ca_file.display().to_string();
    let charts = results.display().to_string();
    let login = [
        "--http",
        http.as_str(),
        "--email",
        ADMIN_EMAIL,
        "--password",
        ADMIN_PASSWORD,
    ];
    let connect = [
        "--hardware",
        hardware.as_str(),
        "--tls",
        tls.as_str(),
        "--quic",
        quic.as_str(),
        "--ca",
        ca.as_str(),
    ];

    // ingest, every transport: 3 devices × 200 values, all committed.
    for transport in ["tcp", "tls", "ws", "quic", "http"] {
        let mut args = vec!["ingest", "--transport", transport];
        args.extend(login);
        args.extend(connect);
        args.extend([
            "--devices",
            "3",
            "--values",
            "200",
            "--frames-per-write",
            "20",
            "--latency",
            "--chart-dir",
            &charts,
        ]);
        let r = bench(&results, &format!("ingest-{transport}"), &args);
        assert_eq!(r["transport"], transport);
        assert_eq!(r["values"], 600, "{r}");
        assert!(r["committed"].as_u64().unwrap() >= 600, "{r}");
        assert!(f(&r, "committed_values_per_sec") > 0.0, "{r}");
        // One ping per write of 20 frames: 10 per device.
        assert_eq!(r["write_latency"]["count"], 30, "{r}");
        assert_png(&results.join(format!("ingest-{transport}-latency.png")));
    }

    // ingest from many devices, one frame per write.
    let mut args = vec!["ingest"];
    args.extend(login);
    args.extend(connect);
    args.extend([
        "--devices",
        "10",
        "--values",
        "20",
        "--frames-per-write",
        "1",
    ]);
    let r = bench(&results, "ingest-fleet", &args);
    assert_eq!(r["values"], 200, "{r}");
    assert!(r["committed"].as_u64().unwrap() >= 200, "{r}");

    // ingest paced for a duration after a warm-up, with the device → live subscriber probe:
    // every value is committed, every probe value arrives.
    let mut args = vec!["ingest"];
    args.extend(login);
    args.extend(connect);
    args.extend([
        "--devices",
        "3",
        "--warmup",
        "1",
        "--duration",
        "1",
        "--rate",
        "200",
        "--frames-per-write",
        "10",
        "--live-probe",
    ]);
    let r = bench(&results, "ingest-live", &args);
    assert!(r["live_latency"]["count"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["live_lost"], 0, "{r}");
    assert_eq!(r["warmup_seconds"], 1, "{r}");
    // About 2 s × 3 devices × 200 values/s were sent, all committed.
    let values = r["values"].as_u64().unwrap();
    assert!((600..=1500).contains(&values), "{r}");
    assert!(r["committed"].as_u64().unwrap() >= values, "{r}");
    assert!(f(&r, "sent_values_per_sec") > 0.0, "{r}");

    // connections: idle sessions, memory read from the server's /proc entry.
    let pid = server.pid().to_string();
    let mut args = vec!["connections"];
    args.extend(login);
    args.extend([
        "--addr",
        hardware.as_str(),
        "--count",
        "20",
        "--heartbeat",
        "1",
        "--hold",
        "2",
        "--server-pid",
        &pid,
    ]);
    let r = bench(&results, "connections", &args);
    assert_eq!(r["sessions"], 20, "{r}");
    assert_eq!(r["failed"], 0, "{r}");
    assert_eq!(r["dropped"], 0, "{r}");
    assert!(r["pings_sent"].as_u64().unwrap() >= 20, "{r}");
    assert!(r["server_rss_held"].as_u64().unwrap() > 0, "{r}");

    // mixed: ingest + dashboards + SQL for 3 measured seconds.
    let mut args = vec!["mixed"];
    args.extend(login);
    args.extend(connect);
    args.extend([
        "--devices",
        "4",
        "--rate",
        "200",
        "--dashboards",
        "2",
        "--sql",
        "1",
        "--warmup",
        "1",
        "--duration",
        "3",
        "--latency",
        "--chart-dir",
        &charts,
    ]);
    let r = bench(&results, "mixed", &args);
    assert_eq!(r["errors"], 0, "{r}");
    assert!(f(&r, "ingest_values_per_sec") > 0.0, "{r}");
    assert_eq!(r["visible_after_run"], r["values_sent_total"], "{r}");
    for class in ["history", "last_value", "sql", "write"] {
        let l = &r["latency"][class];
        assert!(l["count"].as_u64().unwrap_or(0) > 0, "{class}: {r}");
        assert!(
            f(l, "p50_ms") <= f(l, "p99_ms") && f(l, "p99_ms") <= f(l, "max_ms"),
            "{class}: {l}"
        );
    }
    assert!(
        !r["per_second"]["sent"].as_array().unwrap().is_empty(),
        "{r}"
    );
    for chart in [
        "mixed-ingest-throughput.png",
        "mixed-query-throughput.png",
        "mixed-latency.png",
        "ingest-tcp-throughput.png",
    ] {
        assert_png(&results.join(chart));
    }
    server.stop();

    // storage, in-process: every fsync policy, then bytes per point.
    let dir = tmp.path().join("storage");
    std::fs::create_dir_all(&dir).unwrap();
    let dir_s = dir.display().to_string();
    let r = bench(
        &results,
        "storage",
        &[
            "storage",
            "--dir",
            &dir_s,
            "--values",
            "20000",
            "--writers",
            "2",
            "--devices",
            "50",
            "--interval-s",
            "60",
        ],
    );
    let policies: Vec<&str> = r["throughput"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["always", "interval", "never"], "{r}");
    assert!(
        r["throughput"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["values"] == 20000 && f(t, "values_per_s") > 0.0),
        "{r}"
    );
    // 50 devices × 4 pins × 60 one-minute steps.
    assert_eq!(r["size"]["points"], 12_000, "{r}");
    assert!(f(&r["size"], "compacted_bytes_per_point") > 0.0, "{r}");
    // The restart restores every series' last value.
    assert_eq!(r["size"]["series"], 200, "{r}");
    assert!(f(&r["size"], "reopen_seconds") > 0.0, "{r}");
    // The same at fleet scale (as `bench/report.sh` runs it): one value per series.
    let r = bench(
        &results,
        "storage-fleet",
        &[
            "storage",
            "--dir",
            &dir_s,
            "--values",
            "20000",
            "--writers",
            "2",
            "--devices",
            "1000",
            "--interval-s",
            "3600",
            "--policies",
            "interval",
        ],
    );
    assert_eq!(r["devices"], 1000, "{r}");
    assert_eq!(r["size"]["series"], 4000, "{r}");

    // query, in-process: a tiny data set, every dashboard read and statement.
    let dir = tmp.path().join("query").display().to_string();
    let r = bench(
        &results,
        "query",
        &[
            "query",
            "--dir",
            &dir,
            "--devices",
            "20",
            "--values",
            "100",
            "--days",
            "10",
            "--runs",
            "5",
            "--concurrency",
            "2",
            "--sql-runs",
            "1",
        ],
    );
    assert_eq!(r["store"]["rows"], 20 * 4 * 100, "{r}");
    // Five runs shared by two concurrent readers.
    assert_eq!(r["dashboard"]["history_24h_1440"]["runs"], 5, "{r}");
    assert_eq!(r["dashboard"]["concurrency"], 2, "{r}");
    assert!(
        f(&r["dashboard"]["history_24h_1440"], "requests_per_s") > 0.0,
        "{r}"
    );
    assert_eq!(r["sql"].as_array().unwrap().len(), 6, "{r}");

    // The Markdown report of everything above.
    let out = Command::new(env!("CARGO_BIN_EXE_pinhouse-bench"))
        .args(["report", "--results", &charts, "--note", "smoke run"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = std::fs::read_to_string(results.join("report.md")).unwrap();
    for needle in [
        "| ingest | committed values/s",
        "| tcp | 3 | 20 | 600 |",
        "| quic | 3 | 20 | 600 |",
        "| http | 3 | 20 | 600 |",
        "| tcp, one frame per write | 10 | 1 | 200 |",
        "| ingest | device → live subscriber p99",
        "| ingest | QUIC committed values/s / TCP |",
        "| storage | bytes per point after compaction |",
        "Fleet scale, 1000 devices × 4 pins: ",
        "a restart restored 4000 series' last values in",
        "| query | history, 24 h at 1,440 points, p50 |",
        "| history |",
        "| sql |",
        "![mixed-latency.png](mixed-latency.png)",
        "Peers not measured in this run: victoriametrics, influxdb, mosquitto.",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    // No peer ran, so the DuckDB ratio is the one target left unmeasured.
    assert!(md.contains("| not measured |"), "{md}");
}
