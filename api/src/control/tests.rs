//! Tests of the control plane through its HTTP API: a real axum server on 127.0.0.1:0 over a
//! fresh database, spoken to with a minimal HTTP/1.1 client.
//!
//! The database is a temporary SQLite file, or — when `PINHOUSE_TEST_POSTGRES_URL` names a
//! PostgreSQL server (`scripts/test` starts one) — a new database on that server for every test,
//! so the same suite runs on both backends.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

mod access;
mod admin;
mod audit;
mod auth;
mod matrix;
mod resources;
mod runtime;

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// The variable naming a PostgreSQL server (an admin url, e.g.
/// `postgres://postgres@127.0.0.1:5433/postgres`) to run the control-plane tests on.
pub(crate) const TEST_POSTGRES_URL: &str = "PINHOUSE_TEST_POSTGRES_URL";

/// A fresh, empty database for one test: the url to open, and what keeps it alive.
pub(crate) struct TestDb {
    pub(crate) url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new database on the PostgreSQL server of [`TEST_POSTGRES_URL`] when it is set, else a
    /// SQLite file in a temporary directory.
    pub(crate) async fn new() -> TestDb {
        match std::env::var(TEST_POSTGRES_URL) {
            Ok(admin) if !admin.is_empty() => {
                use sqlx::Connection;
                sqlx::any::install_default_drivers();
                let name = format!("pinhouse_test_{}", secrets::device_token());
                let mut conn = sqlx::AnyConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("{TEST_POSTGRES_URL}: cannot connect: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                TestDb {
                    url: with_database(&admin, &name),
                    _dir: None,
                }
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                TestDb {
                    url: format!("sqlite://{}/control.db?mode=rwc", dir.path().display()),
                    _dir: Some(dir),
                }
            }
        }
    }

    /// Opens the control plane on this database.
    pub(crate) async fn open(&self) -> ControlPlane {
        ControlPlane::open(&self.url).await.unwrap()
    }
}

/// `url` (`postgres://…/DB?…`) with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

#[test]
fn test_database_urls_swap_the_database() {
    assert_eq!(
        with_database(
            "postgres://u:p@127.0.0.1:5433/postgres?sslmode=disable",
            "t1"
        ),
        "postgres://u:p@127.0.0.1:5433/t1?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "t2"), "postgres://h/t2");
}

struct TestServer {
    addr: SocketAddr,
    control: ControlPlane,
    _db: TestDb,
}

struct Reply {
    status: u16,
    headers: String,
    body: Value,
}

impl TestServer {
    /// A server over a fresh database bootstrapped with [`EMAIL`] / [`PASSWORD`].
    async fn start() -> TestServer {
        let db = TestDb::new().await;
        let control = db.open().await;
        assert_eq!(
            control
                .bootstrap(Some(EMAIL), Some(PASSWORD))
                .await
                .unwrap(),
            None
        );
        let (app, _) = routes().split_for_parts();
        let app = app.fallback(not_found).with_state(control.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        TestServer {
            addr,
            control,
            _db: db,
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

    /// Creates a device of `template_id`; returns its id and auth token.
    async fn device(&self, token: &str, template_id: &str) -> (u32, String) {
        let reply = self
            .post(
                "/api/v1/devices",
                token,
                json!({"name": "Device", "template_id": template_id}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        let id = u32::try_from(reply.body["id"].as_u64().unwrap()).unwrap();
        (id, reply.body["token"].as_str().unwrap().to_owned())
    }

    /// Creates a separate root organization with an admin; returns the admin's session token.
    async fn other_org_admin(&self) -> String {
        let org = self
            .control
            .create_organization("Other", None)
            .await
            .unwrap();
        let email = format!("admin-{}@other.example", org.id);
        self.control
            .create_user(org.id, &new_user(&email, "other-password", Role::Admin))
            .await
            .unwrap();
        self.login(&email, "other-password").await
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
