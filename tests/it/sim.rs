//! Integration tests of the simulated Zoom (`zoomd::sim`), driven with raw reqwest so
//! they check the sim itself, not the zoomd client (the ad-hoc history tests also read
//! it through the client, as zoomd will). Loopback only; timelines are driven with the
//! sim's clock offset instead of sleeping.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Client, StatusCode, redirect};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use zoomd::clock::ManualClock;
use zoomd::sim::{AdHoc, Chaos, Fault, RetryAfter, Route, Sim, SimConfig, SimError, SimUser};
use zoomd::webhook::{self, Event, WebhookError};
use zoomd::zoom::{MeetingRef, month_windows};

use crate::helpers::{eventually, oauth_client, spawn_sim};

type R<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|_| Client::new())
}

fn no_redirect_client() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| Client::new())
}

/// `POST` to the token endpoint with the sim's client id and `secret` as Basic
/// credentials (none for `None`) and `form` as the body.
async fn token_request(
    sim: &Sim,
    c: &Client,
    secret: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Result<reqwest::Response> {
    let mut rb = c.post(sim.oauth_url()).form(form);
    if let Some(secret) = secret {
        rb = rb.basic_auth(&sim.config().client_id, Some(secret));
    }
    rb.send().await
}

/// The body of a Server-to-Server OAuth token request for the sim's account.
fn grant(sim: &Sim) -> [(&'static str, &str); 2] {
    [
        ("grant_type", "account_credentials"),
        ("account_id", sim.config().account_id.as_str()),
    ]
}

async fn oauth_token(sim: &Sim, c: &Client) -> R<String> {
    let secret = &sim.config().client_secret;
    let r = token_request(sim, c, Some(secret), &grant(sim)).await?;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await?;
    Ok(v["access_token"].as_str().ok_or("no token")?.to_string())
}

/// A sim with `cfg`'s knobs, a plain HTTP client and an OAuth token of the sim's.
async fn session(cfg: SimConfig) -> R<(Sim, Client, String)> {
    let sim = spawn_sim(cfg).await;
    let c = client();
    let tok = oauth_token(&sim, &c).await?;
    Ok((sim, c, tok))
}

/// `2026-01-02T03:04:05Z`, `mins` minutes from the sim's now.
fn utc_in(sim: &Sim, mins: i64) -> String {
    (sim.now() + TimeDelta::minutes(mins))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meeting_body(sim: &Sim, topic: &str, mins: i64, recording: &str) -> Value {
    json!({
        "topic": topic,
        "type": 2,
        "start_time": utc_in(sim, mins),
        "duration": 30,
        "timezone": "Europe/Berlin",
        "agenda": format!("zoomd:{topic}"),
        "settings": {"auto_recording": recording, "join_before_host": true}
    })
}

async fn create(sim: &Sim, c: &Client, tok: &str, body: &Value) -> R<Value> {
    let r = post_meeting(sim, c, tok, "me", body).await?;
    let status = r.status();
    let v: Value = r.json().await?;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    Ok(v)
}

/// `POST /users/{user}/meetings` with `body`, whatever the answer.
async fn post_meeting(
    sim: &Sim,
    c: &Client,
    tok: &str,
    user: &str,
    body: &Value,
) -> R<reqwest::Response> {
    Ok(c.post(format!("{}/users/{user}/meetings", sim.api_url()))
        .bearer_auth(tok)
        .json(body)
        .send()
        .await?)
}

/// `PATCH url` with `body`; the answer's status.
async fn patch(c: &Client, url: &str, tok: &str, body: &Value) -> R<StatusCode> {
    Ok(c.patch(url)
        .bearer_auth(tok)
        .json(body)
        .send()
        .await?
        .status())
}

/// `DELETE url`; the answer's status.
async fn delete(c: &Client, url: &str, tok: &str) -> R<StatusCode> {
    Ok(c.delete(url).bearer_auth(tok).send().await?.status())
}

/// The value of header `name`, when it is text.
fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `GET` of `path` under the sim's API URL: the status and the body (JSON, else text).
async fn api_get(sim: &Sim, c: &Client, tok: &str, path: &str) -> R<(StatusCode, Value)> {
    get_json(c, &format!("{}{path}", sim.api_url()), tok).await
}

/// Every page of the listing at `path` (with a query, without `next_page_token`),
/// following `next_page_token` to the last; each must be a 200.
async fn all_pages(sim: &Sim, c: &Client, tok: &str, path: &str) -> R<Vec<Value>> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let (s, v) = api_get(sim, c, tok, &format!("{path}&next_page_token={token}")).await?;
        assert_eq!(s, 200, "{v}");
        token = v["next_page_token"].as_str().unwrap_or("").to_string();
        pages.push(v);
        if token.is_empty() {
            return Ok(pages);
        }
    }
}

async fn get_json(c: &Client, url: &str, tok: &str) -> R<(StatusCode, Value)> {
    let r = c.get(url).bearer_auth(tok).send().await?;
    let s = r.status();
    let text = r.text().await?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((s, v))
}

fn assert_code(v: &Value, code: i64) {
    assert_eq!(v["code"].as_i64(), Some(code), "{v}");
}

fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn files_of(rec: &Value) -> Vec<Value> {
    rec["recording_files"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn file_types(rec: &Value) -> Vec<String> {
    files_of(rec)
        .iter()
        .map(|f| f["file_type"].as_str().unwrap_or("").to_string())
        .collect()
}

fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().unwrap_or(-1)
}

// ----- auth -------------------------------------------------------------------------

#[tokio::test]
async fn oauth_token_happy_path_and_bad_credentials() -> R {
    let sim = spawn_sim(SimConfig::default()).await;
    let c = client();
    let cfg = sim.config().clone();
    let secret = Some(cfg.client_secret.as_str());

    let r = token_request(&sim, &c, secret, &grant(&sim)).await?;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await?;
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 3600);
    assert!(v["scope"].as_str().is_some_and(|s| s.contains(' ')));
    let tok = v["access_token"].as_str().ok_or("token")?;
    let (s, _) = get_json(&c, &format!("{}/users/me/meetings", sim.api_url()), tok).await?;
    assert_eq!(s, 200);

    // Zoom's docs also show the parameters in the query string.
    let r = c
        .post(format!(
            "{}?grant_type=account_credentials&account_id={}",
            sim.oauth_url(),
            cfg.account_id
        ))
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .send()
        .await?;
    assert_eq!(r.status(), 200);

    let wrong_secret = token_request(&sim, &c, Some("nope"), &grant(&sim)).await?;
    assert_eq!(wrong_secret.status(), 401);
    let v: Value = wrong_secret.json().await?;
    assert_eq!(v["error"], "invalid_client");
    assert!(v["reason"].is_string());

    let no_basic = token_request(&sim, &c, None, &grant(&sim)).await?;
    assert_eq!(no_basic.status(), 401);

    let wrong_account = token_request(
        &sim,
        &c,
        secret,
        &[("grant_type", "account_credentials"), ("account_id", "x")],
    )
    .await?;
    assert_eq!(wrong_account.status(), 400);
    let wrong_grant = token_request(
        &sim,
        &c,
        secret,
        &[
            ("grant_type", "client_credentials"),
            ("account_id", cfg.account_id.as_str()),
        ],
    )
    .await?;
    assert_eq!(wrong_grant.status(), 400);
    let v: Value = wrong_grant.json().await?;
    assert_eq!(v["error"], "unsupported_grant_type");
    assert_eq!(sim.counters().get(Route::Token), 6);
    Ok(())
}

#[tokio::test]
async fn oauth_token_expires_on_the_sim_clock() -> R {
    let (sim, c, tok) = session(SimConfig {
        token_expires_in: 60,
        ..SimConfig::default()
    })
    .await?;
    let url = format!("{}/users/me/meetings", sim.api_url());
    assert_eq!(get_json(&c, &url, &tok).await?.0, 200);
    sim.advance(Duration::from_secs(61));
    let (s, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 401);
    assert_code(&v, 124);
    Ok(())
}

fn jwt(alg: Algorithm, secret: &str, claims: &Value) -> R<String> {
    Ok(jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[tokio::test]
async fn jwt_accepted_and_rejected() -> R {
    let sim = spawn_sim(SimConfig::default()).await;
    let c = client();
    let cfg = sim.config().clone();
    let url = format!("{}/users/me/meetings", sim.api_url());
    let now = Utc::now().timestamp();

    let good = jwt(
        Algorithm::HS256,
        &cfg.api_secret,
        &json!({"iss": cfg.api_key, "exp": now + 60, "iat": now}),
    )?;
    assert_eq!(get_json(&c, &url, &good).await?.0, 200);

    let payload = URL_SAFE_NO_PAD.encode(json!({"iss": cfg.api_key, "exp": now + 60}).to_string());
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{payload}.");
    // An HS256 header over a forged signature.
    let hs_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    let forged = format!(
        "{hs_header}.{payload}.{}",
        URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    let bad = [
        ("alg none", alg_none),
        ("forged signature", forged),
        (
            "HS384",
            jwt(
                Algorithm::HS384,
                &cfg.api_secret,
                &json!({"iss": cfg.api_key, "exp": now + 60}),
            )?,
        ),
        (
            "expired",
            jwt(
                Algorithm::HS256,
                &cfg.api_secret,
                &json!({"iss": cfg.api_key, "exp": now - 5}),
            )?,
        ),
        (
            "exp in ms",
            jwt(
                Algorithm::HS256,
                &cfg.api_secret,
                &json!({"iss": cfg.api_key, "exp": (now + 60) * 1000}),
            )?,
        ),
        (
            "no exp",
            jwt(
                Algorithm::HS256,
                &cfg.api_secret,
                &json!({"iss": cfg.api_key}),
            )?,
        ),
        (
            "wrong iss",
            jwt(
                Algorithm::HS256,
                &cfg.api_secret,
                &json!({"iss": "someone", "exp": now + 60}),
            )?,
        ),
        (
            "wrong secret",
            jwt(
                Algorithm::HS256,
                "other-secret",
                &json!({"iss": cfg.api_key, "exp": now + 60}),
            )?,
        ),
    ];
    for (name, tok) in bad {
        let (s, v) = get_json(&c, &url, &tok).await?;
        assert_eq!(s, 401, "{name}");
        assert_code(&v, 124);
    }
    Ok(())
}

#[tokio::test]
async fn bearer_required_and_never_in_the_url() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let url = format!("{}/users/me/meetings", sim.api_url());

    let r = c.get(&url).send().await?;
    assert_eq!(r.status(), 401);
    assert_code(&r.json().await?, 124);

    let r = c.get(&url).bearer_auth("made-up").send().await?;
    assert_eq!(r.status(), 401);

    // Even with a good header, a token in the query string is refused.
    let r = c
        .get(format!("{url}?access_token={tok}"))
        .bearer_auth(&tok)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_code(&r.json().await?, 124);
    let r = c
        .get(format!("{url}?type=scheduled&t={tok}"))
        .bearer_auth(&tok)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = c.get(format!("{url}?access_token={tok}")).send().await?;
    assert_eq!(r.status(), 401);
    let seen = sim.report().tokens_in_urls;
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].starts_with("GET /v2/users/me/meetings?access_token="));

    // The sim's own token checks don't misfire on ordinary queries.
    let (s, _) = get_json(&c, &format!("{url}?type=upcoming&page_size=5"), &tok).await?;
    assert_eq!(s, 200);
    Ok(())
}

// ----- meetings ---------------------------------------------------------------------

#[tokio::test]
async fn create_validation_errors_are_400_300() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let base = meeting_body(&sim, "Valid", 60, "cloud");
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let with_setting = |k: &str, v: Value| {
        let mut b = base.clone();
        b["settings"][k] = v;
        b
    };
    let cases = vec![
        ("duration 0", with("duration", json!(0))),
        ("duration 1441", with("duration", json!(1441))),
        ("duration string", with("duration", json!("60"))),
        ("topic 201", with("topic", json!("x".repeat(201)))),
        ("agenda 2001", with("agenda", json!("y".repeat(2001)))),
        (
            "start_time offset",
            with("start_time", json!("2030-01-01T10:00:00+01:00")),
        ),
        (
            "start_time millis",
            with("start_time", json!("2030-01-01T10:00:00.000Z")),
        ),
        (
            "start_time no seconds",
            with("start_time", json!("2030-01-01T10:00Z")),
        ),
        (
            "start_time garbage",
            with("start_time", json!("next monday")),
        ),
        ("start_time missing", with("start_time", Value::Null)),
        ("bad timezone", with("timezone", json!("Europe/Atlantis"))),
        ("type 3", with("type", json!(3))),
        ("type 1", with("type", json!(1))),
        (
            "auto_recording",
            with_setting("auto_recording", json!("youtube")),
        ),
        (
            "encryption_type",
            with_setting("encryption_type", json!("rot13")),
        ),
        ("approval_type", with_setting("approval_type", json!(7))),
        ("jbh bool", with_setting("join_before_host", json!("yes"))),
        ("settings not object", with("settings", json!([1]))),
    ];
    for (name, body) in cases {
        let r = post_meeting(&sim, &c, &tok, "me", &body).await?;
        assert_eq!(r.status(), 400, "{name}");
        let v: Value = r.json().await?;
        assert_code(&v, 300);
    }
    // Not JSON at all.
    let r = c
        .post(format!("{}/users/me/meetings", sim.api_url()))
        .bearer_auth(&tok)
        .header("content-type", "application/json")
        .body("{topic:")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!("{}/users/me/meetings", sim.api_url()))
        .bearer_auth(&tok)
        .form(&[("topic", "x")])
        .send()
        .await?;
    assert_eq!(r.status(), 400);

    // Edges that are valid, and unknown fields that Zoom ignores.
    let mut ok = with("duration", json!(1440));
    ok["topic"] = json!("t".repeat(200));
    ok["whatever"] = json!({"x": 1});
    ok["settings"]["not_a_setting"] = json!(true);
    let v = create(&sim, &c, &tok, &ok).await?;
    assert!(v["settings"].get("not_a_setting").is_none());
    assert!(sim.meetings().len() == 1, "only the valid one was created");
    Ok(())
}

