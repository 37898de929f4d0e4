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
