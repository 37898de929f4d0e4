//! `mammoth bench store` and `mammoth bench commands` end to end at small sizes: the output's
//! shape, not its timings.

mod support;

use support::Sandbox;

#[test]
fn bench_store_json_prints_one_valid_object_per_case() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("bench");
    let run = sandbox.run(&[
        "bench",
        "store",
        "--seconds",
        "1",
        "--events",
        "5000",
        "--json",
        "--path",
        dir.to_str().unwrap(),
    ]);
    let results = run.json_lines();
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["a", "b", "c", "d", "e", "f"], "{run:#?}");
    for result in &results {
        for key in [
            "case",
            "events",
            "seconds",
            "events_per_s",
            "raw_events_per_s",
            "ratio_to_raw",
            "p50_us",
            "p99_us",
            "peak_rss_mb",
            "synchronous",
        ] {
            assert!(result.get(key).is_some(), "{key} missing in {result}");
        }
        assert_eq!(result["synchronous"], "full");
        assert!(result["events"].as_u64().unwrap() > 0, "{result}");
    }
    assert!(results[1]["ratio_to_raw"].as_f64().unwrap() > 0.0);
    assert!(results[1]["p99_us"].is_null());
    assert!(results[4]["p99_us"].as_f64().unwrap() > 0.0);
    assert_eq!(results[3]["events"], 5000);
    assert_eq!(results[5]["events"], 5000);
    assert!(results[5]["peak_rss_mb"].as_f64().unwrap() > 0.0);
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "temporary files are removed"
    );
}

#[test]
fn bench_store_runs_only_the_cases_asked_for_and_prints_a_table() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&[
        "bench",
        "store",
        "--seconds",
        "0.3",
        "--cases",
        "e,a",
        "--synchronous",
        "normal",
    ]);
    let text = run.ok();
    assert!(text.contains("synchronous=NORMAL"), "{text}");
    assert!(text.contains("(a) sequential 1-event appends"), "{text}");
    assert!(text.contains("(e) append -> live subscriber"), "{text}");
    assert!(!text.contains("(b)"), "{text}");
    assert!(
        text.contains("TARGET") && text.contains("p99 < 5 ms"),
        "{text}"
    );
    assert!(text.contains("PASS") || text.contains("MISS"), "{text}");
}

#[test]
fn bench_store_refuses_an_unknown_case() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["bench", "store", "--cases", "a,z"]);
    assert!(run.failed_with(2).contains("unknown case `z`"), "{run:#?}");
}

#[test]
fn bench_commands_quick_json_prints_one_valid_object_per_case() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("bench");
    let run = sandbox.run(&[
        "bench",
        "commands",
        "--quick",
        "--seconds",
        "0.3",
        "--json",
        "--path",
        dir.to_str().unwrap(),
    ]);
    let results = run.json_lines();
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        ["commands_1", "commands_64", "commands_64_shared", "load"],
        "{run:#?}"
    );
    for result in &results {
        for key in [
            "title",
            "callers",
            "runs",
            "commands_per_s",
            "raw_events_per_s",
            "ratio_to_raw",
            "load_without_snapshot_us",
            "load_with_snapshot_us",
            "snapshot_speedup",
            "synchronous",
            "target",
            "pass",
        ] {
            assert!(result.get(key).is_some(), "{key} missing in {result}");
        }
        assert_eq!(result["runs"], 1);
        assert_eq!(result["synchronous"], "full");
    }
    for command_case in &results[..3] {
        assert!(command_case["commands_per_s"].as_f64().unwrap() > 0.0);
        assert!(command_case["raw_events_per_s"].as_f64().unwrap() > 0.0);
        assert!(command_case["ratio_to_raw"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(results[1]["callers"], 64);
    assert!(
        results[1]["pass"].is_boolean(),
        "the 64-caller case is judged"
    );
    assert_eq!(results[2]["aggregates"], 16);
    assert_eq!(results[3]["load_events"], 10_000);
    assert!(results[3]["snapshot_speedup"].as_f64().unwrap() > 0.0);
    assert!(results[3]["pass"].is_boolean());
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "temporary files are removed"
    );
}

#[test]
fn bench_commands_runs_only_the_part_asked_for_and_prints_targets() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["bench", "commands", "--quick", "--cases", "load"]);
    let text = run.ok();
    assert!(text.contains("synchronous=FULL"), "{text}");
    assert!(text.contains("load a 10,000-event aggregate"), "{text}");
    assert!(text.contains(">= 20x faster with a snapshot"), "{text}");
    assert!(text.contains("PASS") || text.contains("MISS"), "{text}");
    assert!(!text.contains("64 callers"), "{text}");
}

#[test]
fn bench_commands_refuses_an_unknown_part_and_a_bad_duration() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["bench", "commands", "--cases", "load,b"]);
    assert!(
        run.failed_with(2)
            .contains("the cases are throughput and load"),
        "{run:#?}"
    );
    let run = sandbox.run(&["bench", "commands", "--seconds", "0"]);
    assert!(run.failed_with(2).contains("--seconds"), "{run:#?}");
}

#[test]
fn bench_store_with_runs_reports_one_median_per_case_with_the_ratio_range() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path().join("bench");
    let run = sandbox.run(&[
        "bench",
        "store",
        "--seconds",
        "0.3",
        "--runs",
        "3",
        "--cases",
        "a,c",
        "--json",
        "--path",
        dir.to_str().unwrap(),
    ]);
    let results = run.json_lines();
    let cases: Vec<&str> = results
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(
        cases,
        ["a", "c"],
        "one median line per case, not one per run: {run:#?}"
    );
    for result in &results {
        assert_eq!(result["runs"], 3, "{result}");
        let (low, median, high) = (
            result["ratio_low"].as_f64().unwrap(),
            result["ratio_to_raw"].as_f64().unwrap(),
            result["ratio_high"].as_f64().unwrap(),
        );
        assert!(
            low <= median && median <= high,
            "{low} <= {median} <= {high}"
        );
    }
}
