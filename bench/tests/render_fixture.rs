//! `bench report` renders stored result files (a shardmq run from the foundation report and a
//! peer result in the same format) into markdown with SVG charts.

use shardmq_bench::render::{render, ReportArgs};

#[test]
fn a_report_renders_from_stored_results() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let out = tempfile::tempdir().unwrap();
    let args = ReportArgs {
        inputs: vec![
            fixtures.join("shardmq-produce.json"),
            fixtures.join("redis-produce.json"),
            fixtures.join("shardmq-e2e.json"),
        ],
        out: out.path().join("report"),
        title: "fixture report".into(),
    };
    let readme = render(&args).unwrap();
    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(text.starts_with("# fixture report"));
    assert!(
        text.contains("| shardmq-produce | shardmq | produce | 2000000 |"),
        "{text}"
    );
    assert!(
        text.contains("| redis-produce | redis-streams | produce | 2000000 | 121780 |"),
        "{text}"
    );
    assert!(
        text.contains("## Ratios against `shardmq-produce`"),
        "{text}"
    );
    assert!(text.contains("![latency percentiles](latency.svg)"));
    assert!(
        text.contains("redis-benchmark -n 2000000"),
        "commands are listed"
    );
    // The end-to-end run (two producer executors, a 1 s warm-up, open loop at 20,000 msg/s)
    // brings its own tables; the old fixtures, written before those fields, show "–".
    assert!(text.contains("## End-to-end latency"), "{text}");
    assert!(
        text.contains("| shardmq-e2e | shardmq | 217 | 268 | 389 | 885 | 1456 | 1456 |"),
        "{text}"
    );
    assert!(text.contains("| shardmq-e2e | 20000 | 74 |"), "{text}");
    assert!(
        text.contains("| shardmq-e2e | 2 | 1 | – | 1.16 1.44 1.46 |"),
        "executors, warm-up and load average before: {text}"
    );
    assert!(
        text.contains("| redis-produce | 1 | 0 | – | – | – |"),
        "{text}"
    );
    assert!(text.contains("![p99 over time](p99.svg)"));
    let e2e_first = ReportArgs {
        inputs: vec![
            fixtures.join("shardmq-e2e.json"),
            fixtures.join("shardmq-produce.json"),
        ],
        out: out.path().join("e2e-first"),
        title: "e2e first".into(),
    };
    let text = std::fs::read_to_string(render(&e2e_first).unwrap()).unwrap();
    assert!(
        text.contains(
            "| run | throughput | p50 | p99 | p99.99 | end-to-end p99 | end-to-end p99.99 |"
        ),
        "an end-to-end baseline brings end-to-end ratios: {text}"
    );
    let ratio_row = text
        .lines()
        .find(|l| l.starts_with("| shardmq-produce |") && l.contains('×'))
        .expect("a ratio row for the produce run");
    assert!(
        ratio_row.ends_with("| – | – |"),
        "a run without end-to-end figures gets dashes there: {ratio_row}"
    );
    for chart in ["latency.svg", "throughput.svg", "p99.svg"] {
        let svg = std::fs::read_to_string(out.path().join("report").join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{chart} is a whole SVG"
        );
        assert!(
            svg.contains("shardmq-produce")
                && svg.contains("redis-produce")
                && svg.contains("shardmq-e2e"),
            "{chart} has a legend entry per run"
        );
    }
}

#[test]
fn a_file_without_the_needed_fields_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"kind": "produce"}"#).unwrap();
    let args = ReportArgs {
        inputs: vec![bad],
        out: dir.path().join("out"),
        title: "t".into(),
    };
    let err = render(&args)
        .expect_err("a result without numbers cannot be rendered")
        .to_string();
    assert!(err.contains("bad.json") && err.contains("missing"), "{err}");
}