#[tokio::test]
async fn create_get_patch_delete() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let api = sim.api_url();

    // A local time with its zone: 09:00 Berlin in winter is 08:00 UTC.
    let body = json!({
        "topic": "Weekly standup",
        "type": 2,
        "start_time": "2030-01-07T09:00:00",
        "timezone": "Europe/Berlin",
        "duration": 45,
        "agenda": "Status round",
        "settings": {"auto_recording": "cloud", "waiting_room": true}
    });
    let v = create(&sim, &c, &tok, &body).await?;
    let id = id_of(&v);
    assert!(id > 9_999_999_999, "ids exceed 10 digits: {id}");
    assert_eq!(v["start_time"], "2030-01-07T08:00:00Z");
    assert_eq!(v["timezone"], "Europe/Berlin");
    assert_eq!(v["duration"], 45);
    assert_eq!(v["type"], 2);
    assert_eq!(v["agenda"], "Status round");
    assert_eq!(v["settings"]["auto_recording"], "cloud");
    assert_eq!(v["settings"]["waiting_room"], true);
    assert_eq!(v["host_id"], sim.config().users[0].id);
    let uuid = v["uuid"].as_str().ok_or("uuid")?;
    assert!(uuid.ends_with("==") && uuid.len() == 24);
    let join = v["join_url"].as_str().ok_or("join_url")?;
    assert!(join.starts_with("https://") && join.contains(&format!("/j/{id}?pwd=")));
    for k in ["start_url", "password", "created_at"] {
        assert!(v[k].is_string(), "{k}");
    }

    // A local time without zone uses the host's zone; the second user is in New York.
    let mut b2 = body.clone();
    b2.as_object_mut().map(|o| o.remove("timezone"));
    let r = post_meeting(&sim, &c, &tok, "chair@example.org", &b2).await?;
    assert_eq!(r.status(), 201);
    let v2: Value = r.json().await?;
    assert_eq!(v2["start_time"], "2030-01-07T14:00:00Z");
    assert_eq!(v2["timezone"], "America/New_York");

    let url = format!("{api}/meetings/{id}");
    let (s, got) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 200);
    assert_eq!(got["topic"], "Weekly standup");
    assert_eq!(got["id"], id);

    assert_eq!(
        patch(
            &c,
            &url,
            &tok,
            &json!({"topic": "Renamed", "start_time": "2030-01-07T10:00:00Z", "duration": 50})
        )
        .await?,
        204
    );
    let (_, got) = get_json(&c, &url, &tok).await?;
    assert_eq!(got["topic"], "Renamed");
    assert_eq!(got["start_time"], "2030-01-07T10:00:00Z");
    assert_eq!(got["duration"], 50);
    assert_eq!(
        got["agenda"], "Status round",
        "PATCH keeps what it does not name"
    );

    assert_eq!(patch(&c, &url, &tok, &json!({"duration": 0})).await?, 400);

    assert_eq!(delete(&c, &url, &tok).await?, 204);
    let (s, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 3001);
    assert_eq!(v["message"], "Meeting does not exist");
    assert_eq!(delete(&c, &url, &tok).await?, 404);
    assert_eq!(
        patch(
            &c,
            &format!("{api}/meetings/123"),
            &tok,
            &json!({"topic": "x"})
        )
        .await?,
        404
    );

    let (s, v) = get_json(&c, &format!("{api}/users/ghost@example.org/meetings"), &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 1001);
    assert_eq!(v["message"], "User does not exist: ghost@example.org");

    let rep = sim.report();
    assert_eq!(rep.meetings_created.len(), 2);
    assert_eq!(rep.meetings_created[0].topic, "Weekly standup");
    assert_eq!(rep.meetings_created[0].agenda, "Status round");
    assert_eq!(rep.meetings_updated.len(), 1);
    assert_eq!(rep.meetings_deleted, vec![id]);
    let cn = sim.counters();
    assert_eq!(cn.get(Route::CreateMeeting), 2);
    assert_eq!(cn.get(Route::UpdateMeeting), 3);
    assert_eq!(cn.get(Route::DeleteMeeting), 2);
    assert!(cn.responses_4xx >= 5);
    Ok(())
}

#[tokio::test]
async fn upcoming_list_paginates() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let mut ids = Vec::new();
    for i in 0..7 {
        let v = create(
            &sim,
            &c,
            &tok,
            &meeting_body(&sim, &format!("m{i}"), 60 + i, "none"),
        )
        .await?;
        ids.push(id_of(&v));
    }
    // One in the past is not upcoming (but still scheduled).
    let past = create(&sim, &c, &tok, &meeting_body(&sim, "past", -120, "none")).await?;

    let pages = all_pages(
        &sim,
        &c,
        &tok,
        "/users/me/meetings?type=upcoming&page_size=3",
    )
    .await?;
    let mut seen = Vec::new();
    for v in &pages {
        assert_eq!(v["total_records"], 7);
        assert_eq!(v["page_size"], 3);
        for m in v["meetings"].as_array().ok_or("meetings")? {
            seen.push(id_of(m));
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, ids);

    let (_, v) = api_get(
        &sim,
        &c,
        &tok,
        "/users/me/meetings?type=scheduled&page_size=300",
    )
    .await?;
    assert_eq!(v["total_records"], 8);
    assert!(
        v["meetings"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m["id"] == past["id"]))
    );

    let (s, v) = api_get(
        &sim,
        &c,
        &tok,
        "/users/me/meetings?type=upcoming&next_page_token=bogus",
    )
    .await?;
    assert_eq!(s, 400);
    assert_code(&v, 300);
    let (s, _) = api_get(&sim, &c, &tok, "/users/me/meetings?type=everything").await?;
    assert_eq!(s, 400);
    Ok(())
}

