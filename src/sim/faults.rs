//! Fault injection: what can go wrong, on which route, and in which order.
//!
//! Tests queue faults with [`Sim::inject`](super::Sim::inject); each request takes the
//! first queued fault that matches its route and can happen at that point of the
//! exchange. A "chaos" mode adds random faults with a seeded RNG for soak tests.

use std::collections::VecDeque;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// An endpoint of the simulated Zoom, used to aim faults and to key counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Route {
    /// Matches every route (for [`Sim::inject`](super::Sim::inject) only).
    Any,
    /// `POST /oauth/token`.
    Token,
    /// `POST /users/{userId}/meetings`.
    CreateMeeting,
    /// `GET /users/{userId}/meetings`.
    ListMeetings,
    /// `GET /meetings/{meetingId}`.
    GetMeeting,
    /// `PATCH /meetings/{meetingId}`.
    UpdateMeeting,
    /// `DELETE /meetings/{meetingId}`.
    DeleteMeeting,
    /// `GET /meetings/{meetingId}/recordings`.
    GetRecordings,
    /// `DELETE /meetings/{meetingUUID}/recordings`.
    DeleteRecordings,
    /// `DELETE /meetings/{meetingUUID}/recordings/{recordingId}`.
    DeleteRecordingFile,
    /// `GET /users/{userId}/recordings`.
    ListRecordings,
    /// `GET /users`.
    ListUsers,
    /// `GET /past_meetings/{meetingId}/instances`.
    PastInstances,
    /// `GET /past_meetings/{meetingId}`.
    PastMeeting,
    /// `GET {download_url}` on the API host (answers with a redirect). Body faults
    /// (truncated, stalled, HTML page) aimed here fire on the signed host instead.
    Download,
    /// `GET /signed/...` on the download host (serves the bytes).
    SignedDownload,
    /// Any other path (answered 404).
    Other,
}

impl Route {
    /// A stable name, for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Route::Any => "any",
            Route::Token => "token",
            Route::CreateMeeting => "create_meeting",
            Route::ListMeetings => "list_meetings",
            Route::GetMeeting => "get_meeting",
            Route::UpdateMeeting => "update_meeting",
            Route::DeleteMeeting => "delete_meeting",
            Route::GetRecordings => "get_recordings",
            Route::DeleteRecordings => "delete_recordings",
            Route::DeleteRecordingFile => "delete_recording_file",
            Route::ListRecordings => "list_recordings",
            Route::ListUsers => "list_users",
            Route::PastInstances => "past_instances",
            Route::PastMeeting => "past_meeting",
            Route::Download => "download",
            Route::SignedDownload => "signed_download",
            Route::Other => "other",
        }
    }

    /// Zoom's rate-limit category of the route (sent as `X-RateLimit-Category`).
    pub(crate) fn category(self) -> &'static str {
        match self {
            Route::ListRecordings | Route::ListUsers => "Medium",
            Route::Download | Route::SignedDownload => "Heavy",
            _ => "Light",
        }
    }
}

/// How a 429 announces when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// No `Retry-After` header at all.
    Absent,
    /// `Retry-After: N` (seconds).
    Seconds(u64),
    /// `Retry-After` as an HTTP date this many seconds from now.
    HttpDate(u64),
    /// `Retry-After` as an ISO 8601 UTC time (`2026-01-02T00:00:00Z`) this many seconds
    /// from now, as Zoom has been seen to send.
    Iso8601(u64),
}

/// Something that goes wrong with one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this HTTP status with a Zoom-like JSON error body (429 without
    /// `Retry-After`; use [`Fault::RateLimited`] to choose the header).
    Status(u16),
    /// 429 with the given `Retry-After` form (plus `X-RateLimit-*` when configured).
    RateLimited(RetryAfter),
    /// The daily create/update cap answer (429, or 300 when configured) for this request.
    DailyCap,
    /// Close the socket without any HTTP answer.
    ConnectionReset,
    /// Carry the request out (e.g. create the meeting), then close the socket without an
    /// answer. Works on every route, named for the case that matters most.
    CreateSucceedsAnswerLost,
    /// Downloads: announce the full `Content-Length`, send part of it, close.
    TruncatedBody,
    /// Downloads: send part of the body, then hang until the client gives up (or the
    /// configured `stall_for` passes, or the sim shuts down).
    StalledBody,
    /// Answer 200 `text/html` with an error page instead of the JSON or file.
    HtmlPage,
    /// Invalidate every issued token now; this request then fails with 401 code 124.
    TokenExpired,
    /// Downloads: answer as an expired download URL does (404 code 3301).
    DownloadUrlExpired,
    /// Wait this long before handling the request normally.
    Delay(Duration),
    /// Answer 400 with code 4711: the token lacks this scope.
    MissingScope(&'static str),
}

impl Fault {
    /// Faults that shape a download body; they fire on the signed host.
    pub(crate) fn is_body_fault(&self) -> bool {
        matches!(
            self,
            Fault::TruncatedBody | Fault::StalledBody | Fault::HtmlPage
        )
    }

