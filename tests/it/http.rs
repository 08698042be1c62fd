//! `[http]`: webhooks (signed like Zoom signs them), `/metrics`, `/healthz`, the status page
//! (in a real browser) and the calendar feed, against a running daemon and the sim.

use std::collections::HashMap;
use std::net::TcpListener;

use zoomd::sim::{Route, Sim, SimConfig};

use crate::helpers::*;

const SECRET: &str = "whsec-test-3f9a8c";

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A daemon with `[http] listen` on a free port and the webhook secret in the environment.
fn with_http(sim: &Sim, config: DaemonToml) -> (Daemon, String) {
    let port = free_port();
    let config = config.http("listen", &format!("\"127.0.0.1:{port}\""));
    let d = spawn_daemon(&config, &[("ZOOMD_WEBHOOK_SECRET", SECRET)]);
    let _ = sim;
    (d, format!("http://127.0.0.1:{port}"))
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}

async fn wait_listening(d: &Daemon, base: &str) {
    d.wait_for("the HTTP listener", || async {
        reqwest::get(format!("{base}/healthz")).await.is_ok()
    })
    .await;
}

/// Metric name (with labels rendered `name{k="v",...}`) to value.
fn scrape(text: &str) -> HashMap<String, f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text parses");
    let mut out = HashMap::new();
    for s in parsed.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        labels.sort();
        let name = if labels.is_empty() {
            s.metric.clone()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{}{{{}}}", s.metric, l.join(","))
        };
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        };
        out.insert(name, v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_match_the_database_and_healthz_answers() {
    let sim = spawn_sim(SimConfig::default()).await;
    let start = sim.now() + chrono::Duration::seconds(70);
    let at = start.format("%Y-%m-%dT%H:%M").to_string();
    let (mut d, base) = with_http(
        &sim,
        DaemonToml::run(&sim).meetings(&Entry::at("talk", "Talk", &at).toml()),
    );
    wait_listening(&d, &base).await;
    let (status, body) = get(&format!("{base}/healthz")).await;
    assert_eq!((status, body.trim()), (200, "ok"));
    d.wait_for("the meeting created", || async {
        sim.meetings().len() == 1
    })
    .await;
    let meeting = sim.meetings()[0].id;
    sim.force_recording(meeting).expect("recording");
    let expected: Vec<_> = sim.expected_files();
    d.wait_for("every file archived", || async {
        holds_exactly(&expected, &d.archive_rows().await)
    })
    .await;

    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    for name in [
        "zoomd_meetings_created_total",
        "zoomd_files_archived_total",
        "zoomd_archived_bytes_total",
        "zoomd_download_queue",
        "zoomd_failures",
        "zoomd_last_archived_timestamp_seconds",
        "zoomd_zoom_requests_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name}"))
                || text.contains(&format!("# HELP {}", name.trim_end_matches("_total"))),
            "no HELP for {name}:\n{text}"
        );
    }
    let m = scrape(&text);
    let archive = d.archive_rows().await;
    let bytes: i64 = archive.iter().filter_map(|a| a.bytes).sum();
    assert_eq!(m["zoomd_meetings_created_total"], 1.0);
    assert_eq!(m["zoomd_files_archived_total"], archive.len() as f64);
    assert_eq!(m["zoomd_archived_bytes_total"], bytes as f64);
    assert_eq!(m["zoomd_download_queue"], 0.0);
    assert_eq!(m["zoomd_failures"], 0.0);
    let newest = archive
        .iter()
        .filter_map(|a| a.archived_at)
        .max()
        .expect("archived");
    assert_eq!(
        m["zoomd_last_archived_timestamp_seconds"],
        newest.timestamp() as f64
    );
    // Request counts are by operation and status class: the one create, answered 201.
    assert_eq!(
        m[r#"zoomd_zoom_requests_total{op="create_meeting",status="2xx"}"#], 1.0,
        "{m:?}"
    );
    let downloads: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("zoomd_zoom_requests_total{op=\"download\""))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(downloads, archive.len() as f64, "one API hop per file");
    assert!(
        m.keys().all(|k| !k.contains(&meeting.to_string())),
        "an id in a label"
    );
    d.stop().await;
    assert_consistent(&d, &sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_fails_the_start_with_the_address() {
    let sim = spawn_sim(SimConfig::default()).await;
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = DaemonToml::run(&sim).http("listen", &format!("\"127.0.0.1:{port}\""));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = zoomd();
    cmd.arg("run")
        .arg("--config")
        .arg(config.write(dir.path()))
        .envs(config.env());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("[http] listen 127.0.0.1:{port}")),
        "{}",
        text(&out)
    );
    drop(taken);
}

