//! Bootstrap, login, sessions, API tokens, and the JSON error shape of malformed requests.

use serde_json::json;

use super::*;

#[tokio::test]
async fn bootstrap_with_credentials_is_idempotent() {
    let db = TestDb::new().await;
    let control = db.open().await;
    assert_eq!(
        control
            .bootstrap(Some(EMAIL), Some(PASSWORD))
            .await
            .unwrap(),
        None
    );
    // Second start, other values: nothing changes.
    assert_eq!(
        control
            .bootstrap(Some("other@example.com"), None)
            .await
            .unwrap(),
        None
    );
    let login = control.login(EMAIL, PASSWORD).await.unwrap();
    assert_eq!(login.user.role, Role::Admin);
    assert!(control.login("other@example.com", PASSWORD).await.is_err());
    let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
        .fetch_one(control.pool())
        .await
        .unwrap();
    assert_eq!(orgs, 1);
}

#[tokio::test]
async fn bootstrap_generates_a_password_once() {
    let db = TestDb::new().await;
    let control = db.open().await;
    let password = control.bootstrap(None, None).await.unwrap().unwrap();
    assert!(password.len() >= 16);
    let principal_token = control
        .login(DEFAULT_ADMIN_EMAIL, &password)
        .await
        .unwrap()
        .token;
    control.close().await;

    // Restart on the same file: no second password, the first one still works.
    let control = db.open().await;
    assert_eq!(control.bootstrap(None, None).await.unwrap(), None);
    assert!(control.login(DEFAULT_ADMIN_EMAIL, &password).await.is_ok());
    let principal = control.authenticate(&principal_token).await.unwrap();
    assert_eq!(principal.email, DEFAULT_ADMIN_EMAIL);
}

#[tokio::test]
async fn bootstrap_rejects_a_bad_email() {
    let db = TestDb::new().await;
    let control = db.open().await;
    assert!(matches!(
        control.bootstrap(Some("not-an-email"), Some("x")).await,
        Err(ControlError::Validation(_))
    ));
}

#[tokio::test]
async fn login_good_and_bad() {
    let server = TestServer::start().await;
    let body = json!({"email": "Admin@Example.com ", "password": PASSWORD}).to_string();
    let reply = server
        .call("POST", "/api/v1/auth/login", None, Some(&body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token"].as_str().unwrap().len(), 64);
    assert_eq!(reply.body["user"]["email"], EMAIL);
    assert_eq!(reply.body["user"]["role"], "admin");
    assert!(reply.body["user"].get("password_hash").is_none());

    for (email, password) in [(EMAIL, "wrong"), ("nobody@example.com", PASSWORD)] {
        let body = json!({"email": email, "password": password}).to_string();
        let reply = server
            .call("POST", "/api/v1/auth/login", None, Some(&body))
            .await;
        assert_error(&reply, 401, "unauthorized");
        assert!(reply.headers.contains("www-authenticate: bearer"));
    }
}

#[tokio::test]
async fn bearer_token_required() {
    let server = TestServer::start().await;
    let reply = server.call("GET", "/api/v1/devices", None, None).await;
    assert_error(&reply, 401, "unauthorized");
    let reply = server.get("/api/v1/templates", "0123").await;
    assert_error(&reply, 401, "unauthorized");
    let reply = server.get("/api/v1/templates", &"a".repeat(64)).await;
    assert_error(&reply, 401, "unauthorized");
    let mut request = "GET /api/v1/devices HTTP/1.1\r\nHost: t\r\nConnection: close\r\n".to_owned();
    request.push_str("Authorization: Basic YTpi\r\n\r\n");
    assert_error(&server.raw(request).await, 401, "unauthorized");
    // Unauthenticated POST with a broken body: 401 before the body is looked at.
    let reply = server
        .call("POST", "/api/v1/devices", None, Some("{"))
        .await;
    assert_error(&reply, 401, "unauthorized");

    let token = server.login(EMAIL, PASSWORD).await;
    let reply = server.get("/api/v1/auth/me", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["email"], EMAIL);
    let reply = server
        .call("POST", "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(reply.status, 204);
    assert_error(
        &server.get("/api/v1/auth/me", &token).await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn expired_sessions_are_rejected() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    sqlx::query("UPDATE api_tokens SET expires_at = 1")
        .execute(server.control.pool())
        .await
        .unwrap();
    assert_error(
        &server.get("/api/v1/templates", &token).await,
        401,
        "unauthorized",
    );
}

#[tokio::test]
async fn malformed_json_is_a_json_400() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    for body in ["{", "not json", "[1,2]", ""] {
        let reply = server
            .call("POST", "/api/v1/devices", Some(&token), Some(body))
            .await;
        assert_error(&reply, 400, "bad_request");
    }
    let reply = server
        .call("POST", "/api/v1/auth/login", None, Some("{\"email\":"))
        .await;
    assert_error(&reply, 400, "bad_request");
    let reply = server
        .call(
            "POST",
            "/api/v1/auth/login",
            None,
            Some("{\"email\":\"a@b\"}"),
        )
        .await;
    assert_error(&reply, 400, "bad_request");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );

    let request = "POST /api/v1/auth/login HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}"
        .to_owned();
    assert_error(&server.raw(request).await, 415, "unsupported_media_type");
    assert_error(
        &server
            .call("DELETE", "/api/v1/templates", Some(&token), None)
            .await,
        405,
        "method_not_allowed",
    );
    // Also on the routes that were documented in OpenAPI first.
    assert_error(
        &server
            .call("DELETE", "/api/v1/webhooks", Some(&token), None)
            .await,
        405,
        "method_not_allowed",
    );
    assert_error(
        &server.get("/api/v1/nothing", &token).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn api_tokens_create_use_revoke() {
    let server = TestServer::start().await;
    let session = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post(
            "/api/v1/auth/tokens",
            &session,
            json!({"name": "bench", "expires_in_days": 7}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let api_token = reply.body["token"].as_str().unwrap().to_owned();
    let id = reply.body["id"].as_u64().unwrap();
    assert!(reply.body["expires_at"].is_string());
    let reply = server
        .post("/api/v1/auth/tokens", &session, json!({"name": "forever"}))
        .await;
    assert_eq!(reply.status, 201);
    assert!(reply.body["expires_at"].is_null());
    assert_error(
        &server
            .post(
                "/api/v1/auth/tokens",
                &session,
                json!({"name": "x", "expires_in_days": 0}),
            )
            .await,
        400,
        "validation_failed",
    );

    // The API token works like a session, and the list hides secrets and sessions.
    assert_eq!(
        server.get("/api/v1/templates", &api_token).await.status,
        200
    );
    let list = server.get("/api/v1/auth/tokens", &api_token).await.body;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list[0].get("token").is_none());
    assert_eq!(list[0]["name"], "bench");

    let reply = server
        .call(
            "DELETE",
            &format!("/api/v1/auth/tokens/{id}"),
            Some(&session),
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    assert_error(
        &server.get("/api/v1/templates", &api_token).await,
        401,
        "unauthorized",
    );
    let reply = server
        .call(
            "DELETE",
            &format!("/api/v1/auth/tokens/{id}"),
            Some(&session),
            None,
        )
        .await;
    assert_error(&reply, 404, "not_found");

    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE kind = 'session'")
        .execute(server.control.pool())
        .await
        .unwrap();
    assert_eq!(server.control.purge_expired_tokens().await.unwrap(), 1);
}
