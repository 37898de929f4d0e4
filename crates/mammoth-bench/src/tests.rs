//! Smoke tests: every case runs end to end at small sizes and reports sane numbers. Timings
//! are not asserted; they depend on the machine.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::latency::percentile;

fn tiny() -> BenchOptions {
    BenchOptions {
        duration: Duration::from_millis(150),
        read_events: 3_000,
        synchronous: Synchronous::Normal,
        ..BenchOptions::quick()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_runs_and_reports_both_sides() {
    let mut harness = Harness::new(tiny(), Arc::new(NoProgress)).unwrap();
    for case in Case::ALL {
        let result = harness.run(case).await.unwrap();
        assert_eq!(result.case, case.letter());
        assert_eq!(result.synchronous, "normal");
        assert!(result.events > 0, "{case}: no events");
        assert!(result.seconds > 0.0, "{case}: no time");
        match case {
            Case::SubscriberLatency => {
                assert!(result.p50_us.unwrap() <= result.p99_us.unwrap());
                assert!(result.raw_p99_us.is_some());
                assert_eq!(result.pass, case.passes(&result));
            }
            Case::ReadMemory => {
                assert_eq!(result.events, 3_000);
                assert!(result.peak_rss_mb.unwrap() > 0.0);
                assert!(result.raw_peak_rss_mb.unwrap() > 0.0);
            }
            _ => {
                assert!(
                    result.raw_events_per_s.unwrap() > 0.0,
                    "{case}: no raw rate"
                );
                assert!(result.ratio_to_raw.unwrap() > 0.0);
            }
        }
        if case == Case::ScanLog {
            assert_eq!(result.events, 3_000);
        }
    }
}

#[test]
fn case_letters_parse_and_unknown_ones_name_the_choices() {
    assert_eq!("c".parse::<Case>().unwrap(), Case::BatchAppends);
    assert_eq!("F".parse::<Case>().unwrap(), Case::ReadMemory);
    let error = "g".parse::<Case>().unwrap_err();
    assert!(error.contains("a, b, c, d, e and f"), "{error}");
}

#[test]
fn percentiles_use_the_nearest_rank() {
    let mut samples: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&mut samples, 0.5), Some(50.0));
    assert_eq!(percentile(&mut samples, 0.99), Some(99.0));
    assert_eq!(percentile(&mut [7.0], 0.99), Some(7.0));
    assert_eq!(percentile(&mut [], 0.5), None);
}

#[test]
fn targets_judge_the_measured_side() {
    let mut result =
        CaseResult::new(Case::BatchAppends, Synchronous::Full, 700, 1.0).with_raw(1_000, 1.0);
    assert_eq!(Case::BatchAppends.passes(&result), Some(true));
    result = CaseResult::new(Case::BatchAppends, Synchronous::Full, 690, 1.0).with_raw(1_000, 1.0);
    assert_eq!(Case::BatchAppends.passes(&result), Some(false));
    let sequential = CaseResult::new(Case::SequentialAppends, Synchronous::Full, 1, 1.0);
    assert_eq!(Case::SequentialAppends.passes(&sequential), None);
}

#[test]
fn peak_memory_is_read_from_procfs() {
    assert!(status_kib("VmHWM:").unwrap() > 0);
    assert!(status_kib("NoSuchField:").is_none());
}

/// Remembers the phases it was told about and counts the units.
#[derive(Default)]
struct Recorder {
    phases: std::sync::Mutex<Vec<String>>,
    units: std::sync::atomic::AtomicU64,
}

impl Progress for Recorder {
    fn phase(&self, label: &str, _length: Option<u64>) {
        self.phases.lock().unwrap().push(label.to_owned());
    }
    fn advance(&self, units: u64) {
        self.units
            .fetch_add(units, std::sync::atomic::Ordering::Relaxed);
    }
}

fn tiny_commands(parent: &Path) -> CommandsOptions {
    CommandsOptions {
        duration: Duration::from_millis(100),
        runs: 2,
        load_events: 300,
        load_repeats: 1,
        dir: Some(parent.to_owned()),
        synchronous: Synchronous::Normal,
        ..CommandsOptions::quick()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_benchmark_reports_every_case_with_its_raw_rate_and_cleans_up() {
    let parent = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder::default());
    let results = run_commands(&tiny_commands(parent.path()), recorder.clone())
        .await
        .unwrap();
    let cases: Vec<&str> = results.iter().map(|r| r.case).collect();
    assert_eq!(
        cases,
        ["commands_1", "commands_64", "commands_64_shared", "load"]
    );
    for result in &results[..3] {
        assert_eq!(result.runs, 2);
        assert!(result.operations > 0, "{result:?}");
        assert!(result.raw_events_per_s.unwrap() > 0.0, "{result:?}");
        assert_eq!(result.ratio_per_run.as_ref().unwrap().len(), 2);
        assert_eq!(result.synchronous, "normal");
    }
    assert_eq!(results[1].callers, 64);
    assert_eq!(results[2].aggregates, 16);
    assert!(results[1].pass.is_some() && results[0].pass.is_none());
    let load = &results[3];
    assert_eq!(load.load_events, Some(300));
    assert!(load.load_without_snapshot_us.unwrap() > 0.0);
    assert!(load.snapshot_speedup.unwrap() > 0.0);
    assert_eq!(load.pass, Some(load.snapshot_speedup.unwrap() >= 20.0));
    let phases = recorder.phases.lock().unwrap();
    assert_eq!(phases.len(), 12, "{phases:?}");
    assert!(phases[0].starts_with("run 1/2: raw appends, 1 caller"));
    assert!(recorder.units.load(std::sync::atomic::Ordering::Relaxed) > 600);
    assert!(
        std::fs::read_dir(parent.path()).unwrap().next().is_none(),
        "each run removes its files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_benchmark_runs_only_the_parts_asked_for() {
    let parent = tempfile::tempdir().unwrap();
    let options = CommandsOptions {
        parts: vec![CommandsPart::Load],
        runs: 1,
        // Long enough that running the throughput part would show in the time taken.
        duration: Duration::from_secs(5),
        ..tiny_commands(parent.path())
    };
    let started = std::time::Instant::now();
    let results = run_commands(&options, Arc::new(NoProgress)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].case, "load");
}

#[test]
fn command_parts_parse_and_medians_take_the_middle() {
    assert_eq!("LOAD".parse::<CommandsPart>().unwrap(), CommandsPart::Load);
    let error = "b".parse::<CommandsPart>().unwrap_err();
    assert!(error.contains("throughput and load"), "{error}");
    assert_eq!(commands::median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(commands::median(&[4.0, 1.0]), Some(2.5));
    assert_eq!(commands::median(&[]), None);
}
