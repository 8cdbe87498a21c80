//! The few W3C WebDriver commands the console test needs, spoken to `chromedriver` with the
//! workspace's `reqwest` (JSON over HTTP).
//!
//! A WebDriver client crate (fantoccini) would pull `webdriver` → `icu_segmenter` → extra `syn`
//! features into the workspace, which rebuilds every proc macro and so the whole DataFusion tree
//! for every developer; this subset is a page of code.

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use serde_json::{Value, json};

/// Key of an element reference in WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

/// A reference to an element of the current page.
pub struct Element(String);

impl Browser {
    /// Opens a session on the WebDriver server at `driver` (e.g. `http://127.0.0.1:9515`) with
    /// Chromium started with `args`.
    pub async fn open(driver: &str, args: &[&str]) -> Result<Browser> {
        let http = reqwest::Client::new();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args},
        }}});
        let reply = call(
            &http,
            reqwest::Method::POST,
            &format!("{driver}/session"),
            Some(caps),
        )
        .await
        .context("opening a browser session")?;
        let id = reply["sessionId"]
            .as_str()
            .context("sessionId in the new-session reply")?;
        Ok(Browser {
            http,
            session: format!("{driver}/session/{id}"),
        })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.session),
            Some(body),
        )
        .await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.session),
            None,
        )
        .await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub async fn execute(&self, script: &str) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    async fn find_by(&self, using: &str, value: &str) -> Result<Element> {
        let reply = self
            .post("/element", json!({ "using": using, "value": value }))
            .await
            .with_context(|| format!("finding {value:?}"))?;
        let id = reply[ELEMENT_KEY]
            .as_str()
            .context("element reference in the reply")?;
        Ok(Element(id.to_owned()))
    }

    /// The first element matching the CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        self.find_by("css selector", css).await
    }

    /// The first element matching the XPath expression.
    pub async fn find_xpath(&self, xpath: &str) -> Result<Element> {
        self.find_by("xpath", xpath).await
    }

    pub async fn click(&self, element: &Element) -> Result<()> {
        self.post(&format!("/element/{}/click", element.0), json!({}))
            .await?;
        Ok(())
    }

    pub async fn clear(&self, element: &Element) -> Result<()> {
        self.post(&format!("/element/{}/clear", element.0), json!({}))
            .await?;
        Ok(())
    }

    /// Types `text` into the element, as key presses.
    pub async fn send_keys(&self, element: &Element, text: &str) -> Result<()> {
        self.post(
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await?;
        Ok(())
    }

    /// The rendered text of the element.
    pub async fn text(&self, element: &Element) -> Result<String> {
        let value = self.get(&format!("/element/{}/text", element.0)).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Result<Vec<u8>> {
        let value = self.get("/screenshot").await?;
        let encoded = value.as_str().context("base64 screenshot")?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }

    pub async fn set_window_size(&self, width: u32, height: u32) -> Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await?;
        Ok(())
    }

    /// Ends the session (closes the browser).
    pub async fn close(self) -> Result<()> {
        call(&self.http, reqwest::Method::DELETE, &self.session, None).await?;
        Ok(())
    }
}

/// One WebDriver command: the reply's `value`, or its error as an `anyhow` error.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request
        .send()
        .await
        .with_context(|| format!("WebDriver {url}"))?;
    let status = resp.status();
    let reply: Value = resp.json().await.context("WebDriver reply is not JSON")?;
    let value = reply.get("value").cloned().unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "WebDriver {url}: {status} {}: {}",
            value["error"].as_str().unwrap_or("error"),
            value["message"].as_str().unwrap_or("")
        );
    }
    Ok(value)
}
