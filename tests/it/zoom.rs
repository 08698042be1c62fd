//! The Zoom client against `zoomd::sim`: both auth modes, token renewal, every fault the
//! sim can inject and how the client handles it, pagination, uuid encoding, downloads
//! (redirect without the token, resume, truncation, stalls, HTML pages), and that no
//! token or secret reaches an error or a log line.
//!
//! Each test's sim and clients share one manual clock: retry waits, back-offs and token
//! lifetimes cost no real time, and the tests assert on the waits the clock recorded and
//! on the requests the sim counted. Only I/O timeouts (a stalled body) take real time.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SubsecRound, TimeDelta, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use url::Url;
use zoomd::clock::{Clock, ManualClock};
use zoomd::secret::Secret;
use zoomd::sim::{Fault, RetryAfter, Route, Sim, SimConfig};
use zoomd::zoom::{
    CreateMeeting, Credentials, DeleteAction, DownloadOutcome, MeetingPatch, MeetingRecordings,
    MeetingRef, MeetingStart, RecordingFile, ZoomClient, ZoomError, next_utc_midnight,
};

use crate::helpers::{
    assert_no_leaks, client_config, fast_retry, jwt_credentials, oauth_client, oauth_credentials,
    spawn_sim,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A manual clock at the current whole second. The sim's HTTP dates have whole seconds,
/// so on this clock a `Retry-After` date names an exact wait.
fn manual_clock() -> ManualClock {
    ManualClock::new(Utc::now().trunc_subsecs(0))
}

/// A sim on a fresh manual clock (see [`start_on`]).
async fn start(cfg: SimConfig) -> Sim {
    start_on(cfg, &manual_clock()).await
}

/// A sim on `clock`; the clients `client_config` builds for it share the clock.
async fn start_on(cfg: SimConfig, clock: &ManualClock) -> Sim {
    spawn_sim(SimConfig {
        clock: clock.shared(),
        ..cfg
    })
    .await
}

/// Each wait is within its full-jitter ceiling (retry `i` waits at most `ceiling(i)`).
fn assert_backoff(sleeps: &[Duration], retries: usize) {
    assert_eq!(sleeps.len(), retries, "{sleeps:?}");
    for (i, d) in sleeps.iter().enumerate() {
        assert!(*d <= fast_retry().ceiling(i as u32), "retry {i}: {d:?}");
    }
}

async fn sim() -> Sim {
    start(SimConfig::default()).await
}

fn sample(topic: &str) -> CreateMeeting {
    let mut settings = Map::new();
    settings.insert("join_before_host".into(), Value::Bool(true));
    CreateMeeting {
        topic: topic.into(),
        start: MeetingStart::Utc {
            at: Utc::now() + TimeDelta::days(1),
            timezone: Some("Europe/Berlin".into()),
        },
        duration_minutes: 45,
        agenda: Some("Status round".into()),
        settings,
    }
}

/// A meeting with a completed recording; returns the recording (latest instance).
async fn recorded(sim: &Sim, c: &ZoomClient) -> MeetingRecordings {
    let m = c.create_meeting("me", &sample("Recorded")).await.unwrap();
    sim.force_recording(m.id).unwrap();
    c.get_recordings(&MeetingRef::Id(m.id))
        .await
        .unwrap()
        .expect("a recording after force_recording")
}

/// A sim with `cfg`'s knobs, an OAuth client of it, and a recorded meeting.
async fn recorded_sim(cfg: SimConfig) -> (Sim, ZoomClient, MeetingRecordings) {
    let sim = start(cfg).await;
    let c = oauth_client(&sim);
    let rec = recorded(&sim, &c).await;
    (sim, c, rec)
}

fn mp4(rec: &MeetingRecordings) -> &RecordingFile {
    rec.recording_files
        .iter()
        .find(|f| f.file_type.as_deref() == Some("MP4"))
        .expect("an MP4 file")
}

fn sim_bytes(sim: &Sim, rec: &MeetingRecordings, f: &RecordingFile) -> Vec<u8> {
    let key =
        f.id.clone()
            .or_else(|| f.file_type.clone())
            .unwrap_or_default();
    sim.file_bytes(&rec.uuid, &key)
        .expect("file known to the sim")
}

// ---- auth ------------------------------------------------------------------------------

#[tokio::test]
async fn oauth_meeting_lifecycle() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c
        .create_meeting("me", &sample("Weekly standup"))
        .await
        .unwrap();
    assert!(m.id > i64::from(i32::MAX));
    assert!(m.join_url.is_some());
    let held = sim.meeting(m.id).unwrap();
    assert_eq!(held.topic, "Weekly standup");
    assert_eq!(held.settings["auto_recording"], "cloud");
    assert_eq!(held.settings["join_before_host"], true);

    let got = c.get_meeting(m.id).await.unwrap();
    assert_eq!(got.id, m.id);
    assert_eq!(got.duration, Some(45));

    let patch = MeetingPatch {
        topic: Some("Renamed".into()),
        duration_minutes: Some(30),
        ..Default::default()
    };
    c.update_meeting(m.id, &patch).await.unwrap();
    assert_eq!(
        c.get_meeting(m.id).await.unwrap().topic.as_deref(),
        Some("Renamed")
    );

    c.delete_meeting(m.id).await.unwrap();
    let again = c.delete_meeting(m.id).await.unwrap_err();
    assert!(again.is_not_found(), "{again}");
    assert_eq!(again.zoom_code(), Some(3001));
    assert!(matches!(
        c.get_meeting(m.id).await.unwrap_err(),
        ZoomError::NotFound { .. }
    ));

    // One token for the whole conversation.
    assert_eq!(sim.counters().get(Route::Token), 1);
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn jwt_mode() {
    let sim = sim().await;
    let c = ZoomClient::new(client_config(&sim, jwt_credentials(&sim))).unwrap();
    let m = c.create_meeting("me", &sample("JWT")).await.unwrap();
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(
        sim.counters().get(Route::Token),
        0,
        "JWT needs no token endpoint"
    );
    // The token is a JWT (three parts).
    assert_eq!(c.token().await.unwrap().expose().matches('.').count(), 2);

    // A wrong secret: Zoom refuses (401/124), one regeneration, then an auth error.
    let mut wrong = jwt_credentials(&sim);
    if let Credentials::Jwt { api_secret, .. } = &mut wrong {
        *api_secret = Secret::new("not-the-secret");
    }
    let bad = ZoomClient::new(client_config(&sim, wrong)).unwrap();
    let e = bad.get_meeting(m.id).await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn oauth_wrong_secret_is_an_auth_error() {
    let sim = sim().await;
    let mut creds = oauth_credentials(&sim);
    if let Credentials::OAuth { client_secret, .. } = &mut creds {
        *client_secret = Secret::new("wrong-client-secret");
    }
    let c = ZoomClient::new(client_config(&sim, creds)).unwrap();
    let e = c.get_meeting(1).await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{e:?}"
    );
    let text = format!("{e} {e:?}");
    assert!(!text.contains("wrong-client-secret"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    // Not retried: the refusal is definite.
    assert_eq!(sim.counters().get(Route::Token), 1);
}

#[tokio::test]
async fn no_stampede_under_concurrency() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Concurrent")).await.unwrap();
    // A fresh client: its cache is empty when 50 calls arrive at once.
    let c = oauth_client(&sim);
    let before = sim.counters().get(Route::Token);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get_meeting(m.id).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(sim.counters().get(Route::Token) - before, 1);
}

#[tokio::test]
async fn renews_before_expiry() {
    // A 2 s token is renewed at half its life, before Zoom (on the same clock) would
    // refuse it.
    let clock = manual_clock();
    let sim = start_on(
        SimConfig {
            token_expires_in: 2,
            ..SimConfig::default()
        },
        &clock,
    )
    .await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Renew")).await.unwrap();
    let first = c.token().await.unwrap();
    clock.advance(ms(999));
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(c.token().await.unwrap(), first, "fresh until half its life");
    clock.advance(ms(1));
    c.get_meeting(m.id).await.unwrap();
    let second = c.token().await.unwrap();
    assert_ne!(first, second);
    let counters = sim.counters();
    assert_eq!(counters.get(Route::Token), 2);
    assert_eq!(
        counters.statuses.get(&401).copied().unwrap_or(0),
        0,
        "no refused call"
    );
    assert!(clock.sleeps().is_empty(), "renewal never waits");
}

#[tokio::test]
async fn renews_five_minutes_before_an_hour_long_token_expires() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    assert_eq!(sim.config().token_expires_in, 3600);
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Hour")).await.unwrap();
    clock.advance(Duration::from_secs(55 * 60 - 1));
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 1, "fresh at 54:59");
    clock.advance(Duration::from_secs(1));
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 2, "renewed at 55:00");
    // The new one lives another hour from now.
    clock.advance(Duration::from_secs(55 * 60 - 1));
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 2);
    assert_eq!(sim.counters().statuses.get(&401), None, "never refused");
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn token_endpoint_failures_are_retried_on_the_clock() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    // Two 503s: back-off twice, the third request gets the token.
    sim.inject(Route::Token, Fault::Status(503), 2);
    let c = oauth_client(&sim);
    c.token().await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 3);
    assert_backoff(&clock.take_sleeps(), 2);

    // A 429 with Retry-After: exactly the wait asked for.
    let c = oauth_client(&sim);
    sim.inject(Route::Token, Fault::RateLimited(RetryAfter::Seconds(2)), 1);
    c.token().await.unwrap();
    assert_eq!(clock.take_sleeps(), [Duration::from_secs(2)]);
    assert_eq!(sim.counters().get(Route::Token), 5);

    // Longer than max_retry_after: no wait, the instant in the error.
    let c = oauth_client(&sim);
    sim.inject(
        Route::Token,
        Fault::RateLimited(RetryAfter::Seconds(600)),
        1,
    );
    let asked_at = clock.now();
    let e = c.token().await.unwrap_err();
    assert_eq!(
        e.retry_at(),
        Some(asked_at + TimeDelta::seconds(600)),
        "{e:?}"
    );
    assert!(clock.take_sleeps().is_empty());

    // Failing every time: max_attempts requests, three waits, then the last answer.
    let c = oauth_client(&sim);
    let before = sim.counters().get(Route::Token);
    sim.inject(Route::Token, Fault::Status(503), 10);
    let e = c.token().await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::Auth {
                status: Some(503),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(sim.counters().get(Route::Token) - before, 4);
    assert_backoff(&clock.take_sleeps(), 3);
    sim.clear_faults();
}

