//! mammoth's command path beside cqrs-es + postgres-es, on the same PostgreSQL, in one run.
//!
//! Both frameworks run the same trivial aggregate (an account; one `Deposit` command decides
//! one `Deposited` event) with 1, 8 and 64 concurrent callers on their own aggregates, and 64
//! callers on 16 shared aggregates (optimistic-concurrency conflicts, retried). Each caller
//! sends `--commands-per-aggregate` commands (default [`COMMANDS_PER_AGGREGATE`]) to an
//! aggregate and then moves to a new one, so every command loads at most that many events in
//! either framework (cqrs-es without snapshots replays the whole stream per command; a stream
//! that grew for the whole run would measure that instead of the command path), and a
//! framework with an aggregate cache still misses it on every new aggregate.
//!
//! Every case of every run gets a fresh schema, dropped afterwards. The two frameworks
//! alternate inside each run, and the medians of `--runs` runs are reported.
//!
//! ```text
//! cargo run --release --manifest-path peers/cqrs-es-bench/Cargo.toml -- \
//!     --url postgres://postgres@127.0.0.1:5432/postgres --seconds 3 --runs 3 [--json]
//! ```

mod mammoth_side;
mod peer;

use std::time::Duration;

use serde::Serialize;

/// Commands a caller sends to one aggregate before it moves to a new one, by default (the
/// same rotation as `mammoth bench commands`).
pub const COMMANDS_PER_AGGREGATE: u64 = 10;

/// The account both frameworks decide on; shared so the payloads are the same bytes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum AccountEvent {
    /// Money came in.
    Deposited {
        /// How much.
        amount: i64,
    },
}

/// One measured case: who, how many callers, how many aggregates at once.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    callers: usize,
    /// `Some(n)`: the callers share `n` aggregates; `None`: each caller has its own.
    shared: Option<usize>,
    /// Commands sent to one aggregate before moving to the next.
    per_aggregate: u64,
}

impl Case {
    fn name(self) -> String {
        match self.shared {
            Some(n) => format!("{} callers, {n} shared aggregates", self.callers),
            None => format!("{} callers, own aggregates", self.callers),
        }
    }

    /// The aggregate id caller `caller` works on after `done` commands.
    pub fn aggregate_id(self, caller: usize, done: u64) -> String {
        let generation = done / self.per_aggregate;
        match self.shared {
            Some(slots) => format!("s{}g{generation}", caller % slots),
            None => format!("c{caller}g{generation}"),
        }
    }
}

const CASES: [Case; 4] = [
    Case {
        callers: 1,
        shared: None,
        per_aggregate: COMMANDS_PER_AGGREGATE,
    },
    Case {
        callers: 8,
        shared: None,
        per_aggregate: COMMANDS_PER_AGGREGATE,
    },
    Case {
        callers: 64,
        shared: None,
        per_aggregate: COMMANDS_PER_AGGREGATE,
    },
    Case {
        callers: 64,
        shared: Some(16),
        per_aggregate: COMMANDS_PER_AGGREGATE,
    },
];

/// What one framework did in one case of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    /// Commands that succeeded.
    pub commands: u64,
    /// Conflicts that were retried.
    pub retries: u64,
    /// Wall time.
    pub seconds: f64,
    /// WAL flushes the server made meanwhile (`pg_stat_wal.wal_sync`), when it reports them:
    /// how many commits each flush carried, i.e. how well commits were grouped.
    pub wal_syncs: Option<u64>,
}

impl Measured {
    fn per_second(self) -> f64 {
        if self.seconds > 0.0 {
            self.commands as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn per_wal_sync(self) -> Option<f64> {
        self.wal_syncs
            .filter(|syncs| *syncs > 0)
            .map(|syncs| self.commands as f64 / syncs as f64)
    }
}

/// Which frameworks a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Only {
    Both,
    Mammoth,
    CqrsEs,
}

/// One row of the result, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Row {
    case: String,
    callers: usize,
    aggregates: usize,
    commands_per_aggregate: u64,
    cqrs_es_per_second: f64,
    mammoth_per_second: f64,
    ratio: f64,
    cqrs_es_runs: Vec<f64>,
    mammoth_runs: Vec<f64>,
    cqrs_es_retries: Vec<u64>,
    mammoth_retries: Vec<u64>,
    /// Commands per WAL flush, median (absent when the server does not report flushes).
    cqrs_es_commands_per_wal_sync: Option<f64>,
    mammoth_commands_per_wal_sync: Option<f64>,
    /// mammoth's command path on MySQL/MariaDB (`--mysql-url`), median and per run.
    mammoth_mysql_per_second: Option<f64>,
    mammoth_mysql_runs: Vec<f64>,
    /// The issue's target at 64 callers: mammoth at least 10 times cqrs-es.
    target_ratio: Option<f64>,
    meets_target: Option<bool>,
}

