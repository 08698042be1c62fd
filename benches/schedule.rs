//! Throughput of the schedule engine: `zoomd::schedule::occurrences` over one year for N
//! entries (mixed cron shapes and zones), against a baseline of bare `croner` iteration of
//! the same expressions on the naive local clock (no zones, no DST rules, no skip dates,
//! no sorting). Throughput is in occurrences (elements) per second.
//!
//! Run: `cargo bench --bench schedule`. `scripts/bench` runs it with short times and reads
//! `target/criterion/schedule/*/new/estimates.json` into its table.

mod common;

use std::hint::black_box;
use std::path::Path;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use zoomd::config::{Config, Env, MeetingEntry, When};

fn config(n: usize) -> Config {
    let text = format!(
        "{}\n{}",
        common::zoom_section("https://api.zoom.us/v2", "https://zoom.us/oauth/token"),
        common::mixed_entries(n)
    );
    Config::parse(&text, Path::new("bench.toml"), &Env::default()).expect("generated config")
}

/// Bare croner: every match of every cron between the window's ends, read as naive local.
fn croner_count(entries: &[MeetingEntry], from: DateTime<Utc>, to: DateTime<Utc>) -> usize {
    let (from, to) = (from.naive_utc(), to.naive_utc());
    entries
        .iter()
        .map(|e| match &e.when {
            When::Cron(c) => c
                .cron
                .iter_from(from, croner::Direction::Forward)
                .take_while(|t| *t < to)
                .count(),
            When::At(_) => 0,
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let from: DateTime<Utc> = "2027-01-01T00:00:00Z".parse().expect("instant");
    let to = from + TimeDelta::days(365);
    let mut group = c.benchmark_group("schedule");
    group.sample_size(10);
    for n in [10usize, 100, 1000] {
        let cfg = config(n);
        let entries = &cfg.meetings;
        let occ = zoomd::schedule::occurrences(entries, from, to).len();
        group.throughput(Throughput::Elements(occ as u64));
        group.bench_with_input(BenchmarkId::new("zoomd", n), entries, |b, e| {
            b.iter(|| zoomd::schedule::occurrences(black_box(e), from, to))
        });
        group.bench_with_input(BenchmarkId::new("croner", n), entries, |b, e| {
            b.iter(|| croner_count(black_box(e), from, to))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