#[tokio::test]
async fn renews_once_on_401_124() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Revoked")).await.unwrap();
    sim.revoke_tokens();
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 2);

    // Token expiry mid-way, injected on a create: safe to repeat (a 401 is definite).
    sim.inject(Route::CreateMeeting, Fault::TokenExpired, 1);
    c.create_meeting("me", &sample("After expiry"))
        .await
        .unwrap();
    assert_eq!(sim.counters().get(Route::Token), 3);
    assert_eq!(sim.report().meetings_created.len(), 2);

    // Refused again right after renewing: an auth error, not a loop.
    sim.inject(Route::GetMeeting, Fault::TokenExpired, 2);
    let e = c.get_meeting(m.id).await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::Auth {
                status: Some(401),
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(sim.counters().get(Route::Token), 4);
}

#[tokio::test]
async fn clock_jump_expires_token_mid_run() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Clock")).await.unwrap();
    // Zoom's clock runs past the token's life; the client still thinks it fresh.
    sim.advance(Duration::from_secs(2 * 3600));
    c.get_meeting(m.id).await.unwrap();
    assert_eq!(sim.counters().get(Route::Token), 2);
}

// ---- rate limits and server errors --------------------------------------------------------

#[tokio::test]
async fn rate_limit_retry_after_forms() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("429")).await.unwrap();
    c.get_meeting(m.id).await.unwrap();

    // The sim dates its answers by the same clock, so each form names an exact wait.
    for (ra, wait) in [
        (RetryAfter::Seconds(1), Duration::from_secs(1)),
        (RetryAfter::HttpDate(2), Duration::from_secs(2)),
        (RetryAfter::Iso8601(3), Duration::from_secs(3)),
    ] {
        sim.inject(Route::GetMeeting, Fault::RateLimited(ra), 1);
        let before = sim.counters().get(Route::GetMeeting);
        c.get_meeting(m.id).await.unwrap();
        assert_eq!(clock.take_sleeps(), [wait], "{ra:?}");
        assert_eq!(sim.counters().get(Route::GetMeeting) - before, 2, "{ra:?}");
    }
    // Without Retry-After: the policy's back-off.
    sim.inject(Route::GetMeeting, Fault::RateLimited(RetryAfter::Absent), 1);
    c.get_meeting(m.id).await.unwrap();
    assert_backoff(&clock.take_sleeps(), 1);
    assert_eq!(sim.counters().statuses.get(&429).copied(), Some(4));
}