#[tokio::test]
async fn daily_cap_counts_creates_and_updates() -> R {
    let (sim, c, tok) = session(SimConfig {
        daily_cap: 3,
        ..SimConfig::default()
    })
    .await?;
    let a = create(&sim, &c, &tok, &meeting_body(&sim, "a", 60, "none")).await?;
    create(&sim, &c, &tok, &meeting_body(&sim, "b", 60, "none")).await?;
    assert_eq!(
        patch(
            &c,
            &format!("{}/meetings/{}", sim.api_url(), id_of(&a)),
            &tok,
            &json!({"topic": "a2"})
        )
        .await?,
        204
    );
    let r = post_meeting(&sim, &c, &tok, "me", &meeting_body(&sim, "c", 60, "none")).await?;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "x-ratelimit-type"), Some("Daily-limit"));
    let v: Value = r.json().await?;
    assert_code(&v, 429);
    assert_eq!(
        v["message"],
        "You have exceeded the daily rate limit (3) of Meeting Create/Update API requests \
         permitted for this particular user. You may resume these requests at GMT 00:00:00."
    );
    assert_eq!(sim.meetings().len(), 2);
    // Another host has its own budget.
    let r = post_meeting(
        &sim,
        &c,
        &tok,
        "chair@example.org",
        &meeting_body(&sim, "d", 60, "none"),
    )
    .await?;
    assert_eq!(r.status(), 201);
    // The budget resets at 00:00 UTC.
    // (a day later the token has expired too)
    sim.advance(Duration::from_secs(24 * 3600));
    let tok = oauth_token(&sim, &c).await?;
    create(&sim, &c, &tok, &meeting_body(&sim, "e", 60, "none")).await?;

    let old = spawn_sim(SimConfig {
        daily_cap: 1,
        daily_cap_as_300: true,
        ..SimConfig::default()
    })
    .await;
    let tok = oauth_token(&old, &c).await?;
    create(&old, &c, &tok, &meeting_body(&old, "a", 60, "none")).await?;
    let r = post_meeting(&old, &c, &tok, "me", &meeting_body(&old, "b", 60, "none")).await?;
    assert_eq!(r.status().as_u16(), 300);
    let v: Value = r.json().await?;
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("daily rate limit (1)"))
    );
    Ok(())
}

// ----- recordings -------------------------------------------------------------------

fn timeline_cfg() -> SimConfig {
    SimConfig {
        recording_after: Duration::from_secs(60),
        processing_for: Duration::from_secs(60),
        transcript_after: Duration::from_secs(300),
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn recording_timeline_processing_completed_late_transcript() -> R {
    let (sim, c, tok) = session(timeline_cfg()).await?;
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "Rec", 5, "cloud")).await?;
    let id = id_of(&m);
    let url = format!("{}/meetings/{id}/recordings", sim.api_url());

    let (s, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 3301);
    assert_eq!(v["message"], "This recording does not exist.");

    sim.end_meeting_now(id)?;
    let (s, _) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 404, "recording_after has not passed yet");

    sim.advance(Duration::from_secs(61));
    let (s, rec) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(file_types(&rec), ["MP4", "M4A", "CHAT"]);
    for f in files_of(&rec) {
        assert_eq!(f["status"], "processing");
        assert_eq!(f["file_size"], 0);
    }
    assert_eq!(rec["type"], "2", "the recording type is a string");
    assert_eq!(rec["id"], id);
    assert_eq!(rec["uuid"], m["uuid"]);

    sim.advance(Duration::from_secs(61));
    let (_, rec) = get_json(&c, &url, &tok).await?;
    assert_eq!(file_types(&rec), ["MP4", "M4A", "CHAT", "CC"]);
    let files = files_of(&rec);
    for f in &files[..3] {
        assert_eq!(f["status"], "completed");
        assert!(f["file_size"].as_u64().is_some_and(|n| n > 0));
        for k in [
            "id",
            "meeting_id",
            "recording_start",
            "recording_end",
            "file_extension",
            "play_url",
            "download_url",
            "recording_type",
        ] {
            assert!(f[k].is_string(), "{k}: {f}");
        }
    }
    assert_eq!(files[0]["file_size"], 64 * 1024);
    assert_eq!(
        files[0]["recording_type"],
        "shared_screen_with_speaker_view"
    );
    assert_eq!(files[1]["recording_type"], "audio_only");
    assert_eq!(files[2]["file_extension"], "TXT");
    let cc = &files[3];
    for k in ["id", "status", "file_size"] {
        assert!(cc.get(k).is_none(), "CC has no {k}: {cc}");
    }
    assert!(cc["download_url"].is_string());
    let total: u64 = files.iter().filter_map(|f| f["file_size"].as_u64()).sum();
    assert_eq!(rec["total_size"], total);
    assert_eq!(rec["recording_count"], 4);

    sim.advance(Duration::from_secs(240));
    let (_, rec) = get_json(&c, &url, &tok).await?;
    let tr = file(&rec, "TRANSCRIPT")?;
    assert_eq!(tr["status"], "processing");
    assert_eq!(tr["file_extension"], "VTT");
    sim.advance(Duration::from_secs(61));
    let (_, rec) = get_json(&c, &url, &tok).await?;
    let tr = file(&rec, "TRANSCRIPT")?;
    assert_eq!(tr["status"], "completed");
    assert_eq!(sim.expected_files().len(), 5);
    Ok(())
}

#[tokio::test]
async fn only_cloud_recorded_meetings_get_recordings() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    for rec in ["none", "local"] {
        let m = create(&sim, &c, &tok, &meeting_body(&sim, rec, 5, rec)).await?;
        sim.force_recording(id_of(&m))?;
        let url = format!("{}/meetings/{}/recordings", sim.api_url(), id_of(&m));
        let (s, v) = get_json(&c, &url, &tok).await?;
        assert_eq!(s, 404, "{rec}");
        assert_code(&v, 3301);
    }
    let (s, _) = api_get(&sim, &c, &tok, "/meetings/42/recordings").await?;
    assert_eq!(s, 404);
    assert!(sim.expected_files().is_empty());
    Ok(())
}

#[tokio::test]
async fn second_instance_needs_double_encoding() -> R {
    let (sim, c, tok) = session(SimConfig {
        second_instance: true,
        ..SimConfig::default()
    })
    .await?;
    let api = sim.api_url();
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "Twice", 5, "cloud")).await?;
    let id = id_of(&m);

    let (s, v) = get_json(&c, &format!("{api}/past_meetings/{id}/instances"), &tok).await?;
    assert_eq!(s, 200);
    assert_eq!(
        v["meetings"].as_array().map(Vec::len),
        Some(0),
        "nothing happened yet"
    );

    sim.force_recording(id)?;
    let (_, v) = get_json(&c, &format!("{api}/past_meetings/{id}/instances"), &tok).await?;
    let inst = v["meetings"].as_array().cloned().unwrap_or_default();
    assert_eq!(inst.len(), 2);
    assert_eq!(inst[0]["uuid"], m["uuid"]);
    let second = inst[1]["uuid"].as_str().ok_or("uuid")?.to_string();
    assert!(second.starts_with('/'), "{second}");
    assert!(inst[1]["start_time"].is_string());

    // Numeric id: the latest instance only.
    let (s, rec) = get_json(&c, &format!("{api}/meetings/{id}/recordings"), &tok).await?;
    assert_eq!(s, 200);
    assert_eq!(rec["uuid"], second.as_str());

    // Encoded once, a uuid starting with '/' does not resolve.
    let once = enc(&second);
    let (s, v) = get_json(&c, &format!("{api}/meetings/{once}/recordings"), &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 3301);
    assert_eq!(sim.report().encoding_errors.len(), 1);
    // Not encoded at all, neither.
    let (s, _) = get_json(&c, &format!("{api}/meetings/{second}/recordings"), &tok).await?;
    assert_eq!(s, 404);

    let twice = enc(&enc(&second));
    let (s, rec) = get_json(&c, &format!("{api}/meetings/{twice}/recordings"), &tok).await?;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["uuid"], second.as_str());
    let (s, pm) = get_json(&c, &format!("{api}/past_meetings/{twice}"), &tok).await?;
    assert_eq!(s, 200);
    assert_eq!(pm["uuid"], second.as_str());
    assert_eq!(pm["id"], id);

    // The first instance by its (plain) uuid, encoded once or twice.
    let first = m["uuid"].as_str().ok_or("uuid")?;
    for form in [enc(first), enc(&enc(first))] {
        let (s, rec) = get_json(&c, &format!("{api}/meetings/{form}/recordings"), &tok).await?;
        assert_eq!(s, 200);
        assert_eq!(rec["uuid"], first);
    }
    assert_eq!(sim.expected_files().len(), 10);
    Ok(())
}

#[tokio::test]
async fn list_recordings_window_and_pages() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    for i in 0..3 {
        let m = create(
            &sim,
            &c,
            &tok,
            &meeting_body(&sim, &format!("r{i}"), 1, "cloud"),
        )
        .await?;
        sim.force_recording(id_of(&m))?;
    }
    let today = sim.now().date_naive();
    let from = (today - TimeDelta::days(3)).format("%Y-%m-%d");
    let to = (today + TimeDelta::days(1)).format("%Y-%m-%d");
    let path = format!("/users/me/recordings?from={from}&to={to}&page_size=2");
    let pages = all_pages(&sim, &c, &tok, &path).await?;
    let mut uuids = Vec::new();
    for v in &pages {
        assert_eq!(v["total_records"], 3);
        for m in v["meetings"].as_array().ok_or("meetings")? {
            assert_eq!(m["type"], "2");
            assert_eq!(files_of(m).len(), 5);
            uuids.push(m["uuid"].clone());
        }
    }
    assert_eq!(pages.len(), 2);
    assert_eq!(uuids.len(), 3);

    let (s, v) = api_get(
        &sim,
        &c,
        &tok,
        "/users/me/recordings?from=2026-01-01&to=2026-02-02",
    )
    .await?;
    assert_eq!(s, 400);
    assert_code(&v, 300);
    let (s, v) = api_get(
        &sim,
        &c,
        &tok,
        "/users/me/recordings?from=2026-01-01&to=2026-02-01",
    )
    .await?;
    assert_eq!(s, 200, "exactly one month is fine");
    assert_eq!(v["total_records"], 0);
    let (s, _) = api_get(&sim, &c, &tok, "/users/me/recordings?from=01/01/2026").await?;
    assert_eq!(s, 400);
    Ok(())
}

