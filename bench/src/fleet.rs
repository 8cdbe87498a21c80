//! Fleet set-up shared by scenarios: a template and N devices created
//! through the REST API, with their tokens optionally cached in a file so
//! that repeated runs against the same data dir skip the set-up.

use std::path::Path;

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::rest::Rest;

/// REST flags every scenario that creates devices takes.
#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Base URL of the server's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub http: String,
    /// Admin e-mail used to create the fleet.
    #[arg(
        long,
        env = "PINHOUSE_ADMIN_EMAIL",
        default_value = "admin@pinhouse.local"
    )]
    pub email: String,
    /// Admin password.
    #[arg(long, env = "PINHOUSE_ADMIN_PASSWORD", default_value = "")]
    pub password: String,
}

/// Device creations in flight at once.
const CREATE_CONCURRENCY: usize = 16;

/// Tokens of `count` devices of a template with `pins` double datastreams
/// (V0..), reusing the ones in `cache` when it holds enough.
pub async fn device_tokens(
    args: &FleetArgs,
    count: u32,
    pins: u8,
    cache: Option<&Path>,
) -> Result<Vec<String>> {
    let mut tokens: Vec<String> = match cache {
        Some(path) if path.exists() => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    let missing = (count as usize).saturating_sub(tokens.len());
    if missing > 0 {
        if args.password.is_empty() {
            bail!("set --password (or PINHOUSE_ADMIN_PASSWORD) to create devices");
        }
        let rest = Rest::login(&args.http, &args.email, &args.password).await?;
        let datastreams: Vec<_> = (0..pins.max(1))
            .map(|p| json!({"pin": p, "name": format!("Value {p}"), "type": "double"}))
            .collect();
        let template = rest
            .post(
                "/api/v1/templates",
                &json!({"name": "bench", "datastreams": datastreams}),
            )
            .await?;
        let template_id = template["id"].as_str().context("template id")?.to_owned();
        eprintln!("creating {missing} devices…");
        let first = tokens.len();
        let created: Vec<String> = futures::stream::iter(first..first + missing)
            .map(|i| {
                let (rest, template_id) = (&rest, &template_id);
                async move {
                    let device = rest
                        .post(
                            "/api/v1/devices",
                            &json!({"name": format!("bench-{i}"), "template_id": template_id}),
                        )
                        .await?;
                    if i % 1000 == 999 {
                        eprint!("\rcreated {}/{}", i + 1 - first, missing);
                    }
                    Ok::<_, anyhow::Error>(device["token"].as_str().context("token")?.to_owned())
                }
            })
            .buffered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
        eprintln!();
        tokens.extend(created);
        if let Some(path) = cache {
            std::fs::write(path, tokens.join("\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    tokens.truncate(count as usize);
    Ok(tokens)
}
