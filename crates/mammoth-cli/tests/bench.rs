//! `mammoth bench store` end to end at small sizes: the output's shape, not its timings.

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