struct Options {
    url: String,
    duration: Duration,
    runs: usize,
    json: bool,
    peer_pool: u32,
    per_aggregate: u64,
    only: Only,
    mysql_url: Option<String>,
}

const USAGE: &str = "usage: cqrs-es-bench [--url URL] [--seconds S] [--runs N] [--peer-pool N] [--only mammoth|cqrs-es] [--mysql-url URL] [--json]
  --url         PostgreSQL URL (default $MAMMOTH_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres)
  --seconds     seconds per case (default 3)
  --runs        runs; medians are reported (default 3)
  --peer-pool   cqrs-es connection pool size (default 10, as postgres-es's default_postgress_pool)
  --commands-per-aggregate N
                commands a caller sends to one aggregate before moving to a new one (default 10)
  --only        measure one framework alone (for profiling; no ratio)
  --mysql-url   also run mammoth's command path on this MySQL/MariaDB server (e.g. mysql://root@127.0.0.1:3306/test)
  --json        one JSON object per case instead of a table";

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        url: std::env::var("MAMMOTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        duration: Duration::from_secs(3),
        runs: 3,
        json: false,
        peer_pool: 10,
        per_aggregate: COMMANDS_PER_AGGREGATE,
        only: Only::Both,
        mysql_url: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => options.url = value("--url")?,
            "--seconds" => {
                let seconds: f64 = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
                options.duration = Duration::from_secs_f64(seconds);
            }
            "--runs" => {
                options.runs = value("--runs")?
                    .parse()
                    .map_err(|e| format!("--runs: {e}"))?;
            }
            "--peer-pool" => {
                options.peer_pool = value("--peer-pool")?
                    .parse()
                    .map_err(|e| format!("--peer-pool: {e}"))?;
            }
            "--commands-per-aggregate" => {
                options.per_aggregate = value("--commands-per-aggregate")?
                    .parse()
                    .map_err(|e| format!("--commands-per-aggregate: {e}"))?;
            }
            "--only" => {
                options.only = match value("--only")?.as_str() {
                    "mammoth" => Only::Mammoth,
                    "cqrs-es" => Only::CqrsEs,
                    other => {
                        return Err(format!("--only: {other:?} is neither mammoth nor cqrs-es"));
                    }
                };
            }
            "--mysql-url" => options.mysql_url = Some(value("--mysql-url")?),
            "--json" => options.json = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if options.per_aggregate == 0 {
        return Err("--commands-per-aggregate must be at least 1".to_owned());
    }
    if options.runs == 0 {
        return Err("--runs must be at least 1".to_owned());
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(options: &Options) -> Result<(), BoxError> {
    // measured[case][run] = (cqrs-es, mammoth)
    let mut measured = vec![Vec::new(); CASES.len()];
    // mysql[case][run]: mammoth on MySQL, when --mysql-url is given
    let mut mysql: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    for run in 0..options.runs {
        for (index, case) in CASES.iter().enumerate() {
            let case = &Case {
                per_aggregate: options.per_aggregate,
                ..*case
            };
            let tag = format!("{}_{}_{run}_{index}", std::process::id(), started_nanos());
            // Alternate which framework goes first, so neither always gets the warmer cache.
            let (peer, ours) = if (run + index) % 2 == 0 {
                let peer = measure_peer(options, *case, &tag).await?;
                let ours = measure_mammoth(options, *case, &tag).await?;
                (peer, ours)
            } else {
                let ours = measure_mammoth(options, *case, &tag).await?;
                let peer = measure_peer(options, *case, &tag).await?;
                (peer, ours)
            };
            let on_mysql = match &options.mysql_url {
                Some(url) if options.only != Only::CqrsEs => {
                    let measured = mammoth_side::measure_mysql(options, url, *case, &tag).await?;
                    mysql[index].push(measured.per_second());
                    format!("  mammoth on MySQL {:>9.0}/s", measured.per_second())
                }
                _ => String::new(),
            };
            eprintln!(
                "run {}/{}: {:<32} cqrs-es {:>9.0}/s  mammoth {:>9.0}/s{on_mysql}",
                run + 1,
                options.runs,
                case.name(),
                peer.per_second(),
                ours.per_second()
            );
            measured[index].push((peer, ours));
        }
    }
    let rows: Vec<Row> = CASES
        .iter()
        .zip(&measured)
        .zip(mysql)
        .map(|((case, runs), mysql_runs)| {
            row(
                Case {
                    per_aggregate: options.per_aggregate,
                    ..*case
                },
                runs,
                mysql_runs,
            )
        })
        .collect();
    if options.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
    } else {
        print_table(options, &rows);
    }
    Ok(())
}

async fn measure_peer(options: &Options, case: Case, tag: &str) -> Result<Measured, BoxError> {
    if options.only == Only::Mammoth {
        return Ok(Measured::default());
    }
    let before = wal_syncs(&options.url).await;
    let measured = peer::measure(options, case, tag).await?;
    Ok(with_wal_syncs(
        measured,
        before,
        wal_syncs(&options.url).await,
    ))
}

async fn measure_mammoth(options: &Options, case: Case, tag: &str) -> Result<Measured, BoxError> {
    if options.only == Only::CqrsEs {
        return Ok(Measured::default());
    }
    let before = wal_syncs(&options.url).await;
    let measured = mammoth_side::measure(options, case, tag).await?;
    Ok(with_wal_syncs(
        measured,
        before,
        wal_syncs(&options.url).await,
    ))
}

fn with_wal_syncs(measured: Measured, before: Option<i64>, after: Option<i64>) -> Measured {
    let wal_syncs = before
        .zip(after)
        .and_then(|(before, after)| u64::try_from(after - before).ok());
    Measured {
        wal_syncs,
        ..measured
    }
}

/// The server's WAL flush count so far (PostgreSQL 14+), `None` when it cannot tell.
async fn wal_syncs(url: &str) -> Option<i64> {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url).await.ok()?;
    let syncs = sqlx::query_scalar::<_, i64>("SELECT wal_sync FROM pg_stat_wal")
        .fetch_one(&mut connection)
        .await
        .ok();
    let _ = connection.close().await;
    syncs
}

fn started_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000)
        .unwrap_or(0)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    }
}