#[tokio::test]
async fn rate_limit_surfaces_long_waits_and_exhaustion() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("429")).await.unwrap();

    // Longer than max_retry_after (3 s): surfaced at once with the instant.
    sim.inject(
        Route::GetMeeting,
        Fault::RateLimited(RetryAfter::Seconds(600)),
        1,
    );
    let e = c.get_meeting(m.id).await.unwrap_err();
    match &e {
        ZoomError::RateLimited {
            retry_at: Some(at),
            attempts: 1,
            ..
        } => {
            assert_eq!(*at - clock.now(), TimeDelta::seconds(600));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(clock.take_sleeps().is_empty(), "not waited in place");

    // Every attempt refused: RateLimited after max_attempts requests.
    let before = sim.counters().get(Route::GetMeeting);
    sim.inject(
        Route::GetMeeting,
        Fault::RateLimited(RetryAfter::Absent),
        10,
    );
    let e = c.get_meeting(m.id).await.unwrap_err();
    assert!(
        matches!(e, ZoomError::RateLimited { attempts: 4, .. }),
        "{e:?}"
    );
    assert_eq!(sim.counters().get(Route::GetMeeting) - before, 4);
    // Three back-offs, and each 429 also halved the budget, so the later attempts waited
    // for a place as well (the budget's own tests look at those waits).
    let sleeps = clock.take_sleeps();
    assert!(sleeps.len() >= 3, "{sleeps:?}");
    sim.clear_faults();
}

#[tokio::test]
async fn daily_cap_is_surfaced_not_retried() {
    for as_300 in [false, true] {
        let clock = manual_clock();
        let sim = start_on(
            SimConfig {
                daily_cap_as_300: as_300,
                ..SimConfig::default()
            },
            &clock,
        )
        .await;
        sim.set_daily_cap(1);
        let c = oauth_client(&sim);
        let m = c.create_meeting("me", &sample("One")).await.unwrap();
        let before = sim.counters().get(Route::CreateMeeting);
        let e = c.create_meeting("me", &sample("Two")).await.unwrap_err();
        let reset_at = match &e {
            ZoomError::DailyLimit { host, reset_at, .. } => {
                assert_eq!(host.as_deref(), Some("me"));
                assert_eq!(*reset_at, next_utc_midnight(clock.now()));
                *reset_at
            }
            other => panic!("as_300={as_300}: expected DailyLimit, got {other:?}"),
        };
        assert_eq!(
            sim.counters().get(Route::CreateMeeting) - before,
            1,
            "not retried"
        );
        // Updates share the cap.
        let e = c
            .update_meeting(
                m.id,
                &MeetingPatch {
                    topic: Some("x".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(e, ZoomError::DailyLimit { host: None, .. }),
            "{e:?}"
        );
        assert_eq!(e.retry_at(), Some(reset_at));
        assert!(clock.sleeps().is_empty(), "never waited for");
        // A second before the reset Zoom still refuses; at 00:00 UTC the cap is new.
        clock.set(reset_at - TimeDelta::seconds(1));
        let e = c.create_meeting("me", &sample("Two")).await.unwrap_err();
        assert!(matches!(e, ZoomError::DailyLimit { .. }), "{e:?}");
        clock.set(reset_at);
        c.create_meeting("me", &sample("Two")).await.unwrap();
    }
}

#[tokio::test]
async fn server_errors_on_idempotent_requests_are_retried() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("5xx")).await.unwrap();
    for status in [500, 502, 503, 504] {
        sim.inject(Route::GetMeeting, Fault::Status(status), 2);
        let before = sim.counters().get(Route::GetMeeting);
        c.get_meeting(m.id).await.unwrap();
        assert_eq!(sim.counters().get(Route::GetMeeting) - before, 3);
        assert_backoff(&clock.take_sleeps(), 2);
    }
    sim.inject(Route::UpdateMeeting, Fault::Status(502), 1);
    c.update_meeting(
        m.id,
        &MeetingPatch {
            agenda: Some("new".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sim.inject(Route::ListMeetings, Fault::Status(500), 1);
    assert_eq!(c.list_upcoming_meetings("me").await.unwrap().len(), 1);

    // Exhausted: the last answer, with its status.
    clock.take_sleeps();
    sim.inject(Route::GetMeeting, Fault::Status(500), 10);
    let e = c.get_meeting(m.id).await.unwrap_err();
    assert!(matches!(e, ZoomError::Api { status: 500, .. }), "{e:?}");
    assert!(e.is_transient());
    assert_backoff(&clock.take_sleeps(), 3);
    sim.clear_faults();
}

#[tokio::test]
async fn create_is_never_retried_blindly() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    c.get_meeting(1).await.unwrap_err(); // warm the token

    // A lost answer: the meeting exists, the client cannot know.
    sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    let e = c.create_meeting("me", &sample("Lost")).await.unwrap_err();
    assert!(matches!(e, ZoomError::OutcomeUnknown { .. }), "{e:?}");
    assert_eq!(sim.report().meetings_created.len(), 1);
    // What the caller then does: look before creating again.
    let found = c.list_upcoming_meetings("me").await.unwrap();
    assert!(found.iter().any(|m| m.topic.as_deref() == Some("Lost")));

    // A reset after sending looks the same from here: not repeated.
    let before = sim.counters().get(Route::CreateMeeting);
    sim.inject(Route::CreateMeeting, Fault::ConnectionReset, 1);
    let e = c.create_meeting("me", &sample("Reset")).await.unwrap_err();
    assert!(matches!(e, ZoomError::OutcomeUnknown { .. }), "{e:?}");
    assert_eq!(sim.counters().get(Route::CreateMeeting) - before, 1);

    // Ambiguous server errors: 500, 502, 504, and 503 without Retry-After.
    for status in [500, 502, 503, 504] {
        let before = sim.counters().get(Route::CreateMeeting);
        sim.inject(Route::CreateMeeting, Fault::Status(status), 1);
        let e = c.create_meeting("me", &sample("5xx")).await.unwrap_err();
        assert!(
            matches!(e, ZoomError::OutcomeUnknown { .. }),
            "{status}: {e:?}"
        );
        assert_eq!(sim.counters().get(Route::CreateMeeting) - before, 1);
    }
    assert!(clock.sleeps().is_empty(), "no create was repeated");

    // A 429 is a definite "not processed": retried, and exactly one meeting results.
    let created = sim.report().meetings_created.len();
    clock.take_sleeps();
    sim.inject(
        Route::CreateMeeting,
        Fault::RateLimited(RetryAfter::Absent),
        2,
    );
    c.create_meeting("me", &sample("After 429")).await.unwrap();
    assert_eq!(sim.report().meetings_created.len(), created + 1);
    assert_backoff(&clock.take_sleeps(), 2);

    // A definite refusal (validation) is surfaced as is.
    let mut bad = sample("Bad");
    bad.settings
        .insert("auto_recording".into(), Value::from("sometimes"));
    let e = c.create_meeting("me", &bad).await.unwrap_err();
    assert!(matches!(e, ZoomError::Api { status: 400, .. }), "{e:?}");
}

#[tokio::test]
async fn transport_failures() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Reset")).await.unwrap();
    // Reset on an idempotent request: retried.
    sim.inject(Route::GetMeeting, Fault::ConnectionReset, 2);
    c.get_meeting(m.id).await.unwrap();
    assert_backoff(&clock.take_sleeps(), 2);
    sim.inject(Route::DeleteMeeting, Fault::CreateSucceedsAnswerLost, 1);
    // The delete went through, the answer was lost; the repeat finds it gone.
    let e = c.delete_meeting(m.id).await.unwrap_err();
    assert!(e.is_not_found(), "{e:?}");

    // Nothing listening: connect errors, retried, then Transport; a create too, since a
    // refused connection proves nothing was sent.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = client_config(&sim, jwt_credentials(&sim));
    cfg.api_url = Url::parse(&format!("http://{dead}/v2")).unwrap();
    let c = ZoomClient::new(cfg).unwrap();
    clock.take_sleeps();
    let e = c.get_meeting(1).await.unwrap_err();
    assert!(
        matches!(e, ZoomError::Transport { attempts: 4, .. }),
        "{e:?}"
    );
    assert_backoff(&clock.take_sleeps(), 3);
    let e = c.create_meeting("me", &sample("x")).await.unwrap_err();
    assert!(
        matches!(e, ZoomError::Transport { attempts: 4, .. }),
        "{e:?}"
    );
    assert_backoff(&clock.take_sleeps(), 3);
}

#[tokio::test]
async fn html_answer_to_an_api_call() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Html")).await.unwrap();
    sim.inject(Route::GetMeeting, Fault::HtmlPage, 1);
    let e = c.get_meeting(m.id).await.unwrap_err();
    assert!(
        matches!(e, ZoomError::HtmlErrorPage { status: 200, .. }),
        "{e:?}"
    );
    sim.inject(Route::CreateMeeting, Fault::HtmlPage, 1);
    let e = c.create_meeting("me", &sample("Html2")).await.unwrap_err();
    assert!(matches!(e, ZoomError::OutcomeUnknown { .. }), "{e:?}");
}

// ---- listings and recordings -----------------------------------------------------------

#[tokio::test]
async fn every_page_is_followed() {
    let sim = sim().await;
    sim.set_daily_cap(10_000);
    let c = oauth_client(&sim);
    let n = 650;
    for i in 0..n {
        c.create_meeting("me", &sample(&format!("M{i}")))
            .await
            .unwrap();
    }
    let before = sim.counters().get(Route::ListMeetings);
    let all = c.list_upcoming_meetings("me").await.unwrap();
    assert_eq!(all.len(), n);
    let mut ids: Vec<_> = all.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(sim.counters().get(Route::ListMeetings) - before, 3);
    // The page token never went into a log or store: it lived in the loop only, and the
    // sim saw it in the query string where Zoom expects it.
    let r = sim.report();
    let pages: Vec<_> = r
        .requests
        .iter()
        .filter(|q| q.route == Route::ListMeetings)
        .collect();
    assert!(
        pages
            .iter()
            .all(|q| q.query.as_deref().unwrap_or("").contains("page_size=300"))
    );
    assert_eq!(
        pages
            .iter()
            .filter(|q| q
                .query
                .as_deref()
                .unwrap_or("")
                .contains("next_page_token="))
            .count(),
        2
    );
}

#[tokio::test]
async fn recordings_not_yet_then_ready() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Rec")).await.unwrap();
    assert_eq!(c.get_recordings(&MeetingRef::Id(m.id)).await.unwrap(), None);
    sim.force_recording(m.id).unwrap();
    let rec = c
        .get_recordings(&MeetingRef::Id(m.id))
        .await
        .unwrap()
        .unwrap();
    assert!(rec.recording_files.iter().all(RecordingFile::is_ready));
    let types: Vec<_> = rec
        .recording_files
        .iter()
        .filter_map(|f| f.file_type.as_deref())
        .collect();
    for t in ["MP4", "M4A", "CC", "TRANSCRIPT"] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    // The CC file comes without id, status and size, as Zoom sends it.
    let cc = rec
        .recording_files
        .iter()
        .find(|f| f.file_type.as_deref() == Some("CC"))
        .unwrap();
    assert!(cc.id.is_none() && cc.file_size.is_none());
    // By uuid too.
    let by_uuid = c
        .get_recordings(&MeetingRef::Uuid(rec.uuid.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_uuid.uuid, rec.uuid);
}

#[tokio::test]
async fn instances_and_double_encoded_uuids() {
    let sim = sim().await;
    sim.set_second_instance(true);
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Twice")).await.unwrap();
    sim.force_recording(m.id).unwrap();
    let instances = c.list_past_instances(m.id).await.unwrap();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(instances.iter().any(|i| i.uuid.starts_with('/')));
    for inst in &instances {
        let rec = c
            .get_recordings(&MeetingRef::Uuid(inst.uuid.clone()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("recording of {}", inst.uuid));
        assert_eq!(rec.uuid, inst.uuid);
    }
    // And deleting by a slash uuid.
    let slash = instances.iter().find(|i| i.uuid.starts_with('/')).unwrap();
    c.delete_recordings(&MeetingRef::Uuid(slash.uuid.clone()), DeleteAction::Trash)
        .await
        .unwrap();
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn user_recordings_by_month_windows() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Listed")).await.unwrap();
    sim.force_recording(m.id).unwrap();
    let today = Utc::now().date_naive();
    let from = today - TimeDelta::days(75);
    let before = sim.counters().get(Route::ListRecordings);
    let recs = c.list_user_recordings("me", from, today).await.unwrap();
    let windows = zoomd::zoom::month_windows(from, today).len() as u64;
    assert!(windows >= 3);
    assert_eq!(sim.counters().get(Route::ListRecordings) - before, windows);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].id, Some(m.id));
    assert!(matches!(
        c.list_user_recordings("me", today, from).await,
        Err(ZoomError::InvalidInput { .. })
    ));
}