/// The page as a browser renders it: `chromium --headless --dump-dom`.
fn browser_dom(url: &str) -> String {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (scripts/browser-check installs it)");
    let profile = tempfile::tempdir().expect("profile dir");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium: scripts/browser-check"]
async fn the_status_page_in_a_browser_shows_the_next_meeting_and_a_failure() {
    let sim = spawn_sim(SimConfig::default()).await;
    let at = (sim.now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let meetings = format!(
        "{}{}",
        Entry::at("seminar", "Research <seminar> & talk", &at).toml(),
        Entry::at("ghost", "Ghost meeting", &at)
            .host("nobody@example.org")
            .toml()
    );
    let (mut d, base) = with_http(&sim, DaemonToml::run(&sim).meetings(&meetings));
    wait_listening(&d, &base).await;
    d.wait_for("the meeting created and the other refused", || async {
        let store = d.store().await;
        let Some(store) = store else { return false };
        let st = store
            .status(chrono::Utc::now(), chrono::Utc::now(), 10)
            .await
            .expect("status");
        store.close().await;
        st.counts.meetings_upcoming >= 1 && st.counts.failures() >= 1
    })
    .await;
    let join = sim.meetings()[0].id;
    let dom = tokio::task::spawn_blocking({
        let url = format!("{base}/");
        move || browser_dom(&url)
    })
    .await
    .expect("join");
    // The topic is shown as text (escaped, not markup), with its join link.
    assert!(dom.contains("Research &lt;seminar&gt; &amp; talk"), "{dom}");
    assert!(dom.contains(&format!("/j/{join}")), "no join link:\n{dom}");
    assert!(dom.contains("id=\"failures\""), "{dom}");
    assert!(
        dom.contains("ghost"),
        "the refused create is listed:\n{dom}"
    );
    assert!(!dom.contains("rec/download"), "a download URL on the page");
    d.stop().await;
}

/// Webhook tests: a daemon that never polls in time (`poll_every = "1h"`, meetings two days
/// ahead), so whatever gets archived came through the webhook.
async fn hooked() -> (Sim, Daemon, String, i64) {
    let sim = spawn_sim(SimConfig::default()).await;
    let at = (sim.now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let config = DaemonToml::new(&sim)
        .set("poll_every", "\"1h\"")
        .meetings(&Entry::at("lecture", "Lecture", &at).toml());
    let (d, base) = with_http(&sim, config);
    wait_listening(&d, &base).await;
    d.wait_for("the meeting created", || async {
        sim.meetings().len() == 1
    })
    .await;
    let meeting = sim.meetings()[0].id;
    (sim, d, base, meeting)
}

async fn metric(base: &str, name: &str) -> f64 {
    let (_, text) = get(&format!("{base}/metrics")).await;
    scrape(&text).get(name).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_validation_is_answered_and_bad_requests_record_nothing() {
    let (sim, mut d, base, _) = hooked().await;
    let url = format!("{base}/zoom/webhook");
    let plain = "qgg8vlvZRS6UYooatFL8Aw";
    let validation = serde_json::json!({
        "event": "endpoint.url_validation",
        "event_ts": 1_700_000_000_000_i64,
        "payload": {"plainToken": plain},
    });
    let r = sim
        .send_webhook(&url, SECRET, &validation)
        .await
        .expect("send");
    assert_eq!(r.status, 200, "{}", r.body);
    let answer: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    assert_eq!(
        answer,
        zoomd::webhook::url_validation(SECRET.as_bytes(), plain)
    );

    let body = serde_json::to_vec(&validation).expect("json");
    let now = sim.now().timestamp();
    let good = zoomd::webhook::sign(SECRET.as_bytes(), now, &body);
    let ts = now.to_string();
    // What is wrong, the headers, the body, the status Zoom gets.
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        (
            "a wrong secret",
            vec![
                ("x-zm-request-timestamp", ts.clone()),
                (
                    "x-zm-signature",
                    zoomd::webhook::sign(b"not-the-secret", now, &body),
                ),
            ],
            body.clone(),
            401,
        ),
        (
            "a body changed after signing",
            vec![
                ("x-zm-request-timestamp", ts.clone()),
                ("x-zm-signature", good.clone()),
            ],
            [&body[..], b" "].concat(),
            401,
        ),
        (
            "a timestamp six minutes old",
            vec![
                ("x-zm-request-timestamp", (now - 360).to_string()),
                (
                    "x-zm-signature",
                    zoomd::webhook::sign(SECRET.as_bytes(), now - 360, &body),
                ),
            ],
            body.clone(),
            401,
        ),
        (
            "no signature",
            vec![("x-zm-request-timestamp", ts.clone())],
            body.clone(),
            401,
        ),
        (
            "a body over the limit",
            {
                let big = vec![b' '; zoomd::webhook::MAX_BODY + 1];
                vec![
                    ("x-zm-request-timestamp", ts.clone()),
                    (
                        "x-zm-signature",
                        zoomd::webhook::sign(SECRET.as_bytes(), now, &big),
                    ),
                ]
            },
            vec![b' '; zoomd::webhook::MAX_BODY + 1],
            413,
        ),
    ];
    for (what, headers, body, want) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = sim
            .send_webhook_raw(&url, &headers, body)
            .await
            .expect("send");
        assert_eq!(r.status, *want, "{what}: {}", r.body);
        assert!(!r.body.contains(SECRET), "{what}: the secret in the answer");
    }
    let store = d.store().await.expect("database");
    assert!(store.webhook_events(10).await.expect("events").is_empty());
    store.close().await;
    assert_eq!(
        metric(&base, r#"zoomd_webhook_events_total{outcome="rejected"}"#).await,
        cases.len() as f64
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_recording_completed_archives_every_file_once() {
    let (sim, mut d, base, meeting) = hooked().await;
    sim.force_recording(meeting).expect("recording");
    let (event, token) = sim
        .webhook_event("recording.completed", meeting)
        .expect("event");
    let token = token.expect("a download token");
    let url = format!("{base}/zoom/webhook");
    // Zoom repeats a notification until it gets a 2xx; here three times.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let r = sim.send_webhook(&url, SECRET, &event).await.expect("send");
        assert_eq!(r.status, 200, "{}", r.body);
        answers.push(r.body.trim().to_string());
    }
    assert_eq!(answers, ["accepted", "duplicate", "duplicate"]);
    let expected = sim.expected_files();
    d.wait_for("every file archived through the webhook", || async {
        holds_exactly(&expected, &d.archive_rows().await)
    })
    .await;
    let c = sim.counters();
    // Files with an id came with the event; the CC file (no id) too. Each downloaded once,
    // with the event's token, and no recording was polled (the poll is an hour away).
    assert_eq!(c.get(Route::GetRecordings), 0, "polled: {c:?}");
    assert_eq!(c.get(Route::Download), expected.len() as u64);
    assert_eq!(c.downloads_with_download_token, expected.len() as u64);
    assert_eq!(
        metric(&base, r#"zoomd_webhook_events_total{outcome="accepted"}"#).await,
        1.0
    );
    assert_eq!(
        metric(&base, r#"zoomd_webhook_events_total{outcome="duplicate"}"#).await,
        2.0
    );
    let store = d.store().await.expect("database");
    let events = store.webhook_events(10).await.expect("events");
    store.close().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "queued");
    // The watch counts as found (no "missing" later), and the catch-up poll stays far off.
    let store = d.store().await.expect("database");
    let occ = store
        .list_occurrences(&Default::default(), chrono::Utc::now())
        .await
        .expect("occurrences")
        .remove(0);
    let kinds = event_kinds(&store).await;
    store.close().await;
    assert!(
        matches!(occ.recording_state.as_str(), "found" | "complete"),
        "{occ:?}"
    );
    assert!(
        occ.next_poll_at
            .is_some_and(|t| t > chrono::Utc::now() + chrono::Duration::minutes(50))
    );
    assert!(kinds.iter().any(|k| k == "recording-found"), "{kinds:?}");
    d.stop().await;
    assert_consistent(&d, &sim).await;
    // The download token is a secret: not in the logs, not in the database.
    assert!(!d.logs().contains(&token), "token in the logs");
    let db = std::fs::read(d.path("state.db")).expect("db");
    let wal = std::fs::read(d.path("state.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "token in the database"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_for_a_meeting_zoomd_does_not_archive_is_accepted_and_ignored() {
    let (sim, mut d, base, _) = hooked().await;
    let other = sim
        .add_adhoc_recording(
            "chair@example.org",
            "Someone else's",
            sim.now() - chrono::Duration::hours(2),
            30,
        )
        .expect("ad-hoc");
    let (event, _) = sim
        .webhook_event("recording.completed", other.meeting_id)
        .expect("event");
    let r = sim
        .send_webhook(&format!("{base}/zoom/webhook"), SECRET, &event)
        .await
        .expect("send");
    assert_eq!((r.status, r.body.trim()), (200, "ignored"));
    let store = d.store().await.expect("database");
    let events = store.webhook_events(10).await.expect("events");
    let files = store.list_files(None).await.expect("files");
    store.close().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, "ignored");
    assert!(files.is_empty(), "{files:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_is_answered_while_a_gib_downloads() {
    let sim = spawn_sim(SimConfig {
        mp4_size: 1024 * 1024 * 1024,
        ..SimConfig::default()
    })
    .await;
    // Slow enough that the download is surely still under way when the answer comes.
    sim.set_download_rate_per_connection(Some(16 * 1024 * 1024));
    let at = (sim.now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let config = DaemonToml::new(&sim)
        .set("poll_every", "\"1h\"")
        .meetings(&Entry::at("big", "Big", &at).toml());
    let (mut d, base) = with_http(&sim, config);
    wait_listening(&d, &base).await;
    d.wait_for("the meeting created", || async {
        sim.meetings().len() == 1
    })
    .await;
    let meeting = sim.meetings()[0].id;
    sim.force_recording(meeting).expect("recording");
    let (event, _) = sim
        .webhook_event("recording.completed", meeting)
        .expect("event");
    let url = format!("{base}/zoom/webhook");
    sim.send_webhook(&url, SECRET, &event).await.expect("send");
    d.wait_for("the 1 GiB download under way", || async {
        partial_download(&d.archive())
    })
    .await;
    // Zoom retries what is not answered in 3 s: the answer must not wait for the work it
    // starts. Asserted as an order (answered while the download still runs), not a time.
    let again = sim.send_webhook(&url, SECRET, &event).await.expect("send");
    assert_eq!(again.status, 200);
    assert!(
        partial_download(&d.archive()),
        "the answer came after the download finished ({:?})",
        again.elapsed
    );
    let health = get(&format!("{base}/healthz")).await;
    assert_eq!(health.0, 200);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_and_status_page_need_the_token_and_the_feed_holds_the_join_link() {
    let sim = spawn_sim(SimConfig::default()).await;
    let at = (sim.now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("page-token");
    std::fs::write(&token, "s3cr3t-page-token\n").expect("token");
    chmod(&token, 0o600);
    let config = DaemonToml::run(&sim)
        .meetings(&Entry::at("seminar", "Seminar", &at).toml())
        .http("token_file", &format!("\"{}\"", token.display()));
    let (mut d, base) = with_http(&sim, config);
    wait_listening(&d, &base).await;
    d.wait_for("the meeting created", || async {
        sim.meetings().len() == 1
    })
    .await;
    let client = reqwest::Client::new();
    for path in ["/", "/calendar.ics", "/calendar/seminar.ics"] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 401, "{path} without the token");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("wrong")
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 401, "{path} with a wrong token");
    }
    // Metrics and health stay open.
    assert_eq!(get(&format!("{base}/metrics")).await.0, 200);
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);

    let store = d.store().await.expect("database");
    let join = store
        .list_occurrences(&Default::default(), chrono::Utc::now())
        .await
        .expect("occurrences")
        .into_iter()
        .find_map(|o| o.join_url)
        .expect("a join URL");
    store.close().await;
    for path in ["/calendar.ics", "/calendar/seminar.ics"] {
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("s3cr3t-page-token")
            .send()
            .await
            .expect("GET");
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("text/calendar")),
            "{path}"
        );
        let cal = crate::calendar::parse(&r.text().await.expect("body"));
        let events = cal.children("VEVENT");
        assert_eq!(events.len(), 1, "{path}");
        assert_eq!(events[0].text("URL"), join);
        assert_eq!(events[0].text("SUMMARY"), "Seminar");
    }
    let r = client
        .get(format!("{base}/calendar/nosuch.ics"))
        .bearer_auth("s3cr3t-page-token")
        .send()
        .await
        .expect("GET");
    let cal = crate::calendar::parse(&r.text().await.expect("body"));
    assert!(cal.children("VEVENT").is_empty());
    let page = client
        .get(format!("{base}/"))
        .bearer_auth("s3cr3t-page-token")
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("page");
    assert!(page.contains("Seminar") && page.contains("/j/"), "{page}");
    assert!(
        !d.logs().contains("s3cr3t-page-token"),
        "the token in the logs"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_download_token_falls_back_to_zoomds_own() {
    let (sim, mut d, base, meeting) = hooked().await;
    sim.force_recording(meeting).expect("recording");
    let (mut event, _) = sim
        .webhook_event("recording.completed", meeting)
        .expect("event");
    // A notification Zoom delivered late: its token was issued 25 hours ago.
    let late = (sim.now() - chrono::Duration::hours(25)).timestamp_millis();
    event["event_ts"] = serde_json::json!(late);
    let r = sim
        .send_webhook(&format!("{base}/zoom/webhook"), SECRET, &event)
        .await
        .expect("send");
    assert_eq!((r.status, r.body.trim()), (200, "accepted"));
    let expected = sim.expected_files();
    d.wait_for("every file archived with zoomd's own token", || async {
        holds_exactly(&expected, &d.archive_rows().await)
    })
    .await;
    assert_eq!(sim.counters().downloads_with_download_token, 0);
    d.stop().await;
    assert_consistent(&d, &sim).await;
}
