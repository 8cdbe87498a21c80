//! `GET /api/v1/openapi.json`: the OpenAPI document is valid (checked by the
//! `openapi-spec-validator` package from PyPI) and describes every REST route and every route of
//! the device HTTP API, no more and no fewer:
//!
//! - the control-plane routes are read from the route table in the module documentation of
//!   `api/src/control/routes.rs`, the other routes are listed in [`OTHER_ROUTES`]; the
//!   document's operations must be exactly these;
//! - every documented operation is served (not the 404 of unknown paths, not a 405);
//! - no module registers a plain, undocumented axum route besides the few non-REST ones in
//!   [`UNDOCUMENTED`] (documented routes go through `OpenApiRouter::routes(routes!(…))`, which
//!   needs `#[utoipa::path]` on the handler).

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::server::Server;

/// Routes outside the control-plane table: OTA, dashboard reads, SQL, live values, and the
/// device HTTP API (current and legacy).
const OTHER_ROUTES: &[(&str, &str)] = &[
    ("/api/v1/firmware", "get"),
    ("/api/v1/firmware", "post"),
    ("/api/v1/firmware/{id}", "get"),
    ("/api/v1/shipments", "get"),
    ("/api/v1/shipments", "post"),
    ("/api/v1/shipments/{id}", "get"),
    ("/api/v1/shipments/{id}/devices", "get"),
    ("/api/v1/shipments/{id}/{action}", "post"),
    ("/ota/download/{link}", "get"),
    ("/ota/firmware/{id}", "get"),
    ("/api/v1/devices/{id}/values", "get"),
    ("/api/v1/devices/{id}/history", "get"),
    ("/api/v1/sql", "post"),
    ("/api/v1/live", "get"),
    ("/external/api/update", "get"),
    ("/external/api/update/", "get"),
    ("/external/api/batch/update", "get"),
    ("/external/api/batch/update", "post"),
    ("/external/api/getAll", "get"),
    ("/external/api/provision", "get"),
    ("/external/api/data/get", "get"),
    ("/external/api/get", "get"),
    ("/external/api/isHardwareConnected", "get"),
    ("/external/api/logEvent", "get"),
    ("/external/api/update/property", "get"),
    ("/external/api/device/meta", "get"),
    ("/external/api/device/meta/update", "get"),
    ("/{token}/isHardwareConnected", "get"),
    ("/{token}/get/{pin}", "get"),
    ("/{token}/update/{pin}", "get"),
    ("/{token}/update/{pin}", "put"),
    ("/{token}/pin/{pin}", "put"),
    ("/{token}/extra/pin/{pin}", "put"),
    ("/{token}/data/{pin}", "get"),
    ("/{token}/data/{pin}/{file}", "get"),
];

/// The only routes registered without an OpenAPI description (first argument of `.route(`):
/// health, Prometheus metrics, the Blynk device WebSocket and the document itself.
const UNDOCUMENTED: &[&str] = &[
    "\"/healthz\"",
    "\"/metrics\"",
    "\"/websocket\"",
    "\"/websockets\"",
    "\"/websocket/{*rest}\"",
    "\"/websockets/{*rest}\"",
    "OPENAPI_PATH",
];

const HTTP_METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// `(path, method)` of every row of the route table in the module documentation of
/// `api/src/control/routes.rs`: `//! | GET, POST | `/api/v1/x?q=` `{body}` | action | answer |`.
fn control_table() -> BTreeSet<(String, String)> {
    let source = include_str!("../../api/src/control/routes.rs");
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let Some(row) = line.strip_prefix("//! |") else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(methods), Some(path_cell)) = (cells.first(), cells.get(1)) else {
            continue;
        };
        if *methods == "method" || methods.starts_with("---") {
            continue;
        }
        let path = path_cell
            .split('`')
            .nth(1)
            .unwrap_or_else(|| panic!("no `path` in the table row {line:?}"));
        let path = path.split('?').next().unwrap_or(path);
        for method in methods.split(',') {
            let method = method.trim().to_ascii_lowercase();
            assert!(
                HTTP_METHODS.contains(&method.as_str()),
                "bad method {method:?} in the table row {line:?}"
            );
            out.insert((path.to_owned(), method));
        }
    }
    assert!(out.len() > 40, "the route table was not read: {out:?}");
    out
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// First arguments of plain axum route registrations (`.route(`, `.route_service(`, `.nest(`,
/// `.nest_service(`) in the server's sources, with the file they are in.
fn plain_routes() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "no sources under {}", src.display());
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for call in [".route(", ".route_service(", ".nest(", ".nest_service("] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at + call.len()..];
                let first = rest.split(',').next().unwrap_or(rest).trim();
                out.push((first.to_owned(), file.display().to_string()));
            }
        }
    }
    out
}