#[tokio::test]
async fn delete_recordings() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let rec = recorded(&sim, &c).await;
    let uuid = MeetingRef::Uuid(rec.uuid.clone());
    c.delete_recordings(&uuid, DeleteAction::Trash)
        .await
        .unwrap();
    let removed = sim.report().recordings_removed;
    assert!(
        removed
            .iter()
            .any(|r| r.file_id.is_none() && r.action == "trash")
    );
    // Gone already: NotFound, which the caller may count as done.
    let e = c
        .delete_recordings(&uuid, DeleteAction::Trash)
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

// ---- downloads ---------------------------------------------------------------------------

#[tokio::test]
async fn download_follows_redirect_without_leaking_the_token() {
    let (sim, c, rec) = recorded_sim(SimConfig::default()).await;
    for f in rec.recording_files.iter().filter(|f| f.is_ready()) {
        let mut out = Vec::new();
        let mut last = 0;
        let o = c
            .download(f.download_url.as_deref().unwrap(), 0, &mut out, |p| {
                last = p
            })
            .await
            .unwrap();
        assert_eq!(out, sim_bytes(&sim, &rec, f), "{:?}", f.file_type);
        assert_eq!(o.bytes_written, out.len() as u64);
        assert_eq!(last, out.len() as u64);
        assert!(!o.restarted_from_zero);
        if let Some(size) = f.file_size {
            assert_eq!(o.total_len, Some(size));
        }
    }
    assert!(sim.counters().get(Route::SignedDownload) >= 4);
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn download_resumes_with_range() {
    let (sim, c, rec) = recorded_sim(SimConfig::default()).await;
    let f = mp4(&rec);
    let want = sim_bytes(&sim, &rec, f);
    let offset = 10_000u64;
    let mut out = want[..offset as usize].to_vec();
    let mut positions = Vec::new();
    let o = c
        .download(f.download_url.as_deref().unwrap(), offset, &mut out, |p| {
            positions.push(p)
        })
        .await
        .unwrap();
    assert_eq!(out, want);
    assert_eq!(o.bytes_written, want.len() as u64 - offset);
    assert!(!o.restarted_from_zero);
    assert_eq!(o.total_len, Some(want.len() as u64));
    assert!(positions.iter().all(|p| *p > offset));
    assert_eq!(positions.last().copied(), Some(want.len() as u64));

    // Already complete: nothing more to fetch.
    let o = c
        .download(
            f.download_url.as_deref().unwrap(),
            want.len() as u64,
            &mut out,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(o.bytes_written, 0);
    assert_eq!(out, want);
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn truncated_download_is_an_error_then_resumes() {
    let (sim, c, rec) = recorded_sim(SimConfig::default()).await;
    let f = mp4(&rec);
    let want = sim_bytes(&sim, &rec, f);
    let url = f.download_url.as_deref().unwrap();
    sim.inject(Route::SignedDownload, Fault::TruncatedBody, 1);
    let mut out = Vec::new();
    let e = c.download(url, 0, &mut out, |_| {}).await.unwrap_err();
    match e {
        ZoomError::Truncated {
            received, expected, ..
        } => {
            assert_eq!(expected, want.len() as u64);
            assert!(received < expected);
            assert_eq!(out.len() as u64, received);
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    // The caller resumes from what it has.
    let o = c
        .download(url, out.len() as u64, &mut out, |_| {})
        .await
        .unwrap();
    assert!(!o.restarted_from_zero);
    assert_eq!(out, want);
}

#[tokio::test]
async fn stalled_download_fails_instead_of_hanging() {
    let (sim, c, rec) = recorded_sim(SimConfig {
        stall_for: Duration::from_secs(20),
        ..SimConfig::default()
    })
    .await;
    let f = mp4(&rec);
    sim.inject(Route::SignedDownload, Fault::StalledBody, 1);
    let mut out = Vec::new();
    let e = c
        .download(f.download_url.as_deref().unwrap(), 0, &mut out, |_| {})
        .await
        .unwrap_err();
    // The idle timeout gave up on it: had the client waited the 20 s stall out, the sim
    // would have cut the body short and the error would be Truncated.
    assert!(matches!(e, ZoomError::Stalled { .. }), "{e:?}");
    assert!((out.len() as u64) < f.file_size.unwrap(), "{}", out.len());
    assert!(e.is_transient());
}

#[tokio::test]
async fn html_page_is_never_written() {
    let (sim, c, rec) = recorded_sim(SimConfig::default()).await;
    let f = mp4(&rec);
    sim.inject(Route::Download, Fault::HtmlPage, 1);
    let mut out = Vec::new();
    let e = c
        .download(f.download_url.as_deref().unwrap(), 0, &mut out, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ZoomError::HtmlErrorPage { .. }), "{e:?}");
    assert!(out.is_empty());
}

#[tokio::test]
async fn download_faults_before_the_body() {
    let clock = manual_clock();
    let sim = start_on(SimConfig::default(), &clock).await;
    let c = oauth_client(&sim);
    let rec = recorded(&sim, &c).await;
    let f = mp4(&rec);
    let want = sim_bytes(&sim, &rec, f);
    let url = f.download_url.as_deref().unwrap();

    // Token expiry mid-way: renewed once, download goes on.
    let tokens = sim.counters().get(Route::Token);
    sim.inject(Route::Download, Fault::TokenExpired, 1);
    let mut out = Vec::new();
    c.download(url, 0, &mut out, |_| {}).await.unwrap();
    assert_eq!(out, want);
    assert_eq!(sim.counters().get(Route::Token), tokens + 1);
    assert!(clock.take_sleeps().is_empty(), "a renewal is no wait");

    // 429, 503 and a reset before any byte: retried.
    for fault in [
        Fault::RateLimited(RetryAfter::Absent),
        Fault::Status(503),
        Fault::ConnectionReset,
    ] {
        sim.inject(Route::Download, fault.clone(), 1);
        let mut out = Vec::new();
        c.download(url, 0, &mut out, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert_eq!(out, want);
        assert_backoff(&clock.take_sleeps(), 1);
    }
    sim.inject(Route::SignedDownload, Fault::Status(500), 1);
    let mut out = Vec::new();
    c.download(url, 0, &mut out, |_| {}).await.unwrap();
    assert_eq!(out, want);
    assert_backoff(&clock.take_sleeps(), 1);
    // A Retry-After on the download link is honoured as given.
    sim.inject(
        Route::Download,
        Fault::RateLimited(RetryAfter::Seconds(2)),
        1,
    );
    let mut out = Vec::new();
    c.download(url, 0, &mut out, |_| {}).await.unwrap();
    assert_eq!(out, want);
    assert_eq!(clock.take_sleeps(), [Duration::from_secs(2)]);

    // An expired download URL: NotFound (get the recording again for a fresh one).
    sim.expire_download_urls();
    let e = c
        .download(url, 0, &mut Vec::new(), |_| {})
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    let fresh = c
        .get_recordings(&MeetingRef::Uuid(rec.uuid.clone()))
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    c.download(
        mp4(&fresh).download_url.as_deref().unwrap(),
        0,
        &mut out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(out, want);
    assert_no_leaks(&sim);
}

#[tokio::test]
async fn download_to_file_with_digest() {
    let (sim, c, rec) = recorded_sim(SimConfig {
        mp4_size: 3 * 1024 * 1024 + 17,
        ..SimConfig::default()
    })
    .await;
    let f = mp4(&rec);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part");
    let mut file = tokio::fs::File::create(&path).await.unwrap();
    let o = c
        .download(f.download_url.as_deref().unwrap(), 0, &mut file, |_| {})
        .await
        .unwrap();
    drop(file);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(o.bytes_written, bytes.len() as u64);
    assert_eq!(Some(bytes.len() as u64), f.file_size);
    let digest = hex::encode(Sha256::digest(&bytes));
    let key = f.id.clone().unwrap();
    assert_eq!(Some(digest), sim.file_sha256(&rec.uuid, &key));
}

// ---- secrets -----------------------------------------------------------------------------

/// Collects everything the tracing subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_in_errors_or_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );

    let sim = start(SimConfig {
        stall_for: Duration::from_secs(20),
        ..SimConfig::default()
    })
    .await;
    sim.set_daily_cap(3);
    let c = oauth_client(&sim);
    let secret = sim.config().client_secret.clone();
    let rec = recorded(&sim, &c).await;
    let url = mp4(&rec).download_url.clone().unwrap();
    let m = c.create_meeting("me", &sample("Errors")).await.unwrap();

    let mut errors: Vec<ZoomError> = Vec::new();
    let mut tokens: Vec<Secret> = vec![c.token().await.unwrap()];
    let mut push = |r: Result<(), ZoomError>| errors.push(r.expect_err("an error"));

    push(c.get_meeting(1).await.map(drop)); // NotFound
    sim.inject(
        Route::GetMeeting,
        Fault::RateLimited(RetryAfter::Seconds(600)),
        1,
    );
    push(c.get_meeting(m.id).await.map(drop)); // RateLimited
    sim.inject(Route::GetMeeting, Fault::Status(500), 10);
    push(c.get_meeting(m.id).await.map(drop)); // Api 500
    sim.clear_faults();
    sim.inject(Route::GetMeeting, Fault::HtmlPage, 1);
    push(c.get_meeting(m.id).await.map(drop)); // HtmlErrorPage
    sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    push(c.create_meeting("me", &sample("x")).await.map(drop)); // OutcomeUnknown
    push(c.create_meeting("me", &sample("y")).await.map(drop)); // DailyLimit
    sim.inject(Route::GetMeeting, Fault::TokenExpired, 2);
    push(c.get_meeting(m.id).await.map(drop)); // Auth
    tokens.push(c.token().await.unwrap());
    sim.inject(Route::SignedDownload, Fault::TruncatedBody, 1);
    push(c.download(&url, 0, &mut Vec::new(), |_| {}).await.map(drop)); // Truncated
    sim.inject(Route::SignedDownload, Fault::StalledBody, 1);
    push(c.download(&url, 0, &mut Vec::new(), |_| {}).await.map(drop)); // Stalled
    sim.inject(Route::Download, Fault::HtmlPage, 1);
    push(c.download(&url, 0, &mut Vec::new(), |_| {}).await.map(drop)); // HtmlErrorPage
    push(
        c.download(
            "http://127.0.0.1:1/rec/download/x",
            0,
            &mut Vec::new(),
            |_| {},
        )
        .await
        .map(drop),
    ); // Transport
    sim.revoke_tokens();
    c.get_meeting(m.id).await.unwrap();
    tokens.push(c.token().await.unwrap());

    // A client with a wrong secret.
    let mut creds = oauth_credentials(&sim);
    if let Credentials::OAuth { client_secret, .. } = &mut creds {
        *client_secret = Secret::new("wrong-but-secret-value");
    }
    let bad = ZoomClient::new(client_config(&sim, creds)).unwrap();
    push(bad.get_meeting(1).await.map(drop));

    let kinds: std::collections::BTreeSet<String> = errors
        .iter()
        .map(|e| {
            format!("{e:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    for k in [
        "NotFound",
        "RateLimited",
        "Api",
        "HtmlErrorPage",
        "OutcomeUnknown",
        "DailyLimit",
        "Auth",
        "Truncated",
        "Stalled",
        "Transport",
    ] {
        assert!(kinds.contains(k), "{k} not provoked: {kinds:?}");
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "logs were captured");
    let mut haystack = logs;
    for e in &errors {
        write!(haystack, "\n{e}\n{e:?}").ok();
    }
    let haystack = haystack; // immutable from here
    for t in &tokens {
        assert!(t.expose().len() >= 16);
        assert!(!haystack.contains(t.expose()), "a token leaked");
    }
    assert!(!haystack.contains(&secret), "the client secret leaked");
    assert!(
        !haystack.contains("wrong-but-secret-value"),
        "the wrong secret leaked"
    );
    assert_no_leaks(&sim);
}

// ---- answers the sim does not give ------------------------------------------------------

/// A loopback server that answers each request with the next canned response (raw HTTP,
/// `Connection: close`) and records each request head. Only for answers `sim` has no
/// knob for: a server that ignores `Range`, a wrong `Content-Range`, endless redirects,
/// a 503 with `Retry-After` on a create.
async fn canned(responses: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for resp in responses {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head and, if announced, the body.
            while let Ok(n) = sock.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).to_string());
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (base, seen)
}

fn http(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s
}

fn canned_client(base: &str) -> ZoomClient {
    canned_client_on(base, &manual_clock())
}

fn canned_client_on(base: &str, clock: &ManualClock) -> ZoomClient {
    let mut cfg = zoomd::zoom::ClientConfig::new(Credentials::Jwt {
        api_key: "key".into(),
        api_secret: Secret::new("canned-secret"),
        ttl: Duration::from_secs(30),
    });
    cfg.api_url = Url::parse(&format!("{base}/v2")).unwrap();
    cfg.oauth_url = Url::parse(&format!("{base}/oauth/token")).unwrap();
    cfg.retry = fast_retry();
    cfg.timeouts.read_idle = ms(700);
    cfg.clock = clock.shared();
    ZoomClient::new(cfg).unwrap()
}

/// A client of the canned server at `base` downloads `/rec/download/a` from `offset` on,
/// appending to `out`.
async fn canned_download(
    base: &str,
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<DownloadOutcome, ZoomError> {
    canned_client(base)
        .download(&format!("{base}/rec/download/a"), offset, out, |_| {})
        .await
}

#[tokio::test]
async fn range_ignored_restarts_the_sink() {
    let (base, seen) = canned(vec![http(
        "200 OK",
        &[("Content-Type", "video/mp4")],
        "0123456789",
    )])
    .await;
    let mut out = b"01234".to_vec();
    let o = canned_download(&base, 5, &mut out).await.unwrap();
    assert!(o.restarted_from_zero);
    assert_eq!(o.bytes_written, 10);
    assert_eq!(o.total_len, Some(10));
    assert_eq!(o.content_type.as_deref(), Some("video/mp4"));
    assert_eq!(out, b"0123456789");
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.contains("range: bytes=5-"), "{head}");
    assert!(
        head.contains("authorization: bearer "),
        "same origin as api_url"
    );
}

#[tokio::test]
async fn wrong_content_range_is_refused() {
    let (base, _) = canned(vec![http(
        "206 Partial Content",
        &[("Content-Range", "bytes 0-9/10")],
        "0123456789",
    )])
    .await;
    let mut out = b"01234".to_vec();
    let e = canned_download(&base, 5, &mut out).await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::RangeMismatch {
                expected_start: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(out, b"01234", "nothing written");
}

#[tokio::test]
async fn redirects_are_bounded_and_checked() {
    let loop_to_self: Vec<String> = (0..7)
        .map(|i| http("302 Found", &[("Location", &format!("/hop/{i}"))], ""))
        .collect();
    let (base, seen) = canned(loop_to_self).await;
    let e = canned_download(&base, 0, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(e, ZoomError::Redirect { .. }), "{e:?}");
    assert_eq!(seen.lock().unwrap().len(), 6, "first request + 5 hops");

    let (base, _) = canned(vec![http(
        "302 Found",
        &[("Location", "file:///etc/passwd")],
        "",
    )])
    .await;
    let e = canned_download(&base, 0, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(e, ZoomError::Redirect { .. }), "{e:?}");
}

#[tokio::test]
async fn redirect_to_foreign_host_drops_authorization() {
    let (foreign, foreign_seen) = canned(vec![http("200 OK", &[], "payload")]).await;
    let (base, seen) = canned(vec![http(
        "302 Found",
        &[("Location", &format!("{foreign}/signed/x?sig=abc"))],
        "",
    )])
    .await;
    let mut out = Vec::new();
    canned_download(&base, 0, &mut out).await.unwrap();
    assert_eq!(out, b"payload");
    assert!(
        seen.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer")
    );
    assert!(
        !foreign_seen.lock().unwrap()[0]
            .to_ascii_lowercase()
            .contains("authorization"),
        "token sent to a foreign host"
    );
}

#[tokio::test]
async fn create_retries_a_503_with_retry_after() {
    let created = r#"{"id":98765432101,"uuid":"u1==","topic":"T","type":2,"start_time":"2030-01-01T00:00:00Z","duration":45}"#;
    let (base, seen) = canned(vec![
        http(
            "503 Service Unavailable",
            &[("Retry-After", "2"), ("Content-Type", "application/json")],
            r#"{"code":503,"message":"busy"}"#,
        ),
        http(
            "201 Created",
            &[("Content-Type", "application/json")],
            created,
        ),
    ])
    .await;
    let clock = manual_clock();
    let c = canned_client_on(&base, &clock);
    let m = c.create_meeting("me", &sample("T")).await.unwrap();
    assert_eq!(m.id, 98765432101);
    assert_eq!(clock.sleeps(), [Duration::from_secs(2)]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].starts_with("POST /v2/users/me/meetings "));
    assert!(seen[1].contains(r#""auto_recording":"cloud""#));
}

#[tokio::test]
async fn an_absurd_retry_after_is_surfaced_without_an_instant() {
    // 10^13 s is past the last instant chrono can hold: no wait, no instant, no panic.
    let (base, _) = canned(vec![http(
        "429 Too Many Requests",
        &[
            ("Retry-After", "10000000000000"),
            ("Content-Type", "application/json"),
        ],
        r#"{"code":429,"message":"slow down"}"#,
    )])
    .await;
    let clock = manual_clock();
    let c = canned_client_on(&base, &clock);
    let e = c.get_meeting(1).await.unwrap_err();
    assert!(
        matches!(
            e,
            ZoomError::RateLimited {
                attempts: 1,
                retry_at: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(clock.sleeps().is_empty());
}

/// Zoom's 4711 ("does not contain scopes") becomes an error that names the scopes and the
/// feature, and is not retried.
#[tokio::test]
async fn a_4711_answer_names_the_missing_scopes() {
    let sim = sim().await;
    let c = oauth_client(&sim);
    let m = c.create_meeting("me", &sample("Scopes")).await.unwrap();
    sim.inject(
        Route::GetRecordings,
        Fault::MissingScope("cloud_recording:read:list_recording_files:admin"),
        1,
    );
    let before = sim.counters().get(Route::GetRecordings);
    let e = c
        .get_recordings(&zoomd::zoom::MeetingRef::Id(m.id))
        .await
        .unwrap_err();
    assert_eq!(
        sim.counters().get(Route::GetRecordings) - before,
        1,
        "not retried"
    );
    match &e {
        ZoomError::MissingScopes {
            scopes, feature, ..
        } => {
            assert_eq!(scopes, &["cloud_recording:read:list_recording_files:admin"]);
            assert_eq!(*feature, Some("recordings (watch and download)"));
        }
        other => panic!("expected MissingScopes, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("cloud_recording:read:list_recording_files:admin")
            && msg.contains("recordings (watch and download)"),
        "{msg}"
    );
}

/// `GET /users` for every status, every page: active, deactivated and invited users are all
/// found, each once, with one request per page.
#[tokio::test]
async fn list_users_reads_every_status_and_every_page() {
    let mut users = SimConfig::default().users;
    for i in 0..400 {
        users.push(zoomd::sim::SimUser {
            id: format!("listuser{i:03}AAAAAAAAAAA"),
            email: format!("user{i}@example.org"),
            timezone: "UTC".into(),
            status: "active",
        });
    }
    for (id, status) in [("gone", "inactive"), ("invited", "pending")] {
        users.push(zoomd::sim::SimUser {
            id: format!("{id}AAAAAAAAAAAAAAAAA"),
            email: format!("{id}@example.org"),
            timezone: "UTC".into(),
            status,
        });
    }
    let sim = start(SimConfig {
        users,
        ..SimConfig::default()
    })
    .await;
    let c = oauth_client(&sim);
    let all = c
        .list_users(&["active", "inactive", "pending"])
        .await
        .unwrap();
    assert_eq!(all.len(), 404);
    let ids: std::collections::HashSet<&str> = all.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids.len(), 404, "each user once");
    assert!(all.iter().any(|u| u.status.as_deref() == Some("inactive")));
    assert!(
        all.iter()
            .any(|u| u.email.as_deref() == Some("invited@example.org"))
    );
    // 402 active users: two pages of at most 300; one page each for the other two.
    assert_eq!(sim.counters().get(Route::ListUsers), 4);
    let inactive = c.list_users(&["inactive"]).await.unwrap();
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0].id, "goneAAAAAAAAAAAAAAAAA");
}
