//! The PostgreSQL wire protocol, driven by the real `psql` (Debian
//! `postgresql-client`): log in with an e-mail and password or with an API
//! token, over plain TCP and TLS; read-only, organization-scoped SQL.

use std::net::SocketAddr;
use std::process::Command;

use serde_json::json;

use crate::server::{ADMIN_EMAIL, ADMIN_PASSWORD, Server, free_port};

/// Run `psql` as `user` over `sslmode` with `args`; (exit ok, stdout, stderr).
fn psql_with(
    addr: SocketAddr,
    user: &str,
    password: &str,
    sslmode: &str,
    args: &[&str],
) -> (bool, String, String) {
    let conninfo = format!(
        "host={} port={} user={user} dbname=pinhouse sslmode={sslmode} connect_timeout=10",
        addr.ip(),
        addr.port()
    );
    let out = Command::new("psql")
        .arg(conninfo)
        .args(args)
        .env("PGPASSWORD", password)
        .output()
        .expect("psql runs (Debian postgresql-client; scripts/test installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run `psql -At -c sql`; (exit ok, stdout, stderr).
fn psql(
    addr: SocketAddr,
    user: &str,
    password: &str,
    sslmode: &str,
    sql: &str,
) -> (bool, String, String) {
    psql_with(
        addr,
        user,
        password,
        sslmode,
        &["-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
    )
}

/// A server with `--pg` and a device `name` that wrote V1 = 1.5, 2.5, 3.5, then the text states
/// V2 = "on", "off": (server, PostgreSQL address, admin token, device).
async fn server_with_values(
    dir: &std::path::Path,
    name: &str,
) -> (Server, SocketAddr, String, serde_json::Value) {
    let pg = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = Server::start_with(&dir.join("data"), &["--pg", &pg.to_string()])
        .await
        .unwrap();
    let admin = server.admin_token().await.unwrap();
    let (device, token) = server.create_device(&admin, name).await.unwrap();
    for (pin, value) in [
        ("V1", "1.5"),
        ("V1", "2.5"),
        ("V1", "3.5"),
        ("V2", "on"),
        ("V2", "off"),
    ] {
        let (status, body) = server
            .get_text(&format!("/external/api/update?token={token}&{pin}={value}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    (server, pg, admin, device)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_queries_telemetry_as_a_pinhouse_user() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pg, admin, device) = server_with_values(dir.path(), "Meter").await;
    let sql = "SELECT device_id, pin, value FROM telemetry WHERE pin = 1 ORDER BY ts";
    let id = device["id"].as_u64().unwrap();
    let expected = format!("{id}|1|1.5\n{id}|1|2.5\n{id}|1|3.5\n");

    let pg_call = move |user: String, password: String, sslmode: &'static str, sql: String| {
        tokio::task::spawn_blocking(move || psql(pg, &user, &password, sslmode, &sql))
    };

    // E-mail and password, plain TCP.
    let (ok, out, err) = pg_call(
        ADMIN_EMAIL.into(),
        ADMIN_PASSWORD.into(),
        "disable",
        sql.into(),
    )
    .await
    .unwrap();
    assert!(ok, "psql failed: {err}\nserver log:\n{}", server.log_text());
    assert_eq!(out, expected);

    // An API token as the password, over TLS.
    let (ok, out, err) = pg_call("anyone".into(), admin.clone(), "require", sql.into())
        .await
        .unwrap();
    assert!(ok, "psql over TLS failed: {err}");
    assert_eq!(out, expected);

    // Aggregates, and session statements clients send.
    let (ok, out, err) = pg_call(
        ADMIN_EMAIL.into(),
        ADMIN_PASSWORD.into(),
        "disable",
        "SET client_encoding TO 'UTF8'; SELECT count(*), max(value) FROM telemetry".into(),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "SET\n5|3.5\n");

    // Text states (a dictionary column inside) come out as text.
    let (ok, out, err) = pg_call(
        ADMIN_EMAIL.into(),
        ADMIN_PASSWORD.into(),
        "disable",
        "SELECT text, count(*) FROM telemetry WHERE pin = 2 GROUP BY text ORDER BY text".into(),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "off|1\non|1\n");

    // Wrong password: refused.
    let (ok, _, err) = pg_call(
        ADMIN_EMAIL.into(),
        "wrong password".into(),
        "disable",
        sql.into(),
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.to_lowercase().contains("password"), "{err}");

    // Read-only: DDL and writes are refused with an error, the session goes on.
    let (ok, _, err) = pg_call(
        ADMIN_EMAIL.into(),
        ADMIN_PASSWORD.into(),
        "disable",
        "CREATE TABLE stolen AS SELECT * FROM telemetry".into(),
    )
    .await
    .unwrap();
    assert!(!ok);
    assert!(err.contains("ERROR"), "{err}");

    // A user of another organization sees none of these rows.
    let (password, _) = server
        .other_org_admin(&admin, "other@example.com")
        .await
        .unwrap();
    let (ok, out, err) = pg_call(
        "other@example.com".into(),
        password,
        "disable",
        "SELECT count(*) FROM telemetry".into(),
    )
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "0\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_uses_the_extended_query_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pg, _, device) = server_with_values(dir.path(), "Driver meter").await;
    let id = device["id"].as_u64().unwrap();
    let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("e2e/pg_client.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([
                pg.ip().to_string(),
                pg.port().to_string(),
                ADMIN_EMAIL.to_owned(),
                ADMIN_PASSWORD.to_owned(),
                id.to_string(),
            ])
            .output()
            .expect("python3 with psycopg (scripts/test installs it)")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "psycopg client failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = result["text"].as_array().unwrap();
    assert_eq!(text.len(), 2, "{result}");
    assert_eq!(text[0][0], id);
    assert_eq!(text[0][1], 1);
    assert_eq!(text[0][2], 2.5);
    assert_eq!(text[1][2], 3.5);
    assert_eq!(
        result["binary"], result["text"],
        "binary results decode to the same values"
    );
    assert_eq!(result["count"], 5);
    assert_eq!(
        result["states"],
        json!([["off", "off"], ["on", "on"]]),
        "{result}"
    );
    assert_eq!(result["name"], "Driver meter");
    assert!(
        result["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "telemetry"),
        "{result}"
    );
    assert_eq!(result["error"], "42601", "unknown table: {result}");
    assert!(result["ddl"].is_string(), "DDL refused: {result}");
}

/// Run psql meta-commands (`\d`, …) or queries with headers, as a person at the prompt would.
fn psql_script(addr: SocketAddr, script: &str) -> (bool, String, String) {
    psql_with(
        addr,
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        "disable",
        &["-X", "-v", "ON_ERROR_STOP=1", "-c", script],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_describes_tables_and_grafana_reads_the_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let (server, pg, _, _) = server_with_values(dir.path(), "Catalog meter").await;
    let run = |script: &'static str| tokio::task::spawn_blocking(move || psql_script(pg, script));

    // `\dt` and `\d` list the tables; `\d telemetry` its columns with PostgreSQL types.
    for command in ["\\dt", "\\d"] {
        let (ok, out, err) = run(command).await.unwrap();
        assert!(ok, "{command}: {err}\nserver log:\n{}", server.log_text());
        for table in ["telemetry", "devices", "templates", "datastreams", "events"] {
            assert!(
                out.lines()
                    .any(|l| l.contains(&format!(" {table} ")) && l.contains("table")),
                "{command} lacks {table}:\n{out}"
            );
        }
    }
    let (ok, out, err) = run("\\d telemetry").await.unwrap();
    assert!(
        ok,
        "\\d telemetry: {err}\nserver log:\n{}",
        server.log_text()
    );
    assert!(out.contains("Table \"public.telemetry\""), "{out}");
    for (column, ty) in [
        ("device_id", "bigint"),
        ("pin", "integer"),
        ("ts", "timestamp with time zone"),
        ("value", "double precision"),
        ("text", "text"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.trim_start().starts_with(column) && l.contains(ty)),
            "\\d telemetry lacks {column} {ty}:\n{out}"
        );
    }
    // A table that does not exist: psql's own message, not a server error.
    let (ok, _, err) = run("\\d no_such_table").await.unwrap();
    assert!(!ok);
    assert!(err.contains("Did not find any relation"), "{err}");

    // The queries Grafana's PostgreSQL data source sends: version, TimescaleDB detection,
    // schemas, tables, the columns of a table; then a time-series query.
    let grafana = [
        "SELECT current_setting('server_version_num')::int/100 as version",
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'",
        "SELECT schema_name AS \"name\" FROM information_schema.schemata \
         WHERE schema_name NOT IN ('information_schema', 'pg_catalog', 'pg_toast', \
         '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', \
         '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') \
         ORDER BY schema_name",
        "SELECT CASE WHEN quote_ident(table_schema) IN ( SELECT CASE WHEN trim(s[i]) = '\"$user\"' \
         THEN user ELSE trim(s[i]) END FROM generate_series( \
         array_lower(string_to_array(current_setting('search_path'),','),1), \
         array_upper(string_to_array(current_setting('search_path'),','),1) ) as i, \
         string_to_array(current_setting('search_path'),',') s ) THEN quote_ident(table_name) \
         ELSE quote_ident(table_schema) || '.' || quote_ident(table_name) END AS \"table\" \
         FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN \
         ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', \
         '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', \
         'timescaledb_experimental') ORDER BY CASE WHEN quote_ident(table_schema) IN ( SELECT \
         CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END FROM generate_series( \
         array_lower(string_to_array(current_setting('search_path'),','),1), \
         array_upper(string_to_array(current_setting('search_path'),','),1) ) as i, \
         string_to_array(current_setting('search_path'),',') s ) THEN 0 ELSE 1 END, 1",
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\" \
         FROM information_schema.columns WHERE CASE WHEN \
         array_length(parse_ident('public.telemetry'),1) = 2 THEN quote_ident(table_schema) = \
         (parse_ident('public.telemetry'))[1] AND quote_ident(table_name) = \
         (parse_ident('public.telemetry'))[2] ELSE quote_ident(table_name) = 'public.telemetry' \
         END",
        "SELECT ts AS \"time\", value FROM telemetry WHERE pin = 1 ORDER BY 1",
    ];
    let mut outputs = Vec::new();
    for sql in grafana {
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            psql(pg, ADMIN_EMAIL, ADMIN_PASSWORD, "disable", sql)
        })
        .await
        .unwrap();
        assert!(
            ok,
            "Grafana's {sql:?} failed: {err}\nserver log:\n{}",
            server.log_text()
        );
        outputs.push(out);
    }
    assert_eq!(outputs[0], "1600\n");
    assert_eq!(outputs[1], "", "no TimescaleDB");
    assert!(outputs[2].lines().any(|l| l == "public"), "{}", outputs[2]);
    assert!(
        outputs[3].lines().any(|l| l.ends_with("telemetry")),
        "{}",
        outputs[3]
    );
    for column in ["ts", "device_id", "pin", "value"] {
        assert!(
            outputs[4]
                .lines()
                .any(|l| l.starts_with(&format!("{column}|"))),
            "columns lack {column}: {}",
            outputs[4]
        );
    }
    assert_eq!(outputs[5].lines().count(), 3, "{}", outputs[5]);
}