#[test]
fn only_non_rest_routes_are_undocumented() {
    let plain = plain_routes();
    assert!(
        plain.iter().any(|(p, _)| p == "\"/healthz\""),
        "the scan found no routes at all: {plain:?}"
    );
    for (first, file) in plain {
        assert!(
            UNDOCUMENTED.contains(&first.as_str()),
            "{file}: route {first} is registered without an OpenAPI description; give its \
             handler #[utoipa::path] and register it with OpenApiRouter::routes(routes!(…))"
        );
    }
}

#[tokio::test]
async fn openapi_document_is_valid_and_describes_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data")).await.unwrap();
    let (status, text) = server.get_text("/api/v1/openapi.json").await.unwrap();
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 -m openapi_spec_validator (pip install openapi-spec-validator)");
    assert!(
        out.status.success(),
        "invalid OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The documented operations are exactly the table's and the listed ones.
    let mut expected = control_table();
    for (path, method) in OTHER_ROUTES {
        assert!(
            expected.insert(((*path).to_owned(), (*method).to_owned())),
            "{method} {path} listed twice"
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for method in HTTP_METHODS {
            if item[*method].is_object() {
                documented.insert((path.clone(), (*method).to_owned()));
            }
        }
    }
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(missing.is_empty(), "not in the document: {missing:?}");
    let unlisted: Vec<_> = documented.difference(&expected).collect();
    assert!(
        unlisted.is_empty(),
        "documented but neither in the table of api/src/control/routes.rs nor in OTHER_ROUTES: \
         {unlisted:?}"
    );

    // Every operation has a unique id, a declared tag and a description of its answers.
    let tags: HashSet<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut ids = HashSet::new();
    for (path, method) in &documented {
        let op = &paths[path][method];
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_owned()),
            "{method} {path}: operationId {id:?} repeats"
        );
        let op_tags = op["tags"].as_array().map(Vec::as_slice).unwrap_or_default();
        assert!(!op_tags.is_empty(), "{method} {path}: no tag");
        for tag in op_tags {
            let tag = tag.as_str().unwrap();
            assert!(
                tags.contains(tag),
                "{method} {path}: undeclared tag {tag:?}"
            );
        }
        assert!(
            op["summary"].is_string() || op["description"].is_string(),
            "{method} {path}: no summary (doc comment of the handler)"
        );
        assert!(
            !op["responses"].as_object().unwrap().is_empty(),
            "{method} {path}: no responses"
        );
    }

    let schemas = &doc["components"]["schemas"];
    for name in [
        "ErrorBody",
        "FirmwareRecord",
        "NewShipment",
        "ShipmentView",
        "Target",
        "Webhook",
        "NewWebhook",
        "Notification",
        "Automation",
        "NewAutomation",
        "Trigger",
        "LoginResponse",
        "CreatedApiToken",
        "Organization",
        "UserView",
        "NewUser",
        "CreatedInvitation",
        "Template",
        "NewTemplate",
        "Datastream",
        "DeviceRecord",
        "DeviceStatus",
        "DeviceEvent",
        "DeviceProperty",
        "AuditEntry",
        "DeviceValues",
        "PinHistory",
        "BlynkErrorBody",
        "DataExport",
        "LegacyHistoryPoint",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    // The shipment target documents every way to target devices.
    let target = &schemas["Target"]["properties"];
    for field in ["template_id", "devices", "tag", "organization"] {
        assert!(
            target[field].is_object(),
            "Target.{field} missing: {target}"
        );
    }
    // Created resources carry their secret next to the listed fields (`#[serde(flatten)]`).
    let created = schemas["CreatedApiToken"].to_string();
    assert!(
        created.contains("ApiTokenView") && created.contains("\"token\""),
        "{created}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "bearer auth described"
    );
    assert!(
        paths["/api/v1/auth/me"]["get"]["security"].is_array(),
        "bearer routes say so"
    );
    assert!(
        paths["/external/api/update"]["get"]["security"].is_null(),
        "the device HTTP API authenticates by its token, not the bearer scheme"
    );

    // Every documented operation is served by a route: not the 404 of unknown paths, and not a
    // 405 of a known path. Unauthenticated, so nothing changes.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, method) in &documented {
        let mut concrete = String::new();
        let mut in_param = false;
        for c in path.chars() {
            match c {
                '{' => in_param = true,
                '}' => {
                    in_param = false;
                    concrete.push('1');
                }
                _ if !in_param => concrete.push(c),
                _ => {}
            }
        }
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let resp = client
            .request(method.clone(), server.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert!(
            status != 405 && !body.contains("no such endpoint"),
            "{method} {concrete} ({path}): {status} {body}"
        );
    }
}