#[tokio::test]
async fn trash_and_delete_recordings() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let api = sim.api_url();
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "Del", 1, "cloud")).await?;
    let id = id_of(&m);
    sim.force_recording(id)?;
    let uuid = m["uuid"].as_str().ok_or("uuid")?;
    let u2 = enc(&enc(uuid));
    let recs = format!("{api}/meetings/{u2}/recordings");
    let (_, rec) = get_json(&c, &recs, &tok).await?;
    let mp4 = files_of(&rec)[0]["id"].as_str().ok_or("id")?.to_string();

    assert_eq!(
        delete(&c, &format!("{recs}/{mp4}?action=delete"), &tok).await?,
        204
    );
    let (_, rec) = get_json(&c, &recs, &tok).await?;
    assert_eq!(file_types(&rec), ["M4A", "CHAT", "TRANSCRIPT", "CC"]);
    assert_eq!(
        delete(&c, &format!("{recs}?action=shred"), &tok).await?,
        400
    );
    assert_eq!(
        delete(&c, &format!("{recs}?action=trash"), &tok).await?,
        204
    );
    let (s, v) = get_json(&c, &recs, &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 3301);
    assert_eq!(
        delete(&c, &format!("{recs}?action=trash"), &tok).await?,
        404
    );
    let today = sim.now().date_naive().format("%Y-%m-%d");
    let (_, v) = get_json(
        &c,
        &format!("{api}/users/me/recordings?from={today}&to={today}&trash=true"),
        &tok,
    )
    .await?;
    assert_eq!(v["total_records"], 1);
    let removed = sim.report().recordings_removed;
    assert_eq!(removed.len(), 2);
    assert_eq!(removed[0].file_id.as_deref(), Some(mp4.as_str()));
    assert_eq!(removed[0].action, "delete");
    assert_eq!(removed[1].file_id, None);
    assert_eq!(removed[1].action, "trash");
    assert_eq!(removed[1].uuid, uuid);
    Ok(())
}

// ----- downloads --------------------------------------------------------------------

/// A meeting with a forced recording; returns (meeting, recording JSON).
async fn recorded(sim: &Sim, c: &Client, tok: &str) -> R<(Value, Value)> {
    let m = create(sim, c, tok, &meeting_body(sim, "Dl", 1, "cloud")).await?;
    sim.force_recording(id_of(&m))?;
    let url = format!("{}/meetings/{}/recordings", sim.api_url(), id_of(&m));
    let (s, rec) = get_json(c, &url, tok).await?;
    assert_eq!(s, 200);
    Ok((m, rec))
}

fn file<'a>(rec: &'a Value, ft: &str) -> R<&'a Value> {
    Ok(rec["recording_files"]
        .as_array()
        .and_then(|a| a.iter().find(|f| f["file_type"] == ft))
        .ok_or("file")?)
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

#[tokio::test]
async fn download_redirects_to_signed_host_with_range_resume() -> R {
    let sim = spawn_sim(SimConfig::default()).await;
    let c = client();
    let nr = no_redirect_client();
    let tok = oauth_token(&sim, &c).await?;
    let (_, rec) = recorded(&sim, &c, &tok).await?;
    let uuid = rec["uuid"].as_str().ok_or("uuid")?;
    let mp4 = file(&rec, "MP4")?;
    let dl = mp4["download_url"].as_str().ok_or("url")?;
    let fid = mp4["id"].as_str().ok_or("id")?;
    assert!(dl.starts_with(&sim.api_url().replace("/v2", "/rec/download/")));

    // The hop on the API host wants the Bearer header.
    let r = nr.get(dl).send().await?;
    assert_eq!(r.status(), 401);
    assert_code(&r.json().await?, 124);
    let r = nr.get(format!("{dl}?access_token={tok}")).send().await?;
    assert_eq!(r.status(), 401);

    let r = nr.get(dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 302);
    let loc = header(&r, "location").ok_or("location")?.to_string();
    assert!(
        loc.starts_with(&format!("{}/signed/", sim.download_base())),
        "{loc}"
    );

    // The whole file, following the redirect (reqwest drops the header cross-host).
    let r = c.get(dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("video/mp4"));
    assert_eq!(r.content_length(), Some(64 * 1024));
    let whole = r.bytes().await?;
    assert_eq!(whole.len(), 64 * 1024);
    assert_eq!(Some(sha_hex(&whole)), sim.file_sha256(uuid, fid));

    // Resume from byte 40000.
    let r = c.get(&loc).header("range", "bytes=40000-").send().await?;
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), Some("bytes 40000-65535/65536"));
    assert_eq!(r.content_length(), Some(65536 - 40000));
    let tail = r.bytes().await?;
    assert_eq!(&tail[..], &whole[40000..]);
    // A resumed download through the API host keeps the Range header.
    let r = c
        .get(dl)
        .bearer_auth(&tok)
        .header("range", "bytes=65000-")
        .send()
        .await?;
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await?[..], &whole[65000..]);

    let r = c.get(&loc).header("range", "bytes=65536-").send().await?;
    assert_eq!(r.status(), 416);
    assert_eq!(header(&r, "content-range"), Some("bytes */65536"));
    let r = c.get(&loc).header("range", "bytes=x-").send().await?;
    assert_eq!(r.status(), 416);

    // A tampered signature is refused.
    let r = c.get(format!("{loc}0")).send().await?;
    assert_eq!(r.status(), 403);

    // Every file can be fetched and matches expected_files, the CC one included.
    for f in files_of(&rec) {
        let url = f["download_url"].as_str().ok_or("url")?;
        let r = c.get(url).bearer_auth(&tok).send().await?;
        assert_eq!(r.status(), 200, "{f}");
        let body = r.bytes().await?;
        let key = f["id"].as_str().unwrap_or("CC");
        assert_eq!(Some(sha_hex(&body)), sim.file_sha256(uuid, key), "{f}");
        if let Some(size) = f["file_size"].as_u64() {
            assert_eq!(body.len() as u64, size);
        }
    }
    let expected = sim.expected_files();
    assert_eq!(expected.len(), 5);
    assert!(
        expected
            .iter()
            .any(|e| e.file_type == "CC" && e.file_id.is_none())
    );

    // The signed host must never see the token; prove the recorder works.
    assert!(sim.report().download_auth_headers.is_empty());
    let r = c.get(&loc).bearer_auth("leak").send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.report().download_auth_headers,
        vec!["Bearer leak".to_string()]
    );
    let cn = sim.counters();
    assert!(cn.bytes_served >= 2 * 64 * 1024);
    assert!(cn.get(Route::SignedDownload) >= 9);
    Ok(())
}

#[tokio::test]
async fn expired_download_urls_need_a_fresh_listing() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let (m, rec) = recorded(&sim, &c, &tok).await?;
    let old = file(&rec, "M4A")?["download_url"]
        .as_str()
        .ok_or("url")?
        .to_string();
    sim.expire_download_urls();
    let r = c.get(&old).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 404);
    assert_code(&r.json().await?, 3301);
    let url = format!("{}/meetings/{}/recordings", sim.api_url(), id_of(&m));
    let (_, rec) = get_json(&c, &url, &tok).await?;
    let fresh = file(&rec, "M4A")?["download_url"].as_str().ok_or("url")?;
    assert_ne!(fresh, old);
    let r = c.get(fresh).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await?.len(), 16 * 1024);

    // Signed URLs expire on their own too.
    let r = no_redirect_client()
        .get(fresh)
        .bearer_auth(&tok)
        .send()
        .await?;
    let loc = header(&r, "location").ok_or("location")?.to_string();
    sim.advance(Duration::from_secs(301));
    let r = c.get(&loc).send().await?;
    assert_eq!(r.status(), 403);
    Ok(())
}

#[tokio::test]
async fn processing_files_cannot_be_downloaded() -> R {
    let (sim, c, tok) = session(timeline_cfg()).await?;
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "P", 5, "cloud")).await?;
    sim.end_meeting_now(id_of(&m))?;
    sim.advance(Duration::from_secs(61));
    let url = format!("{}/meetings/{}/recordings", sim.api_url(), id_of(&m));
    let (_, rec) = get_json(&c, &url, &tok).await?;
    let dl = file(&rec, "MP4")?["download_url"].as_str().ok_or("url")?;
    let r = c.get(dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 404);
    Ok(())
}

#[tokio::test]
async fn large_file_is_streamed_not_held() -> R {
    let size: u64 = 3 * 512 * 1024 * 1024 + 12345; // 1.5 GiB and a bit
    let (sim, c, tok) = session(SimConfig {
        mp4_size: size,
        ..SimConfig::default()
    })
    .await?;
    let (_, rec) = recorded(&sim, &c, &tok).await?;
    let mp4 = file(&rec, "MP4")?;
    assert_eq!(mp4["file_size"].as_u64(), Some(size));
    let dl = mp4["download_url"].as_str().ok_or("url")?;

    let r = c.get(dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(size));
    drop(r); // never read: the body is produced lazily

    let start_at = size - 100_000;
    let fetch = |from: u64| {
        let c = c.clone();
        let tok = tok.clone();
        let dl = dl.to_string();
        async move {
            let r = c
                .get(&dl)
                .bearer_auth(&tok)
                .header("range", format!("bytes={from}-"))
                .send()
                .await?;
            assert_eq!(r.status(), 206);
            assert_eq!(
                header(&r, "content-range"),
                Some(format!("bytes {from}-{}/{size}", size - 1).as_str())
            );
            Ok::<_, Box<dyn std::error::Error>>(r.bytes().await?)
        }
    };
    let a = fetch(start_at).await?;
    let b = fetch(start_at + 777).await?;
    assert_eq!(a.len(), 100_000);
    assert_eq!(&a[777..], &b[..], "any range is the same bytes");
    Ok(())
}

// ----- faults -----------------------------------------------------------------------

