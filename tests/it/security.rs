//! Security, end to end: secrets and bearer tokens stay where they belong.
//!
//! - `zoomd check` warns about a secret file that group or others can read.
//! - Tokens travel only in `Authorization` headers and only to the configured Zoom hosts.
//! - No secret and no token ever reaches a log line (even at `ZOOMD_LOG=trace`), the
//!   database file (read raw, WAL included), a command's output or an error message. The
//!   OAuth tokens the sim issues are captured by a small proxy in front of its token
//!   endpoint, so the test knows every token zoomd held.
//! - zoomd's JWTs are HS256 with `exp` in seconds and `exp - iat` = the configured TTL; the
//!   sim refuses `alg: none`, HS384 and expired tokens.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use zoomd::sim::{Fault, Route, Sim, SimConfig};

use crate::helpers::{
    Daemon, DaemonToml, Entry, Login, assert_no_leaks, chmod, cron_at, event_kinds, in_secs,
    output_ok, spawn_daemon, spawn_sim, text, zoomd,
};

// ---------------------------------------------------------------------------------------
// Secret file permissions

#[test]
fn check_warns_about_a_secret_file_others_can_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("client_secret");
    let value = "s3cr3t-never-printed-7f1c";
    std::fs::write(&secret, value).expect("secret");
    let config = dir.path().join("daemon.toml");
    std::fs::write(
        &config,
        "[zoom]\naccount_id = \"acct\"\nclient_id = \"cid\"\nclient_secret_file = \"client_secret\"\n",
    )
    .expect("config");
    let check = || {
        zoomd()
            .arg("check")
            .arg("--config")
            .arg(&config)
            .output()
            .expect("zoomd check")
    };
    for mode in [0o644, 0o640, 0o604] {
        chmod(&secret, mode);
        let out = check();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A warning, not an error: the exit code stays 0.
        assert_eq!(out.status.code(), Some(0), "{mode:o}: {}", text(&out));
        assert!(
            stderr.contains("readable by group or others") && stderr.contains("chmod 600"),
            "{mode:o}: {stderr}"
        );
        assert!(stderr.contains("client_secret"), "names the file: {stderr}");
        assert!(
            !text(&out).contains(value),
            "the secret itself is never shown"
        );
    }
    chmod(&secret, 0o600);
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("readable by"),
        "{}",
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------
// A token endpoint proxy that remembers every access token the sim hands out

#[derive(Clone)]
struct Proxy {
    upstream: String,
    tokens: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

async fn proxy_token(
    State(p): State<Proxy>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = match query {
        Some(q) => format!("{}?{q}", p.upstream),
        None => p.upstream.clone(),
    };
    let mut rb = p.http.post(url).body(body.to_vec());
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = headers.get(&name) {
            rb = rb.header(name.as_str(), v.as_bytes());
        }
    }
    let Ok(resp) = rb.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let bytes = resp.bytes().await.unwrap_or_default();
    if let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        && let Some(t) = v.get("access_token").and_then(Value::as_str)
    {
        p.tokens.lock().expect("tokens").push(t.to_string());
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        bytes.to_vec(),
    )
        .into_response()
}

/// Serves `POST /oauth/token` on loopback, forwarding to the sim; returns its URL.
async fn start_proxy(sim: &Sim) -> (String, Arc<Mutex<Vec<String>>>) {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let state = Proxy {
        upstream: sim.oauth_url(),
        tokens: tokens.clone(),
        http: reqwest::Client::new(),
    };
    let app = axum::Router::new()
        .route("/oauth/token", axum::routing::post(proxy_token))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/oauth/token"), tokens)
}

// ---------------------------------------------------------------------------------------
// End to end at trace level

