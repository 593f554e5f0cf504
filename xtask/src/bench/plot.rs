//! The bench's plots: bar charts of throughput and latency percentiles, as SVG (plotters).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

/// Draws one bar per (label, value) into an SVG at `path`.
pub(crate) fn bars(path: &Path, title: &str, y_desc: &str, bars: &[(String, f64)]) -> Result<()> {
    let y_max = bars.iter().map(|b| b.1).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..bars.len().max(1) as f64, 0f64..y_max * 1.2)
        .map_err(|e| anyhow!("{e}"))?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let index = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                labels.get(index).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
            let x = index as f64;
            Rectangle::new([(x + 0.15, 0.0), (x + 0.85, *value)], Palette99::pick(index).filled())
        }))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(index, (_, value))| {
            Text::new(super::report::figure(*value), (index as f64 + 0.4, *value * 1.03), ("sans-serif", 14))
        }))
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_every_label() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("bars.svg");
        bars(&path, "throughput", "iq/s", &[("keyward".into(), 900.0), ("null".into(), 1000.0)])?;
        let svg = std::fs::read_to_string(&path)?;
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("keyward") && svg.contains("null") && svg.contains("throughput"));
        Ok(())
    }
}