#[tokio::test]
async fn status_and_rate_limit_faults() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let url = format!("{}/users/me/meetings", sim.api_url());

    sim.inject(Route::ListMeetings, Fault::Status(503), 1);
    sim.inject(Route::ListMeetings, Fault::Status(500), 1);
    sim.inject(Route::ListMeetings, Fault::Status(502), 1);
    assert_eq!(sim.pending_faults(), 3);
    for want in [503, 500, 502, 200] {
        assert_eq!(get_json(&c, &url, &tok).await?.0, want);
    }

    sim.inject(
        Route::ListMeetings,
        Fault::RateLimited(RetryAfter::Seconds(7)),
        1,
    );
    let r = c.get(&url).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), Some("7"));
    assert_eq!(header(&r, "x-ratelimit-category"), Some("Light"));
    assert_eq!(header(&r, "x-ratelimit-type"), Some("QPS"));
    assert_code(&r.json().await?, 429);

    sim.inject(
        Route::ListMeetings,
        Fault::RateLimited(RetryAfter::HttpDate(30)),
        1,
    );
    let sent = std::time::SystemTime::now();
    let r = c.get(&url).bearer_auth(&tok).send().await?;
    let answered = std::time::SystemTime::now();
    let ra = header(&r, "retry-after").ok_or("retry-after")?.to_string();
    // 30 s after the answer, in whole seconds.
    let when = httpdate::parse_http_date(&ra)? + Duration::from_secs(1);
    assert!(
        when >= sent + Duration::from_secs(30) && when <= answered + Duration::from_secs(31),
        "{ra}"
    );

    sim.inject(
        Route::ListMeetings,
        Fault::RateLimited(RetryAfter::Iso8601(30)),
        1,
    );
    let r = c.get(&url).bearer_auth(&tok).send().await?;
    let ra = header(&r, "retry-after").ok_or("retry-after")?.to_string();
    assert!(chrono::DateTime::parse_from_rfc3339(&ra).is_ok(), "{ra}");

    sim.inject(Route::ListMeetings, Fault::Status(429), 1);
    let r = c.get(&url).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_none());

    sim.inject(Route::CreateMeeting, Fault::DailyCap, 1);
    let r = post_meeting(&sim, &c, &tok, "me", &meeting_body(&sim, "x", 60, "none")).await?;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await?;
    assert!(
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("daily rate limit (100)"))
    );
    assert!(sim.meetings().is_empty());

    // Route::Any and a specific route share one queue, consumed in order.
    sim.inject(Route::Any, Fault::Status(500), 1);
    sim.inject(Route::GetMeeting, Fault::Status(502), 1);
    let gm = format!("{}/meetings/1", sim.api_url());
    assert_eq!(get_json(&c, &gm, &tok).await?.0, 500);
    assert_eq!(get_json(&c, &gm, &tok).await?.0, 502);
    assert_eq!(get_json(&c, &gm, &tok).await?.0, 404);
    assert_eq!(sim.pending_faults(), 0);
    // A fault for another route is left alone.
    sim.inject(Route::Token, Fault::Status(500), 1);
    assert_eq!(get_json(&c, &url, &tok).await?.0, 200);
    assert_eq!(sim.pending_faults(), 1);
    sim.clear_faults();
    assert_eq!(sim.pending_faults(), 0);

    let cn = sim.counters();
    assert_eq!(cn.faults_fired, 10);
    assert!(cn.responses_5xx >= 5);
    assert_eq!(
        sim.report().faults_fired[0],
        (Route::ListMeetings, "status_503".into())
    );
    Ok(())
}

#[tokio::test]
async fn connection_reset_and_lost_answers() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let url = format!("{}/users/me/meetings", sim.api_url());

    sim.inject(Route::ListMeetings, Fault::ConnectionReset, 1);
    let err = c.get(&url).bearer_auth(&tok).send().await;
    assert!(err.is_err(), "no HTTP answer: {err:?}");
    assert_eq!(get_json(&c, &url, &tok).await?.0, 200, "next one is fine");

    sim.inject(Route::Token, Fault::ConnectionReset, 1);
    let secret = &sim.config().client_secret;
    let err = token_request(&sim, &c, Some(secret), &grant(&sim)).await;
    assert!(err.is_err());

    sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    let err = c
        .post(&url)
        .bearer_auth(&tok)
        .json(&meeting_body(&sim, "Lost", 60, "none"))
        .send()
        .await;
    assert!(err.is_err(), "{err:?}");
    let ms = sim.meetings();
    assert_eq!(
        ms.len(),
        1,
        "the meeting exists although the answer was lost"
    );
    assert_eq!(ms[0].topic, "Lost");
    // And the client can find it.
    let (_, v) = get_json(&c, &format!("{url}?type=upcoming"), &tok).await?;
    assert_eq!(v["meetings"][0]["topic"], "Lost");

    let cn = sim.counters();
    assert_eq!(cn.connections_killed, 3);
    let killed: Vec<_> = sim
        .report()
        .requests
        .into_iter()
        .filter(|r| r.status == 0)
        .map(|r| r.route)
        .collect();
    assert_eq!(
        killed,
        vec![Route::ListMeetings, Route::Token, Route::CreateMeeting]
    );
    Ok(())
}

#[tokio::test]
async fn token_expired_fault() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let url = format!("{}/users/me/meetings", sim.api_url());
    sim.inject(Route::Any, Fault::TokenExpired, 1);
    let (s, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 401);
    assert_code(&v, 124);
    assert_eq!(
        get_json(&c, &url, &tok).await?.0,
        401,
        "the old token stays dead"
    );
    let fresh = oauth_token(&sim, &c).await?;
    assert_eq!(get_json(&c, &url, &fresh).await?.0, 200);

    // A JWT cannot be re-issued by Zoom: a revoked one fails once.
    let cfg = sim.config().clone();
    let j = jwt(
        Algorithm::HS256,
        &cfg.api_secret,
        &json!({"iss": cfg.api_key, "exp": Utc::now().timestamp() + 60}),
    )?;
    assert_eq!(get_json(&c, &url, &j).await?.0, 200);
    sim.revoke_tokens();
    assert_eq!(get_json(&c, &url, &j).await?.0, 401);
    assert_eq!(get_json(&c, &url, &j).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn download_body_faults() -> R {
    let (sim, c, tok) = session(SimConfig {
        stall_for: Duration::from_secs(5),
        ..SimConfig::default()
    })
    .await?;
    let (_, rec) = recorded(&sim, &c, &tok).await?;
    let dl = file(&rec, "MP4")?["download_url"]
        .as_str()
        .ok_or("url")?
        .to_string();

    // Truncated: the header promises 64 KiB, fewer arrive, then the socket closes.
    sim.inject(Route::Download, Fault::TruncatedBody, 1);
    let r = c.get(&dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(64 * 1024));
    assert!(r.bytes().await.is_err(), "short body is an error");

    // Stalled: part of the body, then nothing until the client gives up.
    sim.inject(Route::Download, Fault::StalledBody, 1);
    let r = c
        .get(&dl)
        .bearer_auth(&tok)
        .timeout(Duration::from_millis(400))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    // The client's timeout ended it: the stall (5 s) had not, or the body would just be
    // cut short.
    let err = r.bytes().await.expect_err("a stalled body never completes");
    assert!(err.is_timeout(), "{err:?}");

    // An HTML page instead of the file.
    sim.inject(Route::Download, Fault::HtmlPage, 1);
    let r = c.get(&dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").is_some_and(|t| t.starts_with("text/html")));
    assert!(r.text().await?.contains("<html>"));

    // HTML where JSON is expected.
    sim.inject(Route::GetRecordings, Fault::HtmlPage, 1);
    let url = format!("{}/meetings/{}/recordings", sim.api_url(), rec["id"]);
    let (s, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 200);
    assert!(v.as_str().is_some_and(|t| t.contains("<html>")));

    sim.inject(Route::Download, Fault::DownloadUrlExpired, 1);
    let r = c.get(&dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 404);

    sim.inject(Route::Download, Fault::ConnectionReset, 1);
    assert!(c.get(&dl).bearer_auth(&tok).send().await.is_err());
    sim.inject(Route::SignedDownload, Fault::ConnectionReset, 1);
    assert!(c.get(&dl).bearer_auth(&tok).send().await.is_err());
    sim.inject(Route::SignedDownload, Fault::Status(503), 1);
    assert_eq!(c.get(&dl).bearer_auth(&tok).send().await?.status(), 503);

    sim.inject(Route::Download, Fault::Delay(Duration::from_millis(200)), 1);
    let r = c.get(&dl).bearer_auth(&tok).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await?.len(), 64 * 1024);
    // The delay was applied to this request, which then went through whole.
    assert_eq!(
        sim.report().faults_fired.last(),
        Some(&(Route::Download, "delay_200ms".to_string()))
    );

    // After all that, a clean download still matches.
    let body = c.get(&dl).bearer_auth(&tok).send().await?.bytes().await?;
    let fid = file(&rec, "MP4")?["id"].as_str().ok_or("id")?;
    assert_eq!(
        Some(sha_hex(&body)),
        sim.file_sha256(rec["uuid"].as_str().ok_or("uuid")?, fid)
    );
    assert!(sim.report().download_auth_headers.is_empty());
    assert_eq!(sim.pending_faults(), 0);
    Ok(())
}

#[tokio::test]
async fn chaos_mode_is_seeded() -> R {
    let run = |seed| async move {
        let sim = spawn_sim(SimConfig::default()).await;
        let c = client();
        let tok = sim.issue_token();
        sim.set_chaos(Some(Chaos {
            probability: 0.5,
            seed,
            faults: vec![Fault::Status(500), Fault::Status(503)],
        }));
        let url = format!("{}/users/me/meetings", sim.api_url());
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(get_json(&c, &url, &tok).await?.0.as_u16());
        }
        sim.set_chaos(None);
        assert_eq!(get_json(&c, &url, &tok).await?.0, 200);
        Ok::<_, Box<dyn std::error::Error>>(statuses)
    };
    let a = run(7).await?;
    let b = run(7).await?;
    assert_eq!(a, b, "same seed, same faults");
    assert!(a.contains(&200) && a.iter().any(|s| *s >= 500), "{a:?}");

    // The default mix, at certainty, never lets a request through untouched.
    let sim = spawn_sim(SimConfig::default()).await;
    sim.set_chaos(Some(Chaos::new(1.0, 1)));
    let c = client();
    let tok = sim.issue_token();
    for _ in 0..10 {
        let r = c
            .get(format!("{}/users/me/meetings", sim.api_url()))
            .bearer_auth(&tok)
            .send()
            .await;
        if let Ok(r) = r {
            let html = header(&r, "content-type").is_some_and(|t| t.starts_with("text/html"));
            assert!(r.status() != 200 || html, "{}", r.status());
        }
    }
    assert_eq!(sim.counters().faults_fired, 10);
    Ok(())
}