/// Runs the daemon at `ZOOMD_LOG=trace` through a meeting, a recording and faults that make
/// it renew tokens and record errors; returns everything it wrote, plus the sim and every
/// token it held.
async fn traced_run(auth: Login) -> (Daemon, Sim, Vec<(String, Vec<u8>)>, Vec<String>) {
    let sim = spawn_sim(SimConfig::default()).await;
    let (oauth_url, tokens) = start_proxy(&sim).await;
    let mut config = DaemonToml::run(&sim)
        .login(auth)
        .set("create_ahead", "\"1m\"")
        .meetings(
            &Entry::cron("sec", "Security run", &cron_at(in_secs(4)))
                .duration("5m")
                .agenda("Nothing secret here")
                .toml(),
        );
    config.oauth_url = oauth_url;

    // Faults that put error text into logs and the database, and make tokens renew.
    sim.inject(Route::CreateMeeting, Fault::CreateSucceedsAnswerLost, 1);
    sim.inject(Route::GetRecordings, Fault::TokenExpired, 1);
    sim.inject(Route::Download, Fault::TokenExpired, 1);
    sim.inject(Route::Download, Fault::HtmlPage, 1);
    sim.inject(Route::Download, Fault::TruncatedBody, 1);
    sim.inject(Route::ListMeetings, Fault::Status(500), 1);

    let mut d = spawn_daemon(&config, &[("ZOOMD_LOG", "trace")]);
    d.wait_for("5 files archived", || async {
        d.archive_rows().await.len() >= 5
    })
    .await;
    d.stop().await;

    let mut outputs = vec![("daemon log".to_string(), d.logs().into_bytes())];
    // The commands people run, with their errors and logs.
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["meetings", "--json"],
        &["recordings", "--json"],
        &["check", "--next", "2"],
        &["sync"],
    ] {
        let o = output_ok(&mut d.command(args));
        outputs.push((format!("zoomd {}", args.join(" ")), text(&o).into_bytes()));
    }
    // `zoomd token` prints a token on stdout by design; its log must hold none.
    let o = output_ok(&mut d.command(&["token"]));
    outputs.push(("zoomd token (stderr)".into(), o.stderr.clone()));
    let printed = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // Every token the process ever held: from the proxy (OAuth), or the JWT it printed.
    let mut held = tokens.lock().expect("tokens").clone();
    if auth == Login::Jwt {
        held.push(printed);
    }
    for name in ["state.db", "state.db-wal", "state.db-shm"] {
        if let Ok(bytes) = std::fs::read(d.path(name)) {
            outputs.push((name.to_string(), bytes));
        }
    }
    (d, sim, outputs, held)
}

fn needles(sim: &Sim, auth: Login, tokens: &[String]) -> Vec<(String, String)> {
    let cfg = sim.config();
    let mut n = vec![
        ("client secret".to_string(), cfg.client_secret.clone()),
        (
            "Basic credentials".to_string(),
            STANDARD.encode(format!("{}:{}", cfg.client_id, cfg.client_secret)),
        ),
        ("api secret".to_string(), cfg.api_secret.clone()),
    ];
    for (i, t) in tokens.iter().enumerate() {
        n.push((format!("token {i}"), t.clone()));
        // Half a token is a leak too (a log that cut it short).
        if t.len() >= 32 {
            n.push((format!("half of token {i}"), t[t.len() / 2..].to_string()));
        }
        if auth == Login::Jwt {
            // Its signature: the part only the secret could make.
            let sig = t.rsplit('.').next().unwrap_or_default();
            n.push((format!("signature of JWT {i}"), sig.to_string()));
        }
    }
    n
}

fn assert_nothing_leaked(outputs: &[(String, Vec<u8>)], needles: &[(String, String)]) {
    for (what, bytes) in outputs {
        let hay = String::from_utf8_lossy(bytes);
        for (name, needle) in needles {
            assert!(!needle.is_empty());
            assert!(
                !hay.contains(needle.as_str()),
                "{name} found in {what}:\n{}",
                excerpt(&hay, needle)
            );
        }
    }
}

