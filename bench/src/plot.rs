//! The plot of end-to-end latency against arrival rate, as SVG (plotters' SVG backend needs no
//! font or image libraries).

use std::path::Path;

use anyhow::Context;
use plotters::prelude::*;

/// One sweep step.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    /// Offered arrivals per second.
    pub rate: f64,
    /// Median end-to-end latency.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
}

/// Draws p50/p90/p99 against the arrival rate on a logarithmic latency axis, with the
/// threshold as a dashed line, into `path` (its directory is created).
///
/// # Errors
/// When the file cannot be written.
pub fn latency_vs_rate(
    path: &Path,
    points: &[Point],
    threshold_ms: f64,
    machine: &str,
) -> anyhow::Result<()> {
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("cannot create {}", directory.display()))?;
    }
    draw(path, points, threshold_ms, machine)
        .map_err(|error| anyhow::anyhow!("cannot draw {}: {error}", path.display()))
}

/// A line of the plot: its name, colour, and the value it takes from a point.
type Series = (&'static str, RGBColor, fn(&Point) -> f64);

fn draw(
    path: &Path,
    points: &[Point],
    threshold_ms: f64,
    machine: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_rate = points.iter().map(|p| p.rate).fold(0.0, f64::max).max(1.0) * 1.05;
    let latencies = points
        .iter()
        .flat_map(|p| [p.p50_ms, p.p90_ms, p.p99_ms])
        .chain([threshold_ms]);
    let low = latencies.clone().fold(f64::INFINITY, f64::min).max(0.1) / 1.5;
    let high = latencies.fold(0.0, f64::max) * 1.5;
    let caption = "Keryu end-to-end latency (202 → Twilio simulator) vs arrival rate";
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..max_rate, (low..high).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(format!("offered notifications per second — {machine}"))
        .y_desc("latency, ms (log scale)")
        .light_line_style(RGBColor(235, 235, 235))
        .draw()?;
    let series: [Series; 3] = [
        ("p50", RGBColor(31, 119, 180), |p| p.p50_ms),
        ("p90", RGBColor(255, 127, 14), |p| p.p90_ms),
        ("p99", RGBColor(214, 39, 40), |p| p.p99_ms),
    ];
    for (name, color, value) in series {
        let line: Vec<(f64, f64)> = points.iter().map(|p| (p.rate, value(p).max(low))).collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            line.into_iter()
                .map(|(x, y)| Circle::new((x, y), 3, color.filled())),
        )?;
    }
    let dash = RGBColor(90, 90, 90);
    let steps = 40;
    let dashes = (0..steps).step_by(2).map(|i| {
        let from = max_rate * f64::from(i) / f64::from(steps);
        let to = max_rate * f64::from(i + 1) / f64::from(steps);
        PathElement::new(
            vec![(from, threshold_ms), (to, threshold_ms)],
            dash.stroke_width(1),
        )
    });
    chart
        .draw_series(dashes)?
        .label(format!("{threshold_ms} ms target (p99)"))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], dash.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_an_svg() {
        let path =
            std::env::temp_dir().join(format!("keryu-bench-plot-{}.svg", std::process::id()));
        let points = [
            Point {
                rate: 100.0,
                p50_ms: 5.0,
                p90_ms: 8.0,
                p99_ms: 12.0,
            },
            Point {
                rate: 500.0,
                p50_ms: 9.0,
                p90_ms: 30.0,
                p99_ms: 250.0,
            },
        ];
        latency_vs_rate(&path, &points, 100.0, "test machine").expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.contains("p99"));
        let _ = std::fs::remove_file(path);
    }
}