    /// A short label, for the report.
    pub fn label(&self) -> String {
        match self {
            Fault::Status(s) => format!("status_{s}"),
            Fault::RateLimited(r) => format!("rate_limited_{r:?}"),
            Fault::DailyCap => "daily_cap".into(),
            Fault::ConnectionReset => "connection_reset".into(),
            Fault::CreateSucceedsAnswerLost => "answer_lost".into(),
            Fault::TruncatedBody => "truncated_body".into(),
            Fault::StalledBody => "stalled_body".into(),
            Fault::HtmlPage => "html_page".into(),
            Fault::TokenExpired => "token_expired".into(),
            Fault::DownloadUrlExpired => "download_url_expired".into(),
            Fault::Delay(d) => format!("delay_{}ms", d.as_millis()),
            Fault::MissingScope(s) => format!("missing_scope_{s}"),
        }
    }
}

/// Where in the exchange a request is: on the API host or on the signed download host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hop {
    Api,
    Signed,
}

/// Whether `fault`, queued for `aimed`, can fire on a request for `route` at `hop`.
pub(crate) fn applies(aimed: Route, fault: &Fault, route: Route, hop: Hop) -> bool {
    match hop {
        Hop::Signed => {
            let general = !matches!(
                fault,
                Fault::DailyCap
                    | Fault::TokenExpired
                    | Fault::CreateSucceedsAnswerLost
                    | Fault::DownloadUrlExpired
            );
            match aimed {
                Route::SignedDownload => general,
                Route::Any | Route::Download => fault.is_body_fault(),
                _ => false,
            }
        }
        Hop::Api => {
            if aimed != Route::Any && aimed != route {
                return false;
            }
            match fault {
                Fault::TruncatedBody | Fault::StalledBody => false,
                Fault::HtmlPage => route != Route::Download,
                Fault::DailyCap => {
                    matches!(route, Route::CreateMeeting | Route::UpdateMeeting)
                }
                Fault::TokenExpired => route != Route::Token,
                Fault::DownloadUrlExpired => route == Route::Download,
                _ => true,
            }
        }
    }
}

/// Random faults for soak tests: each request draws one with `probability`.
#[derive(Clone, Debug)]
pub struct Chaos {
    /// Chance in 0.0..=1.0 that a request meets a fault.
    pub probability: f64,
    /// Seed of the RNG, so a failing soak run can be replayed.
    pub seed: u64,
    /// The faults to draw from (only those that can happen on the request's route).
    pub faults: Vec<Fault>,
}

impl Chaos {
    /// Chaos with the default mix: 500, 503, 429 (seconds), connection reset, lost
    /// answer, truncated body, HTML page and token expiry. Stalls and delays are left out
    /// because they only make a soak test slow; add them to `faults` if wanted.
    pub fn new(probability: f64, seed: u64) -> Self {
        Self {
            probability,
            seed,
            faults: vec![
                Fault::Status(500),
                Fault::Status(503),
                Fault::RateLimited(RetryAfter::Seconds(1)),
                Fault::ConnectionReset,
                Fault::CreateSucceedsAnswerLost,
                Fault::TruncatedBody,
                Fault::HtmlPage,
                Fault::TokenExpired,
            ],
        }
    }
}

struct Queued {
    route: Route,
    fault: Fault,
    /// Matching requests to let through before the fault fires.
    skip: u32,
    remaining: u32,
}

/// The queue of injected faults plus the optional chaos generator.
#[derive(Default)]
pub(crate) struct FaultQueue {
    queue: VecDeque<Queued>,
    chaos: Option<(Chaos, StdRng)>,
}

impl FaultQueue {
    pub(crate) fn push(&mut self, route: Route, fault: Fault, times: u32) {
        self.push_after(route, 0, fault, times);
    }

    pub(crate) fn push_after(&mut self, route: Route, skip: u32, fault: Fault, times: u32) {
        if times > 0 {
            self.queue.push_back(Queued {
                route,
                fault,
                skip,
                remaining: times,
            });
        }
    }

    pub(crate) fn clear(&mut self) {
        self.queue.clear();
    }

    pub(crate) fn pending(&self) -> u32 {
        self.queue.iter().map(|q| q.remaining).sum()
    }

    pub(crate) fn set_chaos(&mut self, chaos: Option<Chaos>) {
        self.chaos = chaos.map(|c| {
            let rng = StdRng::seed_from_u64(c.seed);
            (c, rng)
        });
    }

    /// Takes the first queued fault matching `route` at `hop`, else maybe a chaos fault.
    pub(crate) fn take(&mut self, route: Route, hop: Hop) -> Option<Fault> {
        let pos = self
            .queue
            .iter()
            .position(|q| applies(q.route, &q.fault, route, hop));
        if let Some(pos) = pos {
            let q = &mut self.queue[pos];
            if q.skip > 0 {
                q.skip -= 1;
                return None;
            }
            let fault = q.fault.clone();
            q.remaining -= 1;
            if q.remaining == 0 {
                self.queue.remove(pos);
            }
            return Some(fault);
        }
        let (chaos, rng) = self.chaos.as_mut()?;
        if !rng.random_bool(chaos.probability.clamp(0.0, 1.0)) {
            return None;
        }
        let candidates: Vec<&Fault> = chaos
            .faults
            .iter()
            .filter(|f| applies(Route::Any, f, route, hop))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let i = rng.random_range(0..candidates.len());
        Some(candidates[i].clone())
    }
}
