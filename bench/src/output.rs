//! Where a scenario's report goes: the summary table on stdout (printed by the scenario),
//! the JSON report on stdout (`--json`) and/or in a file (`--json-file`), and PNG charts
//! (`--chart-dir`, [`crate::chart`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Report flags shared by the scenarios.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Also print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<PathBuf>,
}

/// The chart flag of the scenarios that draw charts.
#[derive(Debug, Clone, clap::Args)]
pub struct ChartArgs {
    /// Write PNG charts into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub chart_dir: Option<PathBuf>,
}

impl OutputArgs {
    /// Print and/or write the JSON report.
    pub fn emit(&self, report: &Value) -> Result<()> {
        let text = serde_json::to_string_pretty(report)?;
        if self.json {
            println!("{text}");
        }
        if let Some(path) = &self.json_file {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }
}

impl ChartArgs {
    /// The chart directory, created, if charts were asked for.
    pub fn charts(&self) -> Result<Option<&Path>> {
        match &self.chart_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(Some(dir))
            }
            None => Ok(None),
        }
    }
}
