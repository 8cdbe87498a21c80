//! The audit log: changing requests are recorded with their outcome and readable per the rules.

use serde_json::json;

use super::*;

#[tokio::test]
async fn changing_requests_are_audited() {
    let server = TestServer::start().await;
    let admin = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&admin).await;
    let (device_id, _) = server.device(&admin, &template_id).await;
    // A refused attempt is recorded too.
    let reply = server
        .post(
            "/api/v1/organizations",
            &admin,
            json!({"name": "X", "parent_id": 999}),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    // Reads are not.
    server.get("/api/v1/devices", &admin).await;

    let log = server.get("/api/v1/audit", &admin).await;
    assert_eq!(log.status, 200, "{}", log.body);
    let entries = log.body.as_array().unwrap();
    let seen: Vec<(String, String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_owned(),
                e["path"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("POST".to_owned(), "/api/v1/organizations".to_owned(), 404),
            ("POST".to_owned(), "/api/v1/devices".to_owned(), 201),
            ("POST".to_owned(), "/api/v1/templates".to_owned(), 201),
        ]
    );
    assert_eq!(entries[0]["email"], EMAIL);
    assert_eq!(entries[0]["user_id"], 1);
    assert!(entries[0]["at"].as_str().unwrap().ends_with('Z'));
    let _ = device_id;

    // Filters.
    let one = server.get("/api/v1/audit?limit=1", &admin).await;
    assert_eq!(one.body.as_array().unwrap().len(), 1);
    let none = server.get("/api/v1/audit?user_id=77", &admin).await;
    assert_eq!(none.body, json!([]));
    assert_error(
        &server.get("/api/v1/audit?limit=x", &admin).await,
        400,
        "bad_request",
    );

    // A user may not read it; another organization's admin sees none of it.
    server
        .control
        .create_user(1, &new_user("u@example.com", "long-enough", Role::User))
        .await
        .unwrap();
    let user = server.login("u@example.com", "long-enough").await;
    assert_error(&server.get("/api/v1/audit", &user).await, 403, "forbidden");
    let other = server.other_org_admin().await;
    assert_eq!(server.get("/api/v1/audit", &other).await.body, json!([]));
}
