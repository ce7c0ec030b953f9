//! `shardmq bench report`: renders one or several bench result JSON files into a report
//! directory: `README.md` (machine, commit, commands, a table of every run with its threads,
//! warm-up and the load average before and after it, end-to-end and publish-delay tables, ratios
//! against the first run) and three SVG charts: `latency.svg` (percentile distribution on a log
//! scale), `throughput.svg` (messages per second over each run) and `p99.svg` (p99 per second
//! over each run: end-to-end latency for end-to-end runs, else publish or pull latency).
//!
//! Input is what `shardmq bench … --json` writes; a file may come from another system's driver
//! as long as it carries the same field names (`system` names it; `shardmq` when absent). Runs on
//! the calling thread; plain file I/O.

use std::path::{Path, PathBuf};

use clap::Args;
use plotters::prelude::*;
use serde_json::Value;

use crate::error::BenchError;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Result JSON files; the first is the baseline the ratios are computed against.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Directory to write README.md and the charts into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Title of the report.
    #[arg(long, default_value = "shardmq benchmark report")]
    pub title: String,
}

/// One run read from its JSON file.
struct Run {
    label: String,
    system: String,
    kind: String,
    messages: u64,
    msg_per_sec: f64,
    mb_per_sec: f64,
    /// p50, p90, p99, p99.9, p99.99, max in µs.
    percentiles: [f64; 6],
    series: Vec<f64>,
    /// p99 per second, µs (end-to-end for end-to-end runs).
    p99_series: Vec<f64>,
    /// End-to-end runs: p50, p90, p99, p99.9, p99.99, max in µs.
    end_to_end: Option<[f64; 6]>,
    /// Open-loop runs: target rate, and publish delay p50 … max in µs.
    open_loop: Option<(f64, [f64; 6])>,
    threads: u64,
    warmup_s: f64,
    /// shardmq client batching: the Producer's linger, µs.
    linger_us: Option<u64>,
    load_before: String,
    load_after: String,
    commit: String,
    command: String,
}

/// OMB millisecond fields `{prefix}50pct` … `{prefix}Max` as µs, if the run has them.
fn omb_percentiles(json: &Value, prefix: &str) -> Option<[f64; 6]> {
    let mut out = [0f64; 6];
    for (slot, suffix) in out
        .iter_mut()
        .zip(["50pct", "90pct", "99pct", "999pct", "9999pct", "Max"])
    {
        *slot = json[format!("{prefix}{suffix}")].as_f64()? * 1000.0;
    }
    Some(out)
}

