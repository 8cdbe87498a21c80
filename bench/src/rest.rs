//! The few REST calls the bench needs to set up a fleet.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// An authenticated REST client (cheap to clone: one connection pool).
#[derive(Debug, Clone)]
pub struct Rest {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Rest {
    /// Log in as `email`.
    pub async fn login(base: &str, email: &str, password: &str) -> Result<Self> {
        let http = reqwest::Client::new();
        let base = base.trim_end_matches('/').to_owned();
        let resp = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("login failed: {status} {body}");
        }
        let token = body["token"]
            .as_str()
            .context("no token in login reply")?
            .to_owned();
        Ok(Self { base, token, http })
    }

    /// The server's base URL (no trailing `/`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// POST JSON, expecting 2xx.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: {status} {body}");
        }
        Ok(body)
    }

    /// GET, expecting 2xx; the body's length (the body is read whole, not parsed).
    pub async fn get_len(&self, path: &str) -> Result<usize> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.body_len(request, &format!("GET {path}")).await
    }

    /// Run SQL, expecting 2xx; the JSON result's length in bytes (read whole, not parsed).
    pub async fn sql_len(&self, sql: &str) -> Result<usize> {
        let request = self
            .http
            .post(format!("{}/api/v1/sql", self.base))
            .body(sql.to_owned());
        self.body_len(request, "sql").await
    }

    /// Send `request` with the bearer token and read the whole body; its length, or an error
    /// naming `what` with the status and body unless the answer is 2xx.
    async fn body_len(&self, request: reqwest::RequestBuilder, what: &str) -> Result<usize> {
        let resp = request.bearer_auth(&self.token).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        if !status.is_success() {
            bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(body.len())
    }

    /// Run SQL and return the rows.
    pub async fn sql(&self, sql: &str) -> Result<Value> {
        let resp = self
            .http
            .post(format!("{}/api/v1/sql", self.base))
            .bearer_auth(&self.token)
            .body(sql.to_owned())
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("sql: {status} {body}");
        }
        Ok(body)
    }
}