#[tokio::test]
async fn counters_and_shutdown() -> R {
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "C", 1, "cloud")).await?;
    let id = id_of(&m);
    sim.force_recording(id)?;
    let api = sim.api_url();
    get_json(&c, &format!("{api}/meetings/{id}"), &tok).await?;
    get_json(&c, &format!("{api}/meetings/{id}/recordings"), &tok).await?;
    get_json(&c, &format!("{api}/past_meetings/{id}/instances"), &tok).await?;
    get_json(&c, &format!("{api}/past_meetings/{id}"), &tok).await?;
    get_json(&c, &format!("{api}/users/me/meetings"), &tok).await?;
    get_json(&c, &format!("{api}/nowhere"), &tok).await?;
    let cn = sim.counters();
    for (route, n) in [
        (Route::Token, 1),
        (Route::CreateMeeting, 1),
        (Route::GetMeeting, 1),
        (Route::GetRecordings, 1),
        (Route::PastInstances, 1),
        (Route::PastMeeting, 1),
        (Route::ListMeetings, 1),
        (Route::Other, 1),
    ] {
        assert_eq!(cn.get(route), n, "{route:?}");
    }
    assert_eq!(cn.statuses.get(&200), Some(&6));
    assert_eq!(cn.statuses.get(&201), Some(&1));
    assert_eq!(cn.statuses.get(&404), Some(&1));
    assert_eq!(sim.report().requests.len(), 8);

    let api_addr = sim.api_addr();
    sim.shutdown();
    // The listeners stop on their own tasks; once they have, nothing answers (a fresh
    // client each time: no pooled connection).
    let closed = eventually(Duration::from_secs(60), || async {
        client()
            .get(format!("http://{api_addr}/v2/users/me/meetings"))
            .send()
            .await
            .is_err()
    })
    .await;
    assert!(closed, "hung: something still listens after shutdown");
    Ok(())
}

#[tokio::test]
async fn add_instance_on_demand() -> R {
    let sim = spawn_sim(SimConfig::default()).await;
    let c = client();
    let tok = sim.issue_token();
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "Again", 5, "cloud")).await?;
    let id = id_of(&m);
    let extra = sim.add_instance(id)?;
    assert!(extra.starts_with('/'));
    assert!(sim.add_instance(1).is_err());
    sim.force_recording(id)?;
    let url = format!("{}/past_meetings/{id}/instances", sim.api_url());
    let (_, v) = get_json(&c, &url, &tok).await?;
    assert_eq!(v["meetings"][1]["uuid"], extra.as_str());
    let meeting = sim.meeting(id).ok_or("meeting")?;
    assert_eq!(
        meeting.instances,
        vec![m["uuid"].as_str().unwrap_or("").to_string(), extra]
    );
    Ok(())
}

// ----- ad-hoc recordings and users --------------------------------------------------

/// The default config on a manual clock at 10:00 UTC of a fixed day (dates never depend
/// on when the test runs), with a deactivated third user; and that instant.
fn history_cfg() -> (SimConfig, DateTime<Utc>) {
    let now: DateTime<Utc> = "2026-03-10T10:00:00Z".parse().expect("fixed instant");
    let mut users = SimConfig::default().users;
    users.push(SimUser {
        id: "goneUser1QgePTO8WbOqwI".into(),
        email: "gone@example.org".into(),
        timezone: "Europe/Berlin".into(),
        status: "inactive",
    });
    let cfg = SimConfig {
        users,
        clock: ManualClock::new(now).shared(),
        ..SimConfig::default()
    };
    (cfg, now)
}

fn uuids(list: &[AdHoc]) -> HashSet<String> {
    list.iter().map(|a| a.uuid.clone()).collect()
}

/// Every recording of `user` over the month windows of `from..=to`, raw: the sum of
/// each window's `total_records`, and every uuid listed (pages of 5).
async fn listed_by_window(
    sim: &Sim,
    user: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> R<(u64, Vec<String>)> {
    let c = client();
    let tok = sim.issue_token();
    let windows = month_windows(from.date_naive(), to.date_naive());
    assert!(windows.len() >= 3, "spans several windows: {windows:?}");
    let (mut total, mut listed) = (0, Vec::new());
    for (a, b) in windows {
        let path = format!("/users/{user}/recordings?from={a}&to={b}&page_size=5");
        let pages = all_pages(sim, &c, &tok, &path).await?;
        total += pages[0]["total_records"].as_u64().ok_or("total_records")?;
        for p in &pages {
            for m in p["meetings"].as_array().ok_or("meetings")? {
                // Held long ago: every file is there and completed.
                assert_eq!(file_types(m), ["MP4", "M4A", "CHAT", "TRANSCRIPT", "CC"]);
                for f in files_of(m) {
                    assert!(f.get("status").is_none_or(|s| s == "completed"), "{f}");
                }
                listed.push(m["uuid"].as_str().ok_or("uuid")?.to_string());
            }
        }
    }
    Ok((total, listed))
}

#[tokio::test]
async fn recording_history_is_listed_in_month_windows() -> R {
    const N: usize = 28;
    let (cfg, now) = history_cfg();
    let sim = spawn_sim(cfg.clone()).await;
    let (host, gone) = (&cfg.users[0], &cfg.users[2]);
    let from = now - TimeDelta::days(71);
    let to = from + TimeDelta::days(70);
    let hist = sim.add_recording_history(&host.email, from, to, N)?;
    assert_eq!(hist.len(), N);
    assert_eq!(uuids(&hist).len(), N);
    // Evenly spread from `from`: 70 days / 28 = 60 hours apart.
    for (i, a) in hist.iter().enumerate() {
        let m = sim.meeting(a.meeting_id).ok_or("meeting")?;
        assert_eq!(m.start_time, from + TimeDelta::hours(60 * i as i64));
        assert_eq!(m.instances, std::slice::from_ref(&a.uuid));
        assert_eq!(m.host_id, host.id);
        assert_eq!(
            m.topic,
            format!("Ad-hoc meeting {} of {}", i + 1, host.email)
        );
        assert!(m.adhoc);
    }
    // The same seed and calls give the same history.
    let twin = spawn_sim(cfg.clone()).await;
    assert_eq!(twin.add_recording_history(&host.email, from, to, N)?, hist);

    let (total, listed) = listed_by_window(&sim, &host.id, from, to).await?;
    assert_eq!(total, N as u64);
    assert_eq!(listed.len(), N, "each uuid once");
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), uuids(&hist));

    // A deactivated user's history is listed too, and apart from the host's.
    let theirs = sim.add_recording_history(&gone.id, from, to, 5)?;
    let (total, listed) = listed_by_window(&sim, &gone.email, from, to).await?;
    assert_eq!(total, 5);
    assert_eq!(listed.into_iter().collect::<HashSet<_>>(), uuids(&theirs));

    // zoomd's client reads the same over its own windows.
    let zc = oauth_client(&sim);
    let (a, b) = (from.date_naive(), to.date_naive());
    let recs = zc.list_user_recordings(&host.id, a, b).await?;
    assert_eq!(recs.len(), N);
    let got: HashSet<String> = recs.iter().map(|r| r.uuid.clone()).collect();
    assert_eq!(got, uuids(&hist));
    let recs = zc.list_user_recordings(&gone.id, a, b).await?;
    let got: HashSet<String> = recs.iter().map(|r| r.uuid.clone()).collect();
    assert_eq!(got, uuids(&theirs));
    assert!(sim.report().meetings_created.is_empty());
    Ok(())
}

#[tokio::test]
async fn adhoc_recording_skips_the_daily_cap_and_is_archivable() -> R {
    let (cfg, now) = history_cfg();
    let cfg = SimConfig {
        daily_cap: 1,
        ..cfg
    };
    let (sim, c, tok) = session(cfg.clone()).await?;
    let chair = &cfg.users[1];
    // Were any of these charged, the cap of 1 would refuse the create below.
    let mut made = Vec::new();
    for i in 0..3 {
        let start = now - TimeDelta::hours(5 - i);
        made.push(sim.add_adhoc_recording(&chair.email, &format!("Instant {i}"), start, 45)?);
    }
    let r = post_meeting(
        &sim,
        &c,
        &tok,
        &chair.id,
        &meeting_body(&sim, "s", 60, "cloud"),
    )
    .await?;
    assert_eq!(r.status(), 201);
    let r = post_meeting(
        &sim,
        &c,
        &tok,
        &chair.id,
        &meeting_body(&sim, "t", 60, "cloud"),
    )
    .await?;
    assert_eq!(r.status(), 429, "the cap still counts API creates");
    let created = sim.report().meetings_created;
    assert_eq!(created.len(), 1);
    assert!(made.iter().all(|a| created[0].id != a.meeting_id));

    let ad = &made[0];
    let m = sim.meeting(ad.meeting_id).ok_or("meeting")?;
    assert_eq!(
        (m.host_id.as_str(), m.host_email.as_str()),
        (chair.id.as_str(), chair.email.as_str())
    );
    assert_eq!(m.timezone, "America/New_York", "the user's zone");
    assert_eq!(m.settings["auto_recording"], "cloud");
    assert!(m.adhoc && m.created_at <= m.start_time);
    let (s, v) = api_get(&sim, &c, &tok, &format!("/meetings/{}", ad.meeting_id)).await?;
    assert_eq!(s, 200);
    assert_eq!(v["creation_source"], "web_portal");

    // Their files are what a correct archive holds (the scheduled one has not happened).
    let expected = sim.expected_files();
    assert_eq!(expected.len(), 3 * 5);
    let mine: Vec<_> = expected.iter().filter(|e| e.uuid == ad.uuid).collect();
    assert!(mine.iter().all(|e| e.meeting_id == ad.meeting_id));
    let mut types: Vec<&str> = mine.iter().map(|e| e.file_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["CC", "CHAT", "M4A", "MP4", "TRANSCRIPT"]);

    // Each downloads with its digest.
    let recs = format!(
        "{}/meetings/{}/recordings",
        sim.api_url(),
        enc(&enc(&ad.uuid))
    );
    let (s, rec) = get_json(&c, &recs, &tok).await?;
    assert_eq!(s, 200, "{rec}");
    assert_eq!(rec["uuid"], ad.uuid.as_str());
    for f in files_of(&rec) {
        let key = f["id"].as_str().unwrap_or("CC");
        let e = mine.iter().find(|e| e.key == key).ok_or("expected file")?;
        let url = f["download_url"].as_str().ok_or("download_url")?;
        let r = c.get(url).bearer_auth(&tok).send().await?;
        assert_eq!(r.status(), 200, "{f}");
        let body = r.bytes().await?;
        assert_eq!(body.len() as u64, e.size, "{f}");
        assert_eq!(sha_hex(&body), e.sha256, "{f}");
        assert_eq!(sim.file_sha256(&ad.uuid, key), Some(e.sha256.clone()));
    }

    // Trashed like any other: gone from the listing and from what the archive must hold.
    assert_eq!(
        delete(&c, &format!("{recs}?action=trash"), &tok).await?,
        204
    );
    let (s, v) = get_json(&c, &recs, &tok).await?;
    assert_eq!(s, 404);
    assert_code(&v, 3301);
    assert!(sim.expected_files().iter().all(|e| e.uuid != ad.uuid));
    assert_eq!(sim.report().recordings_removed[0].uuid, ad.uuid);

    // One held just now follows the timeline from its start.
    let fresh = sim.add_adhoc_recording("me", "Just now", sim.now(), 10)?;
    let url = format!("{}/meetings/{}/recordings", sim.api_url(), fresh.meeting_id);
    let (s, _) = get_json(&c, &url, &tok).await?;
    assert_eq!(s, 404, "recording_after has not passed");
    sim.advance(cfg.recording_after);
    let (_, rec) = get_json(&c, &url, &tok).await?;
    assert_eq!(file_types(&rec), ["MP4", "M4A", "CHAT"]);
    assert!(files_of(&rec).iter().all(|f| f["status"] == "processing"));
    sim.advance(cfg.processing_for);
    let (_, rec) = get_json(&c, &url, &tok).await?;
    assert_eq!(file_types(&rec), ["MP4", "M4A", "CHAT", "CC"]);
    sim.advance(cfg.transcript_after + cfg.processing_for);
    let done = sim.expected_files();
    assert_eq!(done.iter().filter(|e| e.uuid == fresh.uuid).count(), 5);
    assert_eq!(sim.report().meetings_created.len(), 1);
    Ok(())
}