fn load_text(value: &Value) -> String {
    value.as_array().map_or_else(
        || "–".into(),
        |a| {
            a.iter()
                .filter_map(Value::as_f64)
                .map(|l| format!("{l:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

const PERCENTILES: [&str; 6] = ["p50", "p90", "p99", "p99.9", "p99.99", "max"];

fn invalid(path: &Path, what: &str) -> BenchError {
    BenchError::InvalidArgs(format!("{}: {what}", path.display()))
}

fn read_run(path: &Path) -> Result<Run, BenchError> {
    let text = std::fs::read_to_string(path).map_err(|e| invalid(path, &e.to_string()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| invalid(path, &format!("not JSON: {e}")))?;
    let number = |key: &str| {
        json[key]
            .as_f64()
            .ok_or_else(|| invalid(path, &format!("field {key} missing")))
    };
    let latency = &json["latencyUs"];
    let mut percentiles = [0f64; 6];
    for (slot, key) in percentiles
        .iter_mut()
        .zip(["p50", "p90", "p99", "p999", "p9999", "max"])
    {
        // p90 is absent from results written before it was recorded: 0 means "not measured".
        *slot = match latency[key].as_f64() {
            Some(value) => value,
            None if key == "p90" => 0.0,
            None => return Err(invalid(path, &format!("latencyUs.{key} missing"))),
        };
    }
    let (series_key, p99_key) = match json["kind"].as_str() {
        Some("consume") => ("consumeRateSeries", "pullLatency99pctSeries"),
        Some("end-to-end") => ("publishRateSeries", "endToEndLatency99pctSeries"),
        _ => ("publishRateSeries", "publishLatency99pctSeries"),
    };
    let floats = |key: &str, scale: f64| -> Vec<f64> {
        json[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_f64)
                    .map(|v| v * scale)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(Run {
        label: path
            .file_stem()
            .map_or_else(|| "run".into(), |s| s.to_string_lossy().into_owned()),
        system: json["system"].as_str().unwrap_or("shardmq").to_string(),
        kind: json["kind"].as_str().unwrap_or("?").to_string(),
        messages: json["messages"]
            .as_u64()
            .ok_or_else(|| invalid(path, "field messages missing"))?,
        msg_per_sec: number("msgPerSec")?,
        mb_per_sec: number("mbPerSec")?,
        percentiles,
        series: floats(series_key, 1.0),
        p99_series: floats(p99_key, 1000.0),
        end_to_end: omb_percentiles(&json, "endToEndLatency"),
        open_loop: json["targetRate"]
            .as_f64()
            .zip(omb_percentiles(&json, "publishDelayLatency")),
        threads: json["threads"].as_u64().unwrap_or(1),
        warmup_s: json["warmupSeconds"].as_f64().unwrap_or(0.0),
        linger_us: json["clientLingerUs"].as_u64(),
        load_before: load_text(&json["loadAverageBefore"]),
        load_after: load_text(&json["loadAverageAfter"]),
        commit: json["gitCommit"].as_str().unwrap_or("–").to_string(),
        command: json["command"].as_str().unwrap_or("").to_string(),
    })
}

/// Renders the report; returns the path of its README.md.
pub fn render(args: &ReportArgs) -> Result<PathBuf, BenchError> {
    let runs = args
        .inputs
        .iter()
        .map(|p| read_run(p))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&args.out).map_err(|e| invalid(&args.out, &e.to_string()))?;
    latency_chart(&runs, &args.out.join("latency.svg"))?;
    series_chart(
        &runs,
        &args.out.join("throughput.svg"),
        "messages per second over the run",
        "msg/s",
        |r| &r.series,
    )?;
    series_chart(
        &runs,
        &args.out.join("p99.svg"),
        "p99 latency per second (µs; end-to-end for end-to-end runs)",
        "µs",
        |r| &r.p99_series,
    )?;
    let readme = args.out.join("README.md");
    std::fs::write(&readme, markdown(&args.title, &runs))
        .map_err(|e| invalid(&readme, &e.to_string()))?;
    Ok(readme)
}

fn markdown(title: &str, runs: &[Run]) -> String {
    let mut out = format!("# {title}\n\n## Machine\n\n{}\n", machine());
    out.push_str("## Runs\n\n| run | system | kind | messages | msg/s | MB/s | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in runs {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {} |\n",
            r.label,
            r.system,
            r.kind,
            r.messages,
            r.msg_per_sec,
            r.mb_per_sec,
            cells(&r.percentiles)
        ));
    }
    out.push_str("\nLatency above is per request: send to ack (produce, end-to-end), pull round trip (consume); open-loop runs measure from the intended send time.\n");
    if runs.iter().any(|r| r.end_to_end.is_some()) {
        out.push_str("\n## End-to-end latency (send to receipt, per record)\n\n| run | system | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs |\n|---|---|---:|---:|---:|---:|---:|---:|\n");
        for r in runs {
            if let Some(e) = &r.end_to_end {
                out.push_str(&format!("| {} | {} | {} |\n", r.label, r.system, cells(e)));
            }
        }
    }
    if runs.iter().any(|r| r.open_loop.is_some()) {
        out.push_str("\n## Open loop: publish delay (how late each request went out)\n\n| run | target msg/s | p50 µs | p90 µs | p99 µs | p99.9 µs | p99.99 µs | max µs |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in runs {
            if let Some((rate, d)) = &r.open_loop {
                out.push_str(&format!("| {} | {rate:.0} | {} |\n", r.label, cells(d)));
            }
        }
    }
    out.push_str("\n## Conditions of each run\n\n| run | bench executors | warm-up s | client batching | load avg before | load avg after | commit |\n|---|---:|---:|---|---|---|---|\n");
    for r in runs {
        let batching = r
            .linger_us
            .map_or_else(|| "–".into(), |us| format!("Producer, linger {us} µs"));
        out.push_str(&format!(
            "| {} | {} | {} | {batching} | {} | {} | {} |\n",
            r.label, r.threads, r.warmup_s, r.load_before, r.load_after, r.commit
        ));
    }
    if let Some((base, rest)) = runs.split_first() {
        if !rest.is_empty() {
            let e2e = base.end_to_end.is_some();
            out.push_str(&format!(
                "\n## Ratios against `{}`\n\n| run | throughput | p50 | p99 | p99.99 |{}\n|---|---:|---:|---:|---:|{}\n",
                base.label,
                if e2e { " end-to-end p99 | end-to-end p99.99 |" } else { "" },
                if e2e { "---:|---:|" } else { "" },
            ));
            let ratio = |a: f64, b: f64| {
                if b > 0.0 && a > 0.0 {
                    format!("{:.2}×", a / b)
                } else {
                    "–".into()
                }
            };
            for r in rest {
                let e2e_cells = match (&base.end_to_end, &r.end_to_end) {
                    (Some(b), Some(e)) => {
                        format!(" {} | {} |", ratio(e[2], b[2]), ratio(e[4], b[4]))
                    }
                    (Some(_), None) => " – | – |".into(),
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |{e2e_cells}\n",
                    r.label,
                    ratio(r.msg_per_sec, base.msg_per_sec),
                    ratio(r.percentiles[0], base.percentiles[0]),
                    ratio(r.percentiles[2], base.percentiles[2]),
                    ratio(r.percentiles[4], base.percentiles[4])
                ));
            }
            out.push_str("\nThroughput ratio > 1 means more messages per second than the baseline; latency ratio > 1 means slower.\n");
        }
    }
    out.push_str("\n## Charts\n\n![latency percentiles](latency.svg)\n\n![throughput over time](throughput.svg)\n\n![p99 over time](p99.svg)\n\n## Commands\n\n");
    for r in runs {
        let command = if r.command.is_empty() {
            "(not recorded)"
        } else {
            &r.command
        };
        out.push_str(&format!("- `{}`: `{command}`\n", r.label));
    }
    out
}

/// Percentile cells joined for a table row; 0 (not measured) shows as "–".
fn cells(values: &[f64; 6]) -> String {
    values
        .iter()
        .map(|v| {
            if *v > 0.0 {
                format!("{v:.0}")
            } else {
                "–".into()
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let commit = crate::report::git_commit().unwrap_or_else(|| "unknown".into());
    format!(
        "- CPU: {cpu} × {cores}\n- kernel: {}\n- load average when rendered: {}\n- git commit when rendered: {commit}\n",
        kernel.trim(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

fn chart_error(path: &Path, e: impl std::fmt::Display) -> BenchError {
    invalid(path, &format!("drawing failed: {e}"))
}

fn latency_chart(runs: &[Run], path: &Path) -> Result<(), BenchError> {
    let max = runs
        .iter()
        .flat_map(|r| r.percentiles)
        .fold(10.0f64, f64::max)
        * 2.0;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption("latency by percentile (µs, log scale)", ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.2f64..5.2f64, (1f64..max).log_scale())
        .map_err(|e| chart_error(path, e))?;
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|x| {
            PERCENTILES
                .get(x.round() as usize)
                .map_or(String::new(), |s| (*s).to_string())
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .y_desc("µs")
        .draw()
        .map_err(|e| chart_error(path, e))?;
    for (i, run) in runs.iter().enumerate() {
        let points = run
            .percentiles
            .iter()
            .enumerate()
            .filter(|(_, y)| **y > 0.0)
            .map(|(x, y)| (x as f64, y.max(1.0)))
            .collect();
        draw_run(&mut chart, i, &run.label, points, path)?;
    }
    finish(chart, &root, path)
}

/// A per-second series of every run as lines over the run's seconds.
fn series_chart(
    runs: &[Run],
    path: &Path,
    caption: &str,
    unit: &str,
    series: fn(&Run) -> &Vec<f64>,
) -> Result<(), BenchError> {
    let seconds = runs
        .iter()
        .map(|r| series(r).len())
        .max()
        .unwrap_or(1)
        .max(1);
    let top = runs
        .iter()
        .flat_map(|r| series(r).iter().copied())
        .fold(1.0f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| chart_error(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..top)
        .map_err(|e| chart_error(path, e))?;
    chart
        .configure_mesh()
        .x_desc("second")
        .y_desc(unit)
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(|e| chart_error(path, e))?;
    if runs.iter().all(|r| series(r).is_empty()) {
        let style = ("sans-serif", 18).into_font().color(&BLACK);
        root.draw_text(
            "these results carry no per-second series",
            &style,
            (300, 250),
        )
        .map_err(|e| chart_error(path, e))?;
    }
    for (i, run) in runs.iter().enumerate() {
        // Each second's value is drawn at the middle of its second.
        let points = series(run)
            .iter()
            .enumerate()
            .map(|(s, v)| (s as f64 + 0.5, *v))
            .collect();
        draw_run(&mut chart, i, &run.label, points, path)?;
    }
    finish(chart, &root, path)
}

type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// Draws run `index` as a line with a legend entry, and its points (a run with a single value
/// has no line).
fn draw_run<X, Y>(
    chart: &mut Chart<'_, X, Y>,
    index: usize,
    label: &str,
    points: Vec<(f64, f64)>,
    path: &Path,
) -> Result<(), BenchError>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    let color = Palette99::pick(index).to_rgba();
    chart
        .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
        .map_err(|e| chart_error(path, e))?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 3, color.filled())),
        )
        .map_err(|e| chart_error(path, e))?;
    Ok(())
}

/// Draws the legend and writes the SVG file.
fn finish<X, Y>(
    mut chart: Chart<'_, X, Y>,
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    path: &Path,
) -> Result<(), BenchError>
where
    X: plotters::coord::ranged1d::Ranged<ValueType = f64>,
    Y: plotters::coord::ranged1d::Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()
        .map_err(|e| chart_error(path, e))?;
    root.present().map_err(|e| chart_error(path, e))
}
