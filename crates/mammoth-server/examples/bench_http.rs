//! Appends/s over loopback HTTP beside appends/s in process, on fresh SQLite stores (FULL
//! sync), medians of 3 runs, in one run:
//!
//! ```text
//! cargo run --release -p mammoth-server --example bench_http -- [clients] [appends-per-client]
//! ```

use mammoth_sqlite::{SqliteEventStore, SqliteOptions};

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let clients: usize = args.next().map_or(Ok(64), |a| a.parse())?;
    let per_client: usize = args.next().map_or(Ok(250), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let (mut http, mut local) = (Vec::new(), Vec::new());
    for run in 0..3 {
        let store = SqliteEventStore::open(
            dir.path().join(format!("http{run}.db")),
            SqliteOptions::default(),
        )?;
        let rate = mammoth_server::bench::over_http(store.clone(), clients, per_client).await?;
        store.close().await?;
        http.push(rate.per_second());
        let store = SqliteEventStore::open(
            dir.path().join(format!("local{run}.db")),
            SqliteOptions::default(),
        )?;
        let rate = mammoth_server::bench::in_process(store.clone(), clients, per_client).await?;
        store.close().await?;
        local.push(rate.per_second());
        println!(
            "run {}: http {:.0}/s, in process {:.0}/s",
            run + 1,
            http[run],
            local[run]
        );
    }
    let (http, local) = (median(http), median(local));
    println!(
        "{clients} clients x {per_client} one-event appends, SQLite FULL: over HTTP {http:.0}/s, in process {local:.0}/s (median of 3; HTTP is {:.0}% of in process)",
        100.0 * http / local
    );
    Ok(())
}