#[tokio::test]
async fn adhoc_refuses_unknown_users_and_impossible_times() -> R {
    let (cfg, now) = history_cfg();
    let sim = spawn_sim(cfg).await;
    let r = sim.add_adhoc_recording("nobody@example.org", "x", now, 5);
    assert!(
        matches!(&r, Err(SimError::NoSuchUser(u)) if u == "nobody@example.org"),
        "{r:?}"
    );
    let r = sim.add_recording_history("nobody", now - TimeDelta::days(1), now, 0);
    assert!(matches!(r, Err(SimError::NoSuchUser(_))), "{r:?}");
    let r = sim.add_recording_history("me", now, now - TimeDelta::days(1), 3);
    assert!(matches!(r, Err(SimError::InvalidInput(_))), "{r:?}");
    let r = sim.add_recording_history("me", now, now, 1);
    assert!(
        matches!(r, Err(SimError::InvalidInput(_))),
        "empty range: {r:?}"
    );
    let r = sim.add_adhoc_recording("me", "x", DateTime::<Utc>::MAX_UTC, 5);
    assert!(matches!(r, Err(SimError::InvalidInput(_))), "{r:?}");
    assert!(sim.meetings().is_empty(), "nothing half-made");
    assert!(sim.add_recording_history("me", now, now, 0)?.is_empty());
    Ok(())
}

#[tokio::test]
async fn user_added_later_is_listed_and_hosts_recordings() -> R {
    let (cfg, now) = history_cfg();
    let sim = spawn_sim(cfg).await;
    let zc = oauth_client(&sim);
    let newbie = SimUser {
        id: "newUserAQgePTO8WbOqwIQ".into(),
        email: "new@example.org".into(),
        timezone: "Asia/Tokyo".into(),
        status: "active",
    };
    let (from, to) = (now - TimeDelta::days(10), now - TimeDelta::days(1));
    let before = zc.list_users(&["active"]).await?;
    assert!(before.iter().all(|u| u.id != newbie.id));
    let e = zc
        .list_user_recordings(&newbie.id, from.date_naive(), now.date_naive())
        .await
        .expect_err("not in the account yet");
    assert_eq!(e.zoom_code(), Some(1001), "{e}");
    assert!(matches!(
        sim.add_recording_history(&newbie.id, from, to, 4),
        Err(SimError::NoSuchUser(_))
    ));

    sim.add_user(newbie.clone());
    let after = zc.list_users(&["active"]).await?;
    assert_eq!(after.len(), before.len() + 1);
    assert!(
        after
            .iter()
            .any(|u| u.id == newbie.id && u.email.as_deref() == Some("new@example.org"))
    );
    let hist = sim.add_recording_history(&newbie.email, from, to, 4)?;
    let recs = zc
        .list_user_recordings(&newbie.id, from.date_naive(), now.date_naive())
        .await?;
    let got: HashSet<String> = recs.iter().map(|r| r.uuid.clone()).collect();
    assert_eq!(got, uuids(&hist));
    assert!(
        recs.iter()
            .all(|r| r.host_id.as_deref() == Some(newbie.id.as_str()))
    );
    let m = sim.meeting(hist[0].meeting_id).ok_or("meeting")?;
    assert_eq!(m.timezone, "Asia/Tokyo");

    // Added again with another status: the same user, changed, not a second one.
    sim.add_user(SimUser {
        status: "inactive",
        ..newbie.clone()
    });
    assert_eq!(zc.list_users(&["active"]).await?.len(), before.len());
    let inactive = zc.list_users(&["inactive"]).await?;
    assert_eq!(
        inactive.iter().filter(|u| u.id == newbie.id).count(),
        1,
        "{inactive:?}"
    );
    let recs = zc
        .list_user_recordings(&newbie.id, from.date_naive(), now.date_naive())
        .await?;
    assert_eq!(recs.len(), 4);
    Ok(())
}

// ----- webhooks ---------------------------------------------------------------------

/// The recording JSON of a webhook body.
fn hook_object(ev: &Value) -> &Value {
    &ev["payload"]["object"]
}

