//! The web console: a single-page application served at `/`, its files (plain JS modules and
//! CSS under `api/console/`) embedded in the binary at compile time.
//!
//! - `/assets/<file>` answers the embedded file with its content type, a strong `ETag` (SHA-256
//!   of the bytes) and `Cache-Control: no-cache`, so browsers revalidate and get `304 Not
//!   Modified` while the binary has not changed. Unknown assets answer a JSON 404.
//! - `GET`/`HEAD` of a console page (`/`, `/login`, `/devices/…`, … see [`CONSOLE_ROOTS`]) answers
//!   `index.html`, so that deep links and reloads work (SPA routing fallback).
//! - Anything else, in particular every `/api/…` and `/external/…` path, keeps the JSON 404 of
//!   [`crate::control::not_found`].
//!
//! Every console answer carries a strict `Content-Security-Policy` (same-origin scripts, styles,
//! images and connections only; no inline script), `X-Content-Type-Options: nosniff` and
//! `frame-ancestors 'none'`.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// An embedded file of the console.
#[derive(Debug)]
pub struct Asset {
    /// Path under `api/console/`, e.g. `assets/app.js`.
    pub path: &'static str,
    /// `Content-Type` header value.
    pub content_type: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `api/console/` (a unit test checks that none is missing).
pub static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("assets/style.css", "text/css; charset=utf-8"),
    asset!("assets/favicon.svg", "image/svg+xml"),
    asset!("assets/app.js", JS),
    asset!("assets/api.js", JS),
    asset!("assets/dom.js", JS),
    asset!("assets/chart.js", JS),
    asset!("assets/widgets.js", JS),
    asset!("assets/pages/login.js", JS),
    asset!("assets/pages/overview.js", JS),
    asset!("assets/pages/devices.js", JS),
    asset!("assets/pages/device.js", JS),
    asset!("assets/pages/templates.js", JS),
    asset!("assets/pages/users.js", JS),
    asset!("assets/pages/ota.js", JS),
    asset!("assets/pages/sql.js", JS),
];

/// First path segments that are console pages (answered with `index.html`).
pub const CONSOLE_ROOTS: [&str; 8] = [
    "login",
    "overview",
    "devices",
    "templates",
    "users",
    "ota",
    "sql",
    "account",
];

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// `"<hex sha-256 prefix>"` per asset, computed once.
fn etags() -> &'static [HeaderValue] {
    static ETAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.bytes);
                let tag = format!("\"{}\"", hex::encode(&digest[..16]));
                HeaderValue::from_str(&tag).expect("hex is a valid header value")
            })
            .collect()
    })
}

fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}

/// Whether `path` (starting with `/`) is a page of the console.
pub fn is_console_page(path: &str) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    first.is_empty() || CONSOLE_ROOTS.contains(&first)
}

/// The router's fallback: console files and pages for `GET`/`HEAD`, the JSON 404 otherwise.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    respond(&method, uri.path(), &headers)
}

/// What [`fallback`] answers for `method path`; separate for tests.
pub fn respond(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return crate::control::ControlError::not_found("no such endpoint").into_response();
    }
    let target = if let Some(file) = path.strip_prefix("/assets/") {
        format!("assets/{file}")
    } else if is_console_page(path) {
        "index.html".to_owned()
    } else {
        return crate::control::ControlError::not_found("no such endpoint").into_response();
    };
    let Some((index, asset)) = find(&target) else {
        return crate::control::ControlError::not_found(format!("no console file {path:?}"))
            .into_response();
    };
    let etag = &etags()[index];
    let mut response = if if_none_match(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.bytes,
        )
            .into_response()
    };
    let h = response.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

/// Whether `If-None-Match` lists `etag` (or `*`).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let want = etag.to_str().unwrap_or("");
    value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Response {
        respond(&Method::GET, path, &HeaderMap::new())
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[test]
    fn every_console_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    on_disk.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }

    #[test]
    fn pages_answer_index_html() {
        for path in [
            "/",
            "/login",
            "/devices",
            "/devices/12",
            "/sql",
            "/templates/TMPL1",
        ] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CONTENT_TYPE),
                "text/html; charset=utf-8"
            );
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
            assert!(header_of(&response, header::CONTENT_SECURITY_POLICY).contains("'self'"));
        }
    }

    #[test]
    fn assets_have_their_content_type() {
        let js = get("/assets/app.js");
        assert_eq!(js.status(), StatusCode::OK);
        assert_eq!(header_of(&js, header::CONTENT_TYPE), JS);
        let css = get("/assets/style.css");
        assert_eq!(
            header_of(&css, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
        assert_eq!(header_of(&css, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }

    #[test]
    fn api_paths_and_unknown_files_keep_the_json_404() {
        for path in [
            "/api/v1/nope",
            "/api",
            "/external/api/nope",
            "/assets/missing.js",
            "/assets/../index.html",
            "/favicon.ico",
            "/metrics-typo",
        ] {
            let response = get(path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(
                header_of(&response, header::CONTENT_TYPE).starts_with("application/json"),
                "{path}"
            );
        }
        let post = respond(&Method::POST, "/devices", &HeaderMap::new());
        assert_eq!(post.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn etag_revalidation_answers_304() {
        let first = get("/assets/app.js");
        let etag = header_of(&first, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
        let again = respond(&Method::GET, "/assets/app.js", &headers);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&again, header::ETAG), etag);
        headers.insert(header::IF_NONE_MATCH, "\"other\"".parse().unwrap());
        let changed = respond(&Method::GET, "/assets/app.js", &headers);
        assert_eq!(changed.status(), StatusCode::OK);
    }
}
