//! The simulated Zoom, started for one test, and a Zoom client aimed at it.

use std::time::Duration;

use url::Url;
use zoomd::secret::Secret;
use zoomd::sim::{Chaos, Fault, RetryAfter, Sim, SimConfig};
use zoomd::zoom::{ClientConfig, Credentials, Pace, RetryPolicy, Timeouts, ZoomClient};

/// Starts a sim on loopback with `cfg`'s knobs (timings, sizes, daily cap, stall length,
/// seed). Faults are injected on the running sim (`inject`, `set_chaos`).
pub async fn spawn_sim(cfg: SimConfig) -> Sim {
    Sim::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("sim start: {e}"))
}

/// The sim's Server-to-Server OAuth app.
pub fn oauth_credentials(sim: &Sim) -> Credentials {
    let c = sim.config();
    Credentials::OAuth {
        account_id: c.account_id.clone(),
        client_id: c.client_id.clone(),
        client_secret: Secret::new(c.client_secret.clone()),
    }
}

/// The sim's legacy JWT app (30 s tokens).
pub fn jwt_credentials(sim: &Sim) -> Credentials {
    let c = sim.config();
    Credentials::Jwt {
        api_key: c.api_key.clone(),
        api_secret: Secret::new(c.api_secret.clone()),
        ttl: Duration::from_secs(30),
    }
}

/// Retries after milliseconds, at most four attempts, a `Retry-After` of up to 3 s waited
/// out in place.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_retry_after: Duration::from_secs(3),
    }
}

/// A client config for `api_url` with [`fast_retry`] and a 700 ms read-idle timeout (the
/// daemon's is 60 s; a test cannot wait that long for a stall).
pub fn client_config_at(api_url: Url, oauth_url: Url, credentials: Credentials) -> ClientConfig {
    let mut cfg = ClientConfig::new(credentials);
    cfg.api_url = api_url;
    cfg.oauth_url = oauth_url;
    cfg.retry = fast_retry();
    // The widest budget: these clients test other things, and on a manual clock a burst of
    // fast retries is many requests in one second. The budget's own tests set theirs.
    cfg.pace = Pace {
        requests_per_second: Pace::MAX_RATE,
        max_in_flight: Pace::MAX_IN_FLIGHT,
    };
    cfg.timeouts = Timeouts {
        connect: Duration::from_secs(2),
        request: Duration::from_secs(10),
        read_idle: Duration::from_millis(700),
    };
    cfg
}

/// [`client_config_at`] the sim, on the sim's clock (so a `Retry-After` date or a token's
/// expiry means the same instant to both).
pub fn client_config(sim: &Sim, credentials: Credentials) -> ClientConfig {
    let mut cfg = client_config_at(
        Url::parse(&sim.api_url()).expect("api url"),
        Url::parse(&sim.oauth_url()).expect("oauth url"),
        credentials,
    );
    cfg.clock = sim.config().clock.clone();
    cfg
}

/// An OAuth client of the sim.
pub fn oauth_client(sim: &Sim) -> ZoomClient {
    ZoomClient::new(client_config(sim, oauth_credentials(sim))).expect("client")
}

/// Faults on about one request in ten, of every kind the sim has (not only the default
/// mix), drawn from `seed`.
pub fn chaos_of_every_kind(seed: u64) -> Chaos {
    let mut c = Chaos::new(0.10, seed);
    // Every kind of fault, not only the default mix.
    c.faults.extend([
        Fault::Status(502),
        Fault::RateLimited(RetryAfter::HttpDate(1)),
        Fault::RateLimited(RetryAfter::Absent),
        Fault::DownloadUrlExpired,
        Fault::StalledBody,
        Fault::Delay(Duration::from_millis(400)),
    ]);
    c
}