#[tokio::test]
async fn webhook_event_lists_the_recording_and_its_token_downloads_for_24h() -> R {
    let start = Utc
        .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .ok_or("start")?;
    let manual = ManualClock::new(start);
    let cfg = SimConfig {
        clock: manual.shared(),
        ..SimConfig::default()
    };
    let (sim, c, tok) = session(cfg.clone()).await?;
    let (m, rec) = recorded(&sim, &c, &tok).await?;
    let id = id_of(&m);
    let uuid = rec["uuid"].as_str().ok_or("uuid")?.to_string();

    let (ev, token) = sim.webhook_event("recording.completed", id)?;
    let token = token.ok_or("no download_token")?;
    assert_eq!(ev["event"], "recording.completed");
    assert_eq!(ev["event_ts"], sim.now().timestamp_millis());
    assert_eq!(ev["download_token"], token.as_str());
    assert_eq!(ev["payload"]["account_id"], cfg.account_id.as_str());
    let obj = hook_object(&ev);
    let held = sim.meeting(id).ok_or("meeting")?;
    assert_eq!(obj["host_email"], held.host_email.as_str());
    assert_eq!(obj["timezone"], "Europe/Berlin");
    for k in [
        "id",
        "uuid",
        "host_id",
        "host_email",
        "topic",
        "start_time",
        "timezone",
        "duration",
        "total_size",
        "recording_count",
        "recording_files",
    ] {
        assert!(!obj[k].is_null(), "{k}: {obj}");
    }
    assert_eq!(obj["uuid"], uuid.as_str());
    assert_eq!(obj["id"], id);
    assert_eq!(file_types(obj), file_types(&rec));
    for f in files_of(obj).iter().filter(|f| f["file_type"] != "CC") {
        for k in [
            "id",
            "meeting_id",
            "recording_start",
            "recording_end",
            "file_type",
            "file_extension",
            "file_size",
            "download_url",
            "status",
            "recording_type",
        ] {
            assert!(!f[k].is_null(), "{k}: {f}");
        }
        assert_eq!(f["status"], "completed");
    }

    // zoomd reads it as the recording the API lists.
    let body = serde_json::to_vec(&ev)?;
    let Event::Recording(parsed) = webhook::parse(&body)? else {
        return Err(format!("not a recording event: {ev}").into());
    };
    let listed = oauth_client(&sim)
        .get_recordings(&MeetingRef::Uuid(uuid.clone()))
        .await?
        .ok_or("not listed")?;
    assert_eq!(parsed.recording, listed);
    assert_eq!(parsed.host_email.as_deref(), Some(held.host_email.as_str()));
    assert_eq!(
        parsed.download_token.as_ref().map(|t| t.expose()),
        Some(token.as_str())
    );
    assert!(!format!("{parsed:?}").contains(&token), "token in Debug");

    // The token opens every file of this recording, with the right bytes.
    let files = files_of(obj);
    let get = |url: String, bearer: String| {
        let c = c.clone();
        async move { c.get(url).bearer_auth(bearer).send().await }
    };
    for f in &files {
        let url = f["download_url"].as_str().ok_or("download_url")?;
        let r = get(url.to_string(), token.clone()).await?;
        assert_eq!(r.status(), 200, "{f}");
        let bytes = r.bytes().await?;
        let key = f["id"].as_str().unwrap_or("CC");
        assert_eq!(Some(sha_hex(&bytes)), sim.file_sha256(&uuid, key), "{f}");
    }
    assert_eq!(
        sim.counters().downloads_with_download_token,
        files.len() as u64
    );

    // ... and nothing else: not the API, not another recording's files, not in a URL.
    let (s, v) = api_get(&sim, &c, &token, &format!("/meetings/{id}/recordings")).await?;
    assert_eq!(s, 401);
    assert_code(&v, 124);
    let (_, other) = recorded(&sim, &c, &tok).await?;
    let other_mp4 = file(&other, "MP4")?["download_url"]
        .as_str()
        .ok_or("url")?
        .to_string();
    let r = get(other_mp4.clone(), token.clone()).await?;
    assert_eq!(r.status(), 401);
    assert_code(&r.json().await?, 124);
    let mp4 = file(obj, "MP4")?["download_url"]
        .as_str()
        .ok_or("url")?
        .to_string();
    let r = c
        .get(format!("{mp4}?dl={token}"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert_eq!(sim.report().tokens_in_urls.len(), 1);
    assert!(sim.report().download_auth_headers.is_empty());

    // Valid for 24 hours of the sim's clock, then refused as an expired OAuth token is.
    manual.advance(Duration::from_secs(24 * 3600 - 1));
    let r = get(mp4.clone(), token.clone()).await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await?.len(), 64 * 1024);
    manual.advance(Duration::from_secs(2));
    let r = get(mp4.clone(), token.clone()).await?;
    assert_eq!(r.status(), 401);
    assert_code(&r.json().await?, 124);
    let expired_oauth = get(mp4.clone(), tok.clone()).await?;
    assert_eq!(expired_oauth.status(), 401, "the OAuth token expired too");
    assert_code(&expired_oauth.json().await?, 124);
    // A fresh event brings a fresh token.
    let (_, fresh) = sim.webhook_event("recording.completed", id)?;
    let fresh = fresh.ok_or("token")?;
    assert_ne!(fresh, token);
    assert_eq!(get(mp4, fresh).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn webhook_events_follow_the_timeline_and_name_their_meeting() -> R {
    let (sim, c, tok) = session(timeline_cfg()).await?;
    let m = create(&sim, &c, &tok, &meeting_body(&sim, "Hook", 5, "cloud")).await?;
    let id = id_of(&m);
    assert!(matches!(
        sim.webhook_event("recording.completed", id),
        Err(SimError::NoRecording(_))
    ));
    assert!(matches!(
        sim.webhook_event("recording.completed", 424242),
        Err(SimError::NoSuchMeeting(424242))
    ));
    assert!(matches!(
        sim.webhook_event("meeting.started", id),
        Err(SimError::InvalidInput(_))
    ));

    // Files still processing are not in the event; the transcript has its own.
    sim.end_meeting_now(id)?;
    sim.advance(Duration::from_secs(61));
    assert!(matches!(
        sim.webhook_event("recording.completed", id),
        Err(SimError::NoRecording(_))
    ));
    sim.advance(Duration::from_secs(61));
    let (ev, _) = sim.webhook_event("recording.completed", id)?;
    assert_eq!(file_types(hook_object(&ev)), ["MP4", "M4A", "CHAT", "CC"]);
    assert_eq!(hook_object(&ev)["recording_count"], 4);
    assert!(matches!(
        sim.webhook_event("recording.transcript_completed", id),
        Err(SimError::NoRecording(_))
    ));
    sim.advance(Duration::from_secs(301));
    let (ev, token) = sim.webhook_event("recording.transcript_completed", id)?;
    let obj = hook_object(&ev);
    assert_eq!(file_types(obj), ["TRANSCRIPT"]);
    let tr = file(obj, "TRANSCRIPT")?;
    assert_eq!(obj["total_size"], tr["file_size"]);
    assert_eq!(obj["recording_count"], 1);
    let uuid = obj["uuid"].as_str().ok_or("uuid")?;
    let r = c
        .get(tr["download_url"].as_str().ok_or("url")?)
        .bearer_auth(token.ok_or("token")?)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let key = tr["id"].as_str().ok_or("id")?;
    assert_eq!(Some(sha_hex(&r.bytes().await?)), sim.file_sha256(uuid, key));
    let body = serde_json::to_vec(&ev)?;
    let Event::Recording(parsed) = webhook::parse(&body)? else {
        return Err("not a recording event".into());
    };
    assert!(parsed.is_transcript());

    // Events without files carry no token and name the meeting.
    for name in ["recording.trashed", "meeting.deleted"] {
        let (ev, token) = sim.webhook_event(name, id)?;
        assert!(
            token.is_none() && ev.get("download_token").is_none(),
            "{ev}"
        );
        let body = serde_json::to_vec(&ev)?;
        match webhook::parse(&body)? {
            Event::Meeting {
                event,
                meeting_id,
                uuid: Some(u),
                ..
            } => {
                assert_eq!((event.as_str(), meeting_id), (name, Some(id)));
                assert_eq!(u, m["uuid"].as_str().ok_or("uuid")?);
            }
            other => return Err(format!("{name}: {other:?}").into()),
        }
    }
    Ok(())
}

/// What the test receiver saw: each body and the verdict of `webhook::verify` on it.
type Seen = Arc<Mutex<Vec<(Vec<u8>, Result<(), WebhookError>)>>>;

#[derive(Clone)]
struct Receiver {
    secret: &'static str,
    seen: Seen,
}

/// A receiver as zoomd's will be: verify against the raw bytes, answer URL validation,
/// 200 for everything else; `/slow` waits 200 ms first.
async fn receive(
    State(rx): State<Receiver>,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path() == "/slow" {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let verdict = webhook::verify(
        rx.secret.as_bytes(),
        h(webhook::TIMESTAMP_HEADER),
        h(webhook::SIGNATURE_HEADER),
        &body,
        Utc::now(),
    );
    rx.seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((body.to_vec(), verdict.clone()));
    if let Err(e) = verdict {
        let status = axum::http::StatusCode::from_u16(e.http_status())
            .unwrap_or(axum::http::StatusCode::UNAUTHORIZED);
        return (status, e.to_string()).into_response();
    }
    match webhook::parse(&body) {
        Ok(Event::UrlValidation { plain_token }) => {
            axum::Json(webhook::url_validation(rx.secret.as_bytes(), &plain_token)).into_response()
        }
        Ok(_) => axum::http::StatusCode::OK.into_response(),
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// Serves [`receive`] on 127.0.0.1; returns its base URL.
async fn start_receiver(secret: &'static str) -> R<(String, Seen)> {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(Receiver {
            secret,
            seen: seen.clone(),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), seen))
}

/// The last verdict the receiver reached.
fn last_verdict(seen: &Seen) -> Option<Result<(), WebhookError>> {
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    seen.last().map(|(_, v)| v.clone())
}

#[tokio::test]
async fn send_webhook_signs_the_raw_body_verifiably() -> R {
    const SECRET: &str = "hook-secret-0123456789";
    let (sim, c, tok) = session(SimConfig::default()).await?;
    let (base, seen) = start_receiver(SECRET).await?;
    let url = format!("{base}/zoom/webhook");
    let (m, _) = recorded(&sim, &c, &tok).await?;
    let (ev, token) = sim.webhook_event("recording.completed", id_of(&m))?;
    let token = token.ok_or("token")?;

    let d = sim.send_webhook(&url, SECRET, &ev).await?;
    assert_eq!(d.status, 200, "{}", d.body);
    eprintln!("webhook answered in {:?}", d.elapsed);
    {
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(seen.len(), 1);
        let (got, verdict) = &seen[0];
        assert_eq!(verdict, &Ok(()));
        assert_eq!(got, &serde_json::to_vec(&ev)?, "the body as signed");
        let Event::Recording(r) = webhook::parse(got)? else {
            return Err("not a recording event".into());
        };
        assert_eq!(
            r.download_token.as_ref().map(|t| t.expose()),
            Some(token.as_str())
        );
    }

    // URL validation gets the HMAC of its plain token.
    let validation = json!({
        "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
        "event_ts": sim.now().timestamp_millis(),
        "event": "endpoint.url_validation",
    });
    let d = sim.send_webhook(&url, SECRET, &validation).await?;
    assert_eq!(d.status, 200);
    let answer: Value = serde_json::from_str(&d.body)?;
    assert_eq!(
        answer,
        webhook::url_validation(SECRET.as_bytes(), "qgg8vlvZRS6UYooatFL8Aw")
    );

    // Signed with another secret: refused.
    let d = sim.send_webhook(&url, "not-the-secret", &ev).await?;
    assert_eq!(d.status, 401);
    assert!(!d.delivered());
    assert_eq!(last_verdict(&seen), Some(Err(WebhookError::BadSignature)));

    // Raw deliveries: a stale timestamp, a changed body, no signature, too large.
    let body = serde_json::to_vec(&ev)?;
    let old = sim.now().timestamp() - 400;
    let (old_ts, old_sig) = (
        old.to_string(),
        webhook::sign(SECRET.as_bytes(), old, &body),
    );
    let d = sim
        .send_webhook_raw(
            &url,
            &[
                ("content-type", "application/json"),
                (webhook::TIMESTAMP_HEADER, &old_ts),
                (webhook::SIGNATURE_HEADER, &old_sig),
            ],
            &body,
        )
        .await?;
    assert_eq!(d.status, 401);
    assert!(matches!(
        last_verdict(&seen),
        Some(Err(WebhookError::Stale { skew_secs })) if skew_secs >= 400
    ));
    let now = sim.now().timestamp();
    let (ts, sig) = (
        now.to_string(),
        webhook::sign(SECRET.as_bytes(), now, &body),
    );
    let mut changed = body.clone();
    let i = changed.len() - 3;
    changed[i] ^= 0x20;
    let signed = [
        ("content-type", "application/json"),
        (webhook::TIMESTAMP_HEADER, ts.as_str()),
        (webhook::SIGNATURE_HEADER, sig.as_str()),
    ];
    let d = sim.send_webhook_raw(&url, &signed, &changed).await?;
    assert_eq!(d.status, 401);
    assert_eq!(last_verdict(&seen), Some(Err(WebhookError::BadSignature)));
    let d = sim.send_webhook_raw(&url, &signed[..2], &body).await?;
    assert_eq!(d.status, 401);
    assert_eq!(
        last_verdict(&seen),
        Some(Err(WebhookError::MissingSignature))
    );
    let big = vec![b' '; webhook::MAX_BODY + 1];
    let big_sig = webhook::sign(SECRET.as_bytes(), now, &big);
    let d = sim
        .send_webhook_raw(
            &url,
            &[
                (webhook::TIMESTAMP_HEADER, ts.as_str()),
                (webhook::SIGNATURE_HEADER, big_sig.as_str()),
            ],
            &big,
        )
        .await?;
    assert_eq!(d.status, 413);
    // The raw path sends exactly what it was given: the same signed body passes.
    let d = sim.send_webhook_raw(&url, &signed, &body).await?;
    assert_eq!(d.status, 200);

    // A receiver that takes its time (200 ms) is waited for: its answer is the one reported.
    let d = sim
        .send_webhook(&format!("{base}/slow"), SECRET, &ev)
        .await?;
    assert_eq!(d.status, 200);
    eprintln!("slow webhook answered in {:?}", d.elapsed);

    assert_eq!(sim.counters().webhooks_sent, 9);
    // Never off loopback.
    assert!(matches!(
        sim.send_webhook("http://example.org/zoom/webhook", SECRET, &ev)
            .await,
        Err(SimError::InvalidInput(_))
    ));
    Ok(())
}
