//! PNG charts of a report: throughput over time (a rate per one-second interval) and latency
//! distributions (percentile curves), drawn with plotters into an RGB buffer and encoded with
//! `png`.
//!
//! Text needs a TrueType font: plotters' `ab_glyph` backend reads none from the system by
//! itself, so the first chart registers one found at a well-known Debian path (DejaVu Sans from
//! `fonts-dejavu-core`, or Liberation Sans) or the file named by `PINHOUSE_BENCH_FONT`.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::latency::Latencies;
use crate::meter::Interval;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 560;
const FONT: &str = "sans-serif";

/// Font files tried in turn when `PINHOUSE_BENCH_FONT` is not set.
const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

fn load_font() -> Result<(), String> {
    let path = match std::env::var_os("PINHOUSE_BENCH_FONT") {
        Some(p) => std::path::PathBuf::from(p),
        None => FONT_PATHS
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .ok_or_else(|| {
                format!(
                    "no font for chart text: install Debian's fonts-dejavu-core or set \
                     PINHOUSE_BENCH_FONT to a .ttf file (looked in {})",
                    FONT_PATHS.join(", ")
                )
            })?,
    };
    let bytes = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
}

fn font() -> Result<()> {
    static FONT_LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    FONT_LOADED
        .get_or_init(load_font)
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Counter `i` of a meter's series as (seconds, rate) points.
pub fn column(series: &[Interval], i: usize) -> Vec<(f64, f64)> {
    series.iter().map(|s| (s.at_secs, s.rates[i])).collect()
}

/// Render with `draw` into a WIDTH × HEIGHT RGB buffer and write it as PNG to `path`.
fn render(
    path: &Path,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    font()?;
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(())
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 6] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    COLORS[i % COLORS.len()]
}

/// A line chart of rates over time: one line per named series of (seconds, rate) points.
pub fn throughput(
    path: &Path,
    title: &str,
    unit: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<()> {
    if series.iter().all(|(_, points)| points.is_empty()) {
        bail!("{title}: no whole second was measured, nothing to draw");
    }
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0, f64::max)
        * 1.1;
    render(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds since start")
            .y_desc(unit)
            .y_label_formatter(&|y| crate::meter::si(*y))
            .label_style((FONT, 14))
            .draw()?;
        draw_lines(&mut chart, series)?;
        chart
            .configure_series_labels()
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

/// One coloured line per named series, each with its legend entry.
fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[(&str, Vec<(f64, f64)>)],
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in lines.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    Ok(())
}

/// `nines` (−log10(1 − q)) as a percentile label: 0 → "0", 1 → "90", 2.5 → "99.7".
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let decimals = (nines.ceil() as usize).saturating_sub(2);
    format!("{p:.decimals$}")
}

/// Percentile curves of latency distributions (log scale in milliseconds), one line per
/// named distribution.
pub fn latency(path: &Path, title: &str, classes: &[(&str, &Latencies)]) -> Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> = classes
        .iter()
        .map(|(name, l)| (*name, l.curve()))
        .filter(|(_, c)| !c.is_empty())
        .collect();
    if curves.is_empty() {
        bail!("{title}: no latency was recorded, nothing to draw");
    }
    let x_max = curves
        .iter()
        .flat_map(|(_, c)| c.iter().map(|(x, _)| *x))
        .fold(1.0, f64::max);
    let ys = || curves.iter().flat_map(|(_, c)| c.iter().map(|(_, y)| *y));
    let y_min = ys().fold(f64::MAX, f64::min).max(0.001) / 1.5;
    let y_max = ys().fold(0.001, f64::max) * 1.5;
    render(path, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, (y_min..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(x_max.ceil() as usize + 1)
            .x_label_formatter(&|x| percentile_label(*x))
            .x_desc("percentile")
            .y_desc("milliseconds (log scale)")
            .label_style((FONT, 14))
            .draw()?;
        draw_lines(&mut chart, &curves)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        assert_eq!(percentile_label(0.0), "0");
        assert_eq!(percentile_label(1.0), "90");
        assert_eq!(percentile_label(2.0), "99");
        assert_eq!(percentile_label(3.0), "99.9");
        assert_eq!(percentile_label(4.0), "99.99");
    }
}
