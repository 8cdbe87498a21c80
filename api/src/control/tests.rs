//! Tests of the control plane through its HTTP API: a real axum server on 127.0.0.1:0 over a
//! temporary SQLite file, spoken to with a minimal HTTP/1.1 client.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct TestServer {
    addr: SocketAddr,
    control: ControlPlane,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

impl TestServer {
    /// A server over a fresh database bootstrapped with [`EMAIL`] / [`PASSWORD`].
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
        let control = ControlPlane::open(&url).await.unwrap();
        assert_eq!(
            control
                .bootstrap(Some(EMAIL), Some(PASSWORD))
                .await
                .unwrap(),
            None
        );
        let app = routes().fallback(not_found).with_state(control.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer {
            addr,
            control,
            _dir: dir,
        }
    }

    async fn raw(&self, request: String) -> Reply {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let response = String::from_utf8(response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("non-JSON body {body:?}: {e}"))
        };
        Reply {
            status,
            headers: head.to_ascii_lowercase(),
            body,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() || method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        request.push_str(body);
        self.raw(request).await
    }

    async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(&body.to_string()))
            .await
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let body = json!({"email": email, "password": password}).to_string();
        let reply = self
            .call("POST", "/api/v1/auth/login", None, Some(&body))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.body["token"].as_str().unwrap().to_owned()
    }

    async fn template(&self, token: &str) -> String {
        let reply = self
            .post(
                "/api/v1/templates",
                token,
                json!({"name": "Weather", "datastreams": [
                    {"pin": 0, "name": "Temperature", "type": "double", "min": -40, "max": 85, "units": "°C", "decimals": 1},
                    {"pin": 1, "name": "Label", "type": "string"}
                ]}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }
}

fn new_user(email: &str, password: &str, role: Role) -> NewUser {
    NewUser {
        email: email.to_owned(),
        password: password.to_owned(),
        role,
        name: String::new(),
        org_id: None,
    }
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(!message.is_empty());
}

#[tokio::test]
async fn bootstrap_with_credentials_is_idempotent() {
    let control = ControlPlane::open("sqlite::memory:").await.unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/control.db?mode=rwc", dir.path().display());
    let control = ControlPlane::open(&url).await.unwrap();
    let password = control.bootstrap(None, None).await.unwrap().unwrap();
    assert!(password.len() >= 16);
    let principal_token = control
        .login(DEFAULT_ADMIN_EMAIL, &password)
        .await
        .unwrap()
        .token;
    control.close().await;

    // Restart on the same file: no second password, the first one still works.
    let control = ControlPlane::open(&url).await.unwrap();
    assert_eq!(control.bootstrap(None, None).await.unwrap(), None);
    assert!(control.login(DEFAULT_ADMIN_EMAIL, &password).await.is_ok());
    let principal = control.authenticate(&principal_token).await.unwrap();
    assert_eq!(principal.email, DEFAULT_ADMIN_EMAIL);
}

#[tokio::test]
async fn bootstrap_rejects_a_bad_email() {
    let control = ControlPlane::open("sqlite::memory:").await.unwrap();
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
async fn templates_create_list_get() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let id = server.template(&token).await;
    assert!(id.starts_with("TMPL") && id.len() == 12, "{id}");

    let reply = server.get(&format!("/api/v1/templates/{id}"), &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["name"], "Weather");
    let ds = &reply.body["datastreams"];
    assert_eq!(ds[0]["type"], "double");
    assert_eq!(ds[0]["min"], -40.0);
    assert_eq!(ds[0]["units"], "°C");
    assert_eq!(ds[1]["pin"], 1);

    let reply = server.get("/api/v1/templates", &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.as_array().unwrap().len(), 1);
    assert_eq!(reply.body[0]["datastreams"].as_array().unwrap().len(), 2);

    let datastreams = server.control.datastreams(&id).await.unwrap();
    assert_eq!(datastreams.len(), 2);
    assert_eq!(datastreams[0].kind, "double");
    assert_eq!(datastreams[0].decimals, Some(1));

    assert_error(
        &server.get("/api/v1/templates/TMPLnope1234", &token).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn template_validation_errors() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let cases = [
        json!({"name": "", "datastreams": []}),
        json!({"name": "T", "datastreams": [{"pin": 256, "name": "x", "type": "integer"}]}),
        json!({"name": "T", "datastreams": [
            {"pin": 3, "name": "a", "type": "integer"},
            {"pin": 3, "name": "b", "type": "integer"}]}),
        json!({"name": "T", "datastreams": [{"pin": 1, "name": "x", "type": "float"}]}),
        json!({"name": "T", "datastreams": [{"pin": 1, "name": "x", "type": "integer", "min": 5, "max": 1}]}),
    ];
    for body in cases {
        let reply = server.post("/api/v1/templates", &token, body.clone()).await;
        assert_error(&reply, 400, "validation_failed");
    }
    // Missing field, wrong field type: 400 bad_request, from the JSON extractor.
    let reply = server
        .post("/api/v1/templates", &token, json!({"datastreams": []}))
        .await;
    assert_error(&reply, 400, "bad_request");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("name")
    );
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "T", "datastreams": [{"pin": "V1"}]}),
        )
        .await;
    assert_error(&reply, 400, "bad_request");
    assert!(server.control.templates(1).await.unwrap().is_empty());
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
    assert_error(
        &server.get("/api/v1/nothing", &token).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn devices_create_list_get() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    let template_id = server.template(&token).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": "Balcony", "template_id": template_id}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let device = reply.body;
    let id = device["id"].as_u64().unwrap();
    assert!(u32::try_from(id).is_ok());
    let location = format!("location: /api/v1/devices/{id}");
    assert!(
        reply.headers.lines().any(|l| l == location),
        "{}",
        reply.headers
    );
    let device_token = device["token"].as_str().unwrap();
    assert_eq!(device_token.len(), 32);
    assert!(
        device_token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    assert_eq!(device["template_id"], template_id.as_str());
    assert_eq!(device["org_id"], 1);
    assert_eq!(device["name"], "Balcony");
    assert!(device["created_at"].as_str().unwrap().ends_with('Z'));

    let reply = server.get(&format!("/api/v1/devices/{id}"), &token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, device);
    let reply = server.get("/api/v1/devices", &token).await;
    assert_eq!(reply.body.as_array().unwrap().len(), 1);

    let record = server
        .control
        .device_by_token(device_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u64::from(record.id), id);
    assert!(
        server
            .control
            .device_by_token(&"0".repeat(32))
            .await
            .unwrap()
            .is_none()
    );
    assert!(server.control.device_by_token("").await.unwrap().is_none());
    assert!(
        server
            .control
            .device(record.org_id, record.id)
            .await
            .unwrap()
            .is_some()
    );

    for path in [
        "/api/v1/devices/999",
        "/api/v1/devices/abc",
        "/api/v1/devices/-1",
    ] {
        assert_error(&server.get(path, &token).await, 404, "not_found");
    }
}

#[tokio::test]
async fn device_with_unknown_template() {
    let server = TestServer::start().await;
    let token = server.login(EMAIL, PASSWORD).await;
    for template_id in ["TMPLunknown1", ""] {
        let reply = server
            .post(
                "/api/v1/devices",
                &token,
                json!({"name": "D", "template_id": template_id}),
            )
            .await;
        assert_error(&reply, 400, "validation_failed");
        assert!(
            reply.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("template")
        );
    }
    let template_id = server.template(&token).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token,
            json!({"name": " ", "template_id": template_id}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
}

#[tokio::test]
async fn organizations_are_isolated() {
    let server = TestServer::start().await;
    let token_a = server.login(EMAIL, PASSWORD).await;
    let template_a = server.template(&token_a).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token_a,
            json!({"name": "A", "template_id": template_a}),
        )
        .await;
    let device_a = reply.body["id"].as_u64().unwrap();
    let device_a_token = reply.body["token"].as_str().unwrap().to_owned();

    let org_b = server
        .control
        .create_organization("Other", None)
        .await
        .unwrap();
    server
        .control
        .create_user(
            org_b.id,
            &new_user("b@example.com", "password-b", Role::Staff),
        )
        .await
        .unwrap();
    let token_b = server.login("b@example.com", "password-b").await;

    assert_eq!(
        server.get("/api/v1/devices", &token_b).await.body,
        json!([])
    );
    assert_eq!(
        server.get("/api/v1/templates", &token_b).await.body,
        json!([])
    );
    assert_error(
        &server
            .get(&format!("/api/v1/devices/{device_a}"), &token_b)
            .await,
        404,
        "not_found",
    );
    assert_error(
        &server
            .get(&format!("/api/v1/templates/{template_a}"), &token_b)
            .await,
        404,
        "not_found",
    );
    // Org B cannot attach a device to org A's template.
    let reply = server
        .post(
            "/api/v1/devices",
            &token_b,
            json!({"name": "B", "template_id": template_a}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
    // Its own template and device work and stay invisible to org A.
    let template_b = server.template(&token_b).await;
    let reply = server
        .post(
            "/api/v1/devices",
            &token_b,
            json!({"name": "B", "template_id": template_b}),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["org_id"], org_b.id);
    assert_eq!(
        server
            .get("/api/v1/devices", &token_a)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        server
            .control
            .device(org_b.id, u32::try_from(device_a).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The device side still finds A's device by token, with its organization.
    let record = server
        .control
        .device_by_token(&device_a_token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.org_id, 1);
}

#[tokio::test]
async fn users_cannot_create_templates() {
    let server = TestServer::start().await;
    server
        .control
        .create_user(
            1,
            &new_user("user@example.com", "user-password", Role::User),
        )
        .await
        .unwrap();
    let token = server.login("user@example.com", "user-password").await;
    let reply = server
        .post(
            "/api/v1/templates",
            &token,
            json!({"name": "T", "datastreams": []}),
        )
        .await;
    assert_error(&reply, 403, "forbidden");
    let duplicate = server
        .control
        .create_user(
            1,
            &new_user("USER@example.com", "other-password", Role::User),
        )
        .await;
    assert!(matches!(duplicate, Err(ControlError::Conflict(_))));
}

#[tokio::test]
async fn admins_manage_organizations_and_users() {
    let server = TestServer::start().await;
    let admin = server.login(EMAIL, PASSWORD).await;
    let reply = server
        .post("/api/v1/organizations", &admin, json!({"name": "Branch"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let branch = reply.body["id"].as_u64().unwrap();
    assert_eq!(reply.body["parent_id"], 1);
    let reply = server
        .post(
            "/api/v1/organizations",
            &admin,
            json!({"name": "Leaf", "parent_id": branch}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let leaf = reply.body["id"].as_u64().unwrap();
    let orgs = server.get("/api/v1/organizations", &admin).await.body;
    assert_eq!(orgs.as_array().unwrap().len(), 3);

    // A user of the branch, created by the root admin.
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "branch@example.com", "password": "branch-password", "role": "admin", "org_id": branch}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let branch_user = reply.body["id"].as_u64().unwrap();
    assert_eq!(reply.body["org_id"], branch);
    assert_eq!(
        server
            .get(&format!("/api/v1/users/{branch_user}"), &admin)
            .await
            .status,
        200
    );
    // Duplicate e-mail, short password, unknown role.
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "BRANCH@example.com", "password": "long-enough", "role": "user"}),
        )
        .await;
    assert_error(&reply, 409, "conflict");
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "s@example.com", "password": "short", "role": "user"}),
        )
        .await;
    assert_error(&reply, 400, "validation_failed");
    let reply = server
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "s@example.com", "password": "long-enough", "role": "root"}),
        )
        .await;
    assert_error(&reply, 400, "bad_request");

    // The branch admin sees its subtree, not the root, and cannot reach up.
    let branch_admin = server.login("branch@example.com", "branch-password").await;
    let orgs = server
        .get("/api/v1/organizations", &branch_admin)
        .await
        .body;
    let ids: Vec<u64> = orgs
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [branch, leaf]);
    assert_error(
        &server.get("/api/v1/organizations/1", &branch_admin).await,
        404,
        "not_found",
    );
    let reply = server
        .post(
            "/api/v1/organizations",
            &branch_admin,
            json!({"name": "X", "parent_id": 1}),
        )
        .await;
    assert_error(&reply, 404, "not_found");
    let reply = server
        .post("/api/v1/users", &branch_admin, json!({"email": "x@example.com", "password": "long-enough", "role": "user", "org_id": 1}))
        .await;
    assert_error(&reply, 404, "not_found");
    assert_error(
        &server.get("/api/v1/users/1", &branch_admin).await,
        404,
        "not_found",
    );
    let users = server.get("/api/v1/users", &branch_admin).await.body;
    assert_eq!(users.as_array().unwrap().len(), 1);

    // Non-admins cannot manage users or organizations.
    let reply = server
        .post(
            "/api/v1/users",
            &branch_admin,
            json!({"email": "u@example.com", "password": "long-enough", "role": "user"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let user = server.login("u@example.com", "long-enough").await;
    assert_error(&server.get("/api/v1/users", &user).await, 403, "forbidden");
    assert_error(
        &server
            .post("/api/v1/organizations", &user, json!({"name": "Y"}))
            .await,
        403,
        "forbidden",
    );
    let orgs = server.get("/api/v1/organizations", &user).await.body;
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["id"], branch);
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