/// The median of the values every run has, `None` when a run lacks one.
fn median_of(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.collect();
    values
        .filter(|values| !values.is_empty())
        .map(|values| median(&values))
}

fn row(case: Case, runs: &[(Measured, Measured)], mysql_runs: Vec<f64>) -> Row {
    let cqrs_es_runs: Vec<f64> = runs.iter().map(|(p, _)| p.per_second()).collect();
    let mammoth_runs: Vec<f64> = runs.iter().map(|(_, m)| m.per_second()).collect();
    let peer = median(&cqrs_es_runs);
    let ours = median(&mammoth_runs);
    let both = peer > 0.0 && ours > 0.0;
    let ratio = if both { ours / peer } else { 0.0 };
    let target_ratio = (case.callers == 64 && both).then_some(10.0);
    Row {
        case: case.name(),
        callers: case.callers,
        aggregates: case.shared.unwrap_or(case.callers),
        commands_per_aggregate: case.per_aggregate,
        cqrs_es_per_second: peer,
        mammoth_per_second: ours,
        ratio,
        cqrs_es_runs,
        mammoth_runs,
        cqrs_es_retries: runs.iter().map(|(p, _)| p.retries).collect(),
        mammoth_retries: runs.iter().map(|(_, m)| m.retries).collect(),
        cqrs_es_commands_per_wal_sync: median_of(runs.iter().map(|(p, _)| p.per_wal_sync())),
        mammoth_commands_per_wal_sync: median_of(runs.iter().map(|(_, m)| m.per_wal_sync())),
        mammoth_mysql_per_second: (!mysql_runs.is_empty()).then(|| median(&mysql_runs)),
        mammoth_mysql_runs: mysql_runs,
        target_ratio,
        meets_target: target_ratio.map(|target| ratio >= target),
    }
}

fn print_table(options: &Options, rows: &[Row]) {
    println!(
        "cqrs-es (postgres-es, pool {}) vs mammoth (PgEventStore + Repository + CommandBus), {} commands per aggregate, {} s per case, medians of {} runs",
        options.peer_pool,
        options.per_aggregate,
        options.duration.as_secs_f64(),
        options.runs
    );
    let mysql = options.mysql_url.is_some();
    let mysql_header = if mysql { "  MAMMOTH-MYSQL/S" } else { "" };
    println!(
        "{:<34} {:>12} {:>12} {:>8} {:>14}{mysql_header}  TARGET",
        "CASE", "CQRS-ES/S", "MAMMOTH/S", "RATIO", "CMDS/WAL-SYNC"
    );
    for row in rows {
        let target = match (row.target_ratio, row.meets_target) {
            (Some(target), Some(met)) => {
                format!(">= {target:.0}x {}", if met { "met" } else { "MISSED" })
            }
            _ => "-".to_owned(),
        };
        let per_sync = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{v:.1}"));
        let syncs = format!(
            "{}/{}",
            per_sync(row.cqrs_es_commands_per_wal_sync),
            per_sync(row.mammoth_commands_per_wal_sync)
        );
        let on_mysql = match row.mammoth_mysql_per_second {
            Some(value) if mysql => format!(" {value:>16.0}"),
            _ if mysql => format!(" {:>16}", "-"),
            _ => String::new(),
        };
        println!(
            "{:<34} {:>12.0} {:>12.0} {:>7.1}x {:>14}{on_mysql}  {}",
            row.case, row.cqrs_es_per_second, row.mammoth_per_second, row.ratio, syncs, target
        );
    }
    println!(
        "CMDS/WAL-SYNC: commands per WAL flush of the server (pg_stat_wal.wal_sync), cqrs-es/mammoth: how many commits each fsync carried"
    );
}
