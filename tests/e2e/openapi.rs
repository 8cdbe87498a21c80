//! `GET /api/v1/openapi.json`: the OpenAPI document is valid (checked by the
//! `openapi-spec-validator` package from PyPI) and describes the documented routes.

use std::process::Command;

use serde_json::Value;

use crate::server::Server;

#[tokio::test]
async fn openapi_document_is_valid_and_describes_its_routes() {
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

    let paths = &doc["paths"];
    for (path, method) in [
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
        ("/api/v1/webhooks", "get"),
        ("/api/v1/webhooks", "post"),
        ("/api/v1/webhooks/{id}", "delete"),
        ("/api/v1/webhooks/{id}/ping", "post"),
        ("/api/v1/notifications", "get"),
        ("/api/v1/automations", "get"),
        ("/api/v1/automations", "post"),
        ("/api/v1/automations/{id}", "get"),
        ("/api/v1/automations/{id}", "put"),
        ("/api/v1/automations/{id}", "delete"),
    ] {
        assert!(
            paths[path][method].is_object(),
            "{method} {path} is not documented"
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
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "bearer auth described"
    );
    // Every documented GET path is served by a route (unknown routes answer "no such endpoint").
    for (path, item) in paths.as_object().unwrap() {
        if item["get"].is_null() {
            continue;
        }
        let concrete = path.replace("{id}", "1").replace("{link}", "x");
        let (status, body) = server.get_text(&concrete).await.unwrap();
        assert!(
            !body.contains("no such endpoint"),
            "{path}: {status} {body}"
        );
    }
}
