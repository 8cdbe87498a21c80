//! Fleet set-up shared by scenarios: a template and N devices created
//! through the REST API, with their ids and tokens optionally cached in a
//! file (`id token` per line) so that repeated runs against the same data dir
//! skip the set-up.

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

/// A simulated device known to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Control-plane id.
    pub id: u64,
    /// Auth token.
    pub token: String,
}

fn read_cache(path: &Path) -> Result<Vec<Device>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (id, token) = line.trim().split_once(' ').with_context(|| {
                format!(
                    "{}: lines are `id token` (an older cache? delete it)",
                    path.display()
                )
            })?;
            Ok(Device {
                id: id
                    .parse()
                    .with_context(|| format!("bad id in {}", path.display()))?,
                token: token.to_owned(),
            })
        })
        .collect()
}

/// Tokens of `count` devices (see [`devices`]).
pub async fn device_tokens(
    args: &FleetArgs,
    count: u32,
    pins: u8,
    cache: Option<&Path>,
) -> Result<Vec<String>> {
    Ok(devices(args, count, pins, cache)
        .await?
        .into_iter()
        .map(|d| d.token)
        .collect())
}

/// `count` devices of a template with `pins` double datastreams (V0..), reusing the ones in
/// `cache` when it holds enough.
pub async fn devices(
    args: &FleetArgs,
    count: u32,
    pins: u8,
    cache: Option<&Path>,
) -> Result<Vec<Device>> {
    let mut known: Vec<Device> = match cache {
        Some(path) if path.exists() => read_cache(path)?,
        _ => Vec::new(),
    };
    let missing = (count as usize).saturating_sub(known.len());
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
        let first = known.len();
        let created: Vec<Device> = futures::stream::iter(first..first + missing)
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
                    Ok::<_, anyhow::Error>(Device {
                        id: device["id"].as_u64().context("device id")?,
                        token: device["token"].as_str().context("token")?.to_owned(),
                    })
                }
            })
            .buffered(CREATE_CONCURRENCY)
            .try_collect()
            .await?;
        eprintln!();
        known.extend(created);
        if let Some(path) = cache {
            let lines: Vec<String> = known
                .iter()
                .map(|d| format!("{} {}", d.id, d.token))
                .collect();
            std::fs::write(path, lines.join("\n"))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    known.truncate(count as usize);
    Ok(known)
}