fn excerpt(hay: &str, needle: &str) -> String {
    let i = hay.find(needle).unwrap_or(0);
    let start = hay[..i].char_indices().rev().nth(300).map_or(0, |(j, _)| j);
    let end = (i + needle.len() + 100).min(hay.len());
    let end = (end..=hay.len())
        .find(|e| hay.is_char_boundary(*e))
        .unwrap_or(hay.len());
    hay[start..end].to_string()
}

async fn no_secret_or_token_anywhere(auth: Login) {
    let (d, sim, outputs, tokens) = traced_run(auth).await;
    // The scan has teeth: trace logging was on, the database was read, errors happened,
    // and tokens were renewed.
    let log = String::from_utf8_lossy(&outputs[0].1).to_string();
    assert!(log.contains("TRACE"), "trace logging was on");
    // The rows are in the file or still in its write-ahead log (not yet checkpointed).
    let db: String = outputs
        .iter()
        .filter(|(n, _)| n == "state.db" || n == "state.db-wal")
        .map(|(_, b)| String::from_utf8_lossy(b).to_string())
        .collect();
    assert!(!db.is_empty(), "database read");
    assert!(db.contains("zoomd:sec:"), "the raw database holds the rows");
    let kinds = event_kinds(&d.store().await.expect("db")).await;
    assert!(kinds.contains(&"create-unknown".to_string()), "{kinds:?}");
    match auth {
        Login::OAuth | Login::OAuthFile => {
            assert!(tokens.len() >= 3, "renewed after expiry: {tokens:?}")
        }
        Login::Jwt => assert!(tokens.len() == 1 && tokens[0].starts_with("eyJ")),
    }
    assert_nothing_leaked(&outputs, &needles(&sim, auth, &tokens));
    if auth == Login::Jwt {
        // No JWT at all in the logs or the database: every zoomd JWT has this header.
        let header = tokens[0].split('.').next().expect("header").to_string();
        assert_nothing_leaked(&outputs, &[("a JWT header".into(), header)]);
    }
    // Tokens went only in headers, only to the configured hosts.
    assert_no_leaks(&sim);
    assert!(sim.counters().get(Route::SignedDownload) >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_no_secret_or_token_in_logs_database_output_or_errors() {
    no_secret_or_token_anywhere(Login::OAuthFile).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_no_secret_or_token_in_logs_database_output_or_errors() {
    no_secret_or_token_anywhere(Login::Jwt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_do_not_echo_the_secret() {
    let sim = spawn_sim(SimConfig::default()).await;
    let cfg = sim.config().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim)
        .meetings(
            &Entry::cron("k", "T", "0 9 * * Mon")
                .timezone(None)
                .duration("1h")
                .toml(),
        )
        .write(dir.path());
    let wrong = "wrong-secret-Zq81x0-do-not-print";
    for args in [&["token"][..], &["sync"]] {
        let o = zoomd()
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("ZOOMD_CLIENT_SECRET", wrong)
            .env("ZOOMD_LOG", "trace")
            .output()
            .expect("zoomd");
        let all = text(&o);
        if args == ["token"] {
            assert_eq!(o.status.code(), Some(1), "{args:?}: {all}");
        }
        assert!(
            all.contains("invalid_client") || all.contains("Invalid client"),
            "{args:?}: says why: {all}"
        );
        for needle in [
            wrong.to_string(),
            STANDARD.encode(format!("{}:{wrong}", cfg.client_id)),
        ] {
            assert!(!all.contains(&needle), "{args:?} printed {needle}:\n{all}");
        }
    }
    // The refusal is on record in the database (the create failed), without the secret.
    let mut db = String::new();
    for name in ["state.db", "state.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(name)) {
            db.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    assert!(
        db.contains("authentication failed"),
        "the error is recorded"
    );
    assert!(!db.contains(wrong));
}

// ---------------------------------------------------------------------------------------
// JWTs

fn b64_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
}

#[test]
fn zoomd_jwts_are_hs256_with_exp_in_seconds_and_the_configured_ttl() {
    let cfg = SimConfig::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("daemon.toml");
    for (ttl_text, ttl) in [
        (None, 30),
        (Some("5s"), 5),
        (Some("45s"), 45),
        (Some("1h"), 3600),
    ] {
        let ttl_line = ttl_text.map_or(String::new(), |t| format!("jwt_ttl = \"{t}\"\n"));
        std::fs::write(
            &config,
            format!(
                "[zoom]\nauth = \"jwt\"\napi_key = \"{}\"\n{ttl_line}api_url = \"http://127.0.0.1:9/v2\"\n",
                cfg.api_key
            ),
        )
        .expect("config");
        let before = Utc::now().timestamp();
        let o = zoomd()
            .arg("--config")
            .arg(&config)
            .arg("token")
            .env("ZOOMD_API_SECRET", &cfg.api_secret)
            .output()
            .expect("zoomd token");
        let after = Utc::now().timestamp();
        assert!(o.status.success(), "{}", text(&o));
        let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let header = b64_json(parts[0]);
        assert_eq!(header["alg"], "HS256", "{header}");
        assert_eq!(header["typ"], "JWT", "{header}");
        let claims = b64_json(parts[1]);
        let exp = claims["exp"].as_i64().expect("exp is an integer");
        let iat = claims["iat"].as_i64().expect("iat is an integer");
        assert!(exp < 100_000_000_000, "exp in seconds, not ms: {exp}");
        assert!((before..=after).contains(&iat), "{iat} not now");
        assert_eq!(exp - iat, ttl, "{claims}");
        assert_eq!(claims["iss"], cfg.api_key.as_str());
        // Signed with the secret's ASCII bytes, and only HS256 verifies it.
        let mut v = Validation::new(Algorithm::HS256);
        v.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(
            &token,
            &DecodingKey::from_secret(cfg.api_secret.as_bytes()),
            &v,
        )
        .expect("verifies with the api secret");
        let v384 = Validation::new(Algorithm::HS384);
        assert!(
            jsonwebtoken::decode::<Value>(
                &token,
                &DecodingKey::from_secret(cfg.api_secret.as_bytes()),
                &v384
            )
            .is_err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sim_refuses_alg_none_hs384_expired_and_tokens_in_urls() {
    let sim = spawn_sim(SimConfig::default()).await;
    let cfg = sim.config().clone();
    let http = reqwest::Client::new();
    let url = format!("{}/users/me/meetings?type=upcoming", sim.api_url());
    let now = Utc::now().timestamp();
    let sign = |alg: Algorithm, claims: Value| {
        jsonwebtoken::encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(cfg.api_secret.as_bytes()),
        )
        .expect("sign")
    };
    let get = |token: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .expect("send");
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let good = sign(
        Algorithm::HS256,
        json!({"iss": cfg.api_key, "iat": now, "exp": now + 60}),
    );
    assert_eq!(get(good.clone()).await.0, 200);
    let payload = URL_SAFE_NO_PAD.encode(json!({"iss": cfg.api_key, "exp": now + 60}).to_string());
    let none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    for (what, token) in [
        ("alg none", none),
        (
            "HS384",
            sign(
                Algorithm::HS384,
                json!({"iss": cfg.api_key, "exp": now + 60}),
            ),
        ),
        (
            "expired",
            sign(
                Algorithm::HS256,
                json!({"iss": cfg.api_key, "exp": now - 5}),
            ),
        ),
    ] {
        let (status, body) = get(token).await;
        assert_eq!((status, body["code"].as_i64()), (401, Some(124)), "{what}");
    }
    // A token in the query string is refused and reported, even a valid one.
    let r = http
        .get(format!("{url}&access_token={good}"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(sim.report().tokens_in_urls.len(), 1);
}
