//! The API host: routing, the gate every request passes (counting, token checks,
//! faults), and the `/v2` handlers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::{Months, NaiveDate};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{ApiError, ApiResult};
use super::auth;
use super::conn::ConnCtl;
use super::download;
use super::faults::{Fault, Hop, RetryAfter, Route};
use super::respond::{fault_response, wait};
use super::state::{Shared, State as SimState, fmt_time};
use super::validate::parse_meeting;
use super::{RequestLog, SimConfig};

pub(crate) fn api_router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/oauth/token", post(auth::token))
        .route(
            "/v2/users/{user}/meetings",
            get(list_meetings).post(create_meeting),
        )
        .route(
            "/v2/meetings/{id}",
            get(get_meeting)
                .patch(update_meeting)
                .delete(delete_meeting),
        )
        .route(
            "/v2/meetings/{id}/recordings",
            get(get_recordings).delete(delete_recordings),
        )
        .route(
            "/v2/meetings/{id}/recordings/{file}",
            delete(delete_recording_file),
        )
        .route("/v2/users/{user}/recordings", get(list_recordings))
        .route("/v2/users", get(list_users))
        .route("/v2/past_meetings/{id}/instances", get(past_instances))
        .route("/v2/past_meetings/{id}", get(past_meeting))
        .route("/rec/download/{op}", get(download::redirect))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(sh.clone(), gate))
        .with_state(sh)
}

/// The route of a request, from its raw path (segments still percent-encoded).
pub(crate) fn classify(method: &Method, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let nonempty = segs.iter().all(|s| !s.is_empty());
    if !nonempty {
        return Route::Other;
    }
    let m = method.clone();
    match (m, segs.as_slice()) {
        (Method::POST, ["oauth", "token"]) => Route::Token,
        (Method::POST, ["v2", "users", _, "meetings"]) => Route::CreateMeeting,
        (Method::GET, ["v2", "users", _, "meetings"]) => Route::ListMeetings,
        (Method::GET, ["v2", "meetings", _]) => Route::GetMeeting,
        (Method::PATCH, ["v2", "meetings", _]) => Route::UpdateMeeting,
        (Method::DELETE, ["v2", "meetings", _]) => Route::DeleteMeeting,
        (Method::GET, ["v2", "meetings", _, "recordings"]) => Route::GetRecordings,
        (Method::DELETE, ["v2", "meetings", _, "recordings"]) => Route::DeleteRecordings,
        (Method::DELETE, ["v2", "meetings", _, "recordings", _]) => Route::DeleteRecordingFile,
        (Method::GET, ["v2", "users", _, "recordings"]) => Route::ListRecordings,
        (Method::GET, ["v2", "users"]) => Route::ListUsers,
        (Method::GET, ["v2", "past_meetings", _, "instances"]) => Route::PastInstances,
        (Method::GET, ["v2", "past_meetings", _]) => Route::PastMeeting,
        (Method::GET | Method::HEAD, ["rec", "download", _]) => Route::Download,
        _ => Route::Other,
    }
}

/// Every API request passes here: count it, refuse tokens in the URL, fire a queued
/// fault, check the bearer token, run the handler, log the answer.
async fn gate(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(ctl): ConnectInfo<ConnCtl>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let route = classify(&method, &path);
    {
        let mut st = sh.lock();
        st.in_flight += 1;
        st.max_in_flight = st.max_in_flight.max(st.in_flight);
    }
    // Counted down however the handler ends (a client that hangs up drops it).
    let _done = InFlight(&sh);
    let (resp, killed) = gate_inner(&sh, &ctl, route, req, next).await;
    let mut st = sh.lock();
    if killed {
        st.counters.connections_killed += 1;
    }
    st.log_request(RequestLog {
        route,
        method: method.to_string(),
        path,
        query,
        status: if killed { 0 } else { resp.status().as_u16() },
    });
    resp
}

struct InFlight<'a>(&'a Shared);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
    }
}

async fn gate_inner(
    sh: &Arc<Shared>,
    ctl: &ConnCtl,
    route: Route,
    req: Request,
    next: Next,
) -> (Response, bool) {
    let needs_bearer = route != Route::Token;
    let (fault, over_limit) = {
        let mut st = sh.lock();
        st.count(route);
        let over_limit = route != Route::Token && st.arrive();
        if needs_bearer && let Some(q) = req.uri().query() {
            let own = auth::bearer(req.headers());
            if auth::token_in_query(&st, q, own) {
                let seen = format!("{} {}?{}", req.method(), req.uri().path(), q);
                st.report.tokens_in_urls.push(seen);
                return (ApiError::invalid_token().into_response(), false);
            }
        }
        let fault = st.faults.take(route, Hop::Api);
        if let Some(f) = &fault {
            st.counters.faults_fired += 1;
            st.report.faults_fired.push((route, f.label()));
            if *f == Fault::TokenExpired {
                st.revoke_tokens();
            }
        }
        (fault, over_limit)
    };
    if over_limit {
        return (
            super::respond::rate_limited(sh, route, RetryAfter::Seconds(1)),
            false,
        );
    }
    let mut answer_lost = false;
    match fault {
        None | Some(Fault::TokenExpired) => {}
        Some(Fault::ConnectionReset) => {
            ctl.kill();
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), true);
        }
        Some(Fault::CreateSucceedsAnswerLost) => answer_lost = true,
        Some(Fault::Delay(d)) => wait(sh, d).await,
        Some(f) => return (fault_response(sh, route, &f), false),
    }
    let latency = sh.lock().latency;
    if !latency.is_zero() {
        wait(sh, latency).await;
    }
    if needs_bearer {
        let checked = if route == Route::Download {
            auth::check_download_bearer(sh, req.headers(), req.uri().path())
        } else {
            auth::check_bearer(sh, req.headers())
        };
        if let Err(e) = checked {
            return (e.into_response(), false);
        }
    }
    let resp = next.run(req).await;
    if answer_lost {
        ctl.kill();
    }
    (resp, answer_lost)
}

async fn not_found() -> ApiError {
    ApiError::new(404, 404, "Not Found")
}

// ----- helpers ----------------------------------------------------------------------

fn query_map(q: &Option<String>) -> HashMap<String, String> {
    url::form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<Value> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Err(ApiError::bad_request("Unsupported Content Type"));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| ApiError::bad_request("Request Body should be a valid JSON object."))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "Request Body should be a valid JSON object.",
        ));
    }
    Ok(v)
}

fn page_size(q: &HashMap<String, String>) -> ApiResult<usize> {
    match q.get("page_size") {
        None => Ok(30),
        Some(s) => {
            let n: i64 = s
                .parse()
                .map_err(|_| ApiError::invalid("page_size", "Invalid field."))?;
            if n < 1 {
                return Err(ApiError::invalid("page_size", "Invalid field."));
            }
            // Zoom caps larger values at 300 rather than refusing them.
            Ok(n.min(300) as usize)
        }
    }
}

fn numeric_id(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A meeting id or an instance uuid, as Zoom reads a `{meetingId}` path segment.
enum Target {
    Id(i64),
    Uuid(String),
}

/// `once` is the segment decoded once (by the router). Zoom decodes again, so a uuid
/// that starts with `/` or holds `//` only survives when the client encoded it twice;
/// encoded once, it reaches Zoom as a broken path and resolves to nothing.
fn target(st: &mut SimState, once: &str, path: &str) -> Option<Target> {
    if once.starts_with('/') || once.contains("//") {
        st.report.encoding_errors.push(path.to_string());
        return None;
    }
    let twice = if once.contains('%') {
        percent_decode_str(once).decode_utf8_lossy().into_owned()
    } else {
        once.to_string()
    };
    Some(match numeric_id(&twice) {
        Some(id) => Target::Id(id),
        None => Target::Uuid(twice),
    })
}

/// The (meeting id, instance index) a recording request means.
fn instance_of(st: &mut SimState, once: &str, path: &str) -> Option<(i64, usize)> {
    match target(st, once, path)? {
        Target::Id(id) => st.latest_instance(id),
        Target::Uuid(u) => st.find_uuid(&u),
    }
}

// ----- extractors -------------------------------------------------------------------
//
// The handler prologues: read the `{id}` segment and turn it into what the handler works
// on, or answer as Zoom does. Each runs in the order the handler did before, so answers
// (and side effects such as `encoding_errors`) stay the same.

/// The `{id}` path parameter (the only one the extractors read; `{file}` may follow).
#[derive(Deserialize)]
struct IdParam {
    id: String,
}

/// The `{id}` segment, decoded once by the router. A segment that is not UTF-8 once
/// decoded gets axum's own `Path` rejection, as a plain `Path<String>` did.
async fn id_segment(parts: &mut Parts, sh: &Arc<Shared>) -> Result<String, Response> {
    Path::<IdParam>::from_request_parts(parts, sh)
        .await
        .map(|Path(p)| p.id)
        .map_err(IntoResponse::into_response)
}

/// The instance a `{id}` segment (meeting id or instance uuid) names, if any.
async fn instance_in_path(
    parts: &mut Parts,
    sh: &Arc<Shared>,
) -> Result<Option<(i64, usize)>, Response> {
    let once = id_segment(parts, sh).await?;
    let mut st = sh.lock();
    if numeric_id(&once).is_some_and(|id| st.deleted_unheld(id)) {
        return Err(ApiError::meeting_not_found().into_response());
    }
    Ok(instance_of(&mut st, &once, parts.uri.path()))
}

/// A numeric meeting id from the path; anything else is Zoom's 404 code 3001.
struct MeetingId(i64);

impl FromRequestParts<Arc<Shared>> for MeetingId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sh: &Arc<Shared>) -> Result<Self, Response> {
        let id = id_segment(parts, sh).await?;
        numeric_id(&id)
            .map(MeetingId)
            .ok_or_else(|| ApiError::meeting_not_found().into_response())
    }
}

/// A meeting instance the path names: (meeting id, instance index). Unknown: `M`'s answer.
struct InstanceOf<M>(i64, usize, std::marker::PhantomData<M>);

/// What an unknown instance answers.
trait Unknown {
    fn answer() -> ApiError;
}

/// The recording of an instance: unknown is Zoom's 404 code 3301.
struct Recording;
/// A past instance: unknown is Zoom's 404 code 3001.
struct Past;

impl Unknown for Recording {
    fn answer() -> ApiError {
        ApiError::recording_not_found()
    }
}

impl Unknown for Past {
    fn answer() -> ApiError {
        ApiError::meeting_not_found()
    }
}

type RecordingOf = InstanceOf<Recording>;
type PastInstanceOf = InstanceOf<Past>;

impl<M: Unknown + Send> FromRequestParts<Arc<Shared>> for InstanceOf<M> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sh: &Arc<Shared>) -> Result<Self, Response> {
        instance_in_path(parts, sh)
            .await?
            .map(|(m, i)| InstanceOf(m, i, std::marker::PhantomData))
            .ok_or_else(|| M::answer().into_response())
    }
}

/// A recording delete (`?action=trash|delete`) of the instance the path names. The
/// action is checked before the instance is looked up, as Zoom (and the handlers before
/// these extractors) did: a bad action is a 400 even for an unknown recording.
struct RecordingDelete {
    meeting: i64,
    index: usize,
    action: String,
}

impl FromRequestParts<Arc<Shared>> for RecordingDelete {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, sh: &Arc<Shared>) -> Result<Self, Response> {
        let once = id_segment(parts, sh).await?;
        let query = parts.uri.query().map(str::to_string);
        let action = action(&query_map(&query)).map_err(IntoResponse::into_response)?;
        let (meeting, index) = instance_of(&mut sh.lock(), &once, parts.uri.path())
            .ok_or_else(|| ApiError::recording_not_found().into_response())?;
        Ok(RecordingDelete {
            meeting,
            index,
            action,
        })
    }
}

// ----- meetings ---------------------------------------------------------------------

async fn create_meeting(
    State(sh): State<Arc<Shared>>,
    Path(user): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let cfg: &SimConfig = &sh.cfg;
    let mut st = sh.lock();
    let host = st.user(&user)?;
    let v = json_body(&headers, &body)?;
    let input = parse_meeting(&v, &host.timezone, true)?;
    let id = st.create_meeting(cfg, &host, input)?;
    let m = st.meeting(id)?;
    Ok((StatusCode::CREATED, Json(st.meeting_json(m))))
}

async fn list_meetings(
    State(sh): State<Arc<Shared>>,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_map(&q);
    let mut st = sh.lock();
    let host = st.user(&user)?;
    let kind = q.get("type").map(String::as_str).unwrap_or("scheduled");
    if ![
        "scheduled",
        "live",
        "upcoming",
        "upcoming_meetings",
        "previous_meetings",
    ]
    .contains(&kind)
    {
        return Err(ApiError::invalid("type", "Invalid field."));
    }
    let size = page_size(&q)?;
    let key = format!("meetings|{}|{kind}", host.id);
    let start = st.page_start(&key, q.get("next_page_token").map(String::as_str))?;
    let now = st.now();
    let mut list: Vec<_> = st
        .meetings
        .values()
        .filter(|m| !m.deleted && m.host_id == host.id)
        .filter(|m| {
            let (begin, end) = match m.instances.first() {
                Some(i) => (i.start, i.end),
                None => (m.start_time, m.start_time),
            };
            match kind {
                "upcoming" | "upcoming_meetings" => end > now,
                "live" => begin <= now && now < end,
                "previous_meetings" => end <= now,
                _ => true,
            }
        })
        .collect();
    list.sort_by_key(|m| (m.start_time, m.id));
    let total = list.len();
    let page: Vec<Value> = list
        .iter()
        .skip(start)
        .take(size)
        .map(|m| st.meeting_list_item(m))
        .collect();
    let next = st.next_page_token(&key, start + page.len(), total);
    Ok(Json(json!({
        "page_size": size,
        "total_records": total,
        "next_page_token": next,
        "meetings": page,
    })))
}

async fn get_meeting(
    State(sh): State<Arc<Shared>>,
    MeetingId(id): MeetingId,
) -> ApiResult<Json<Value>> {
    let st = sh.lock();
    let m = st.meeting(id)?;
    Ok(Json(st.meeting_json(m)))
}

async fn update_meeting(
    State(sh): State<Arc<Shared>>,
    MeetingId(id): MeetingId,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let mut st = sh.lock();
    let tz = st.meeting(id)?.timezone.clone();
    let v = json_body(&headers, &body)?;
    let input = parse_meeting(&v, &tz, false)?;
    st.update_meeting(&sh.cfg, id, input, v)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_meeting(
    State(sh): State<Arc<Shared>>,
    MeetingId(id): MeetingId,
) -> ApiResult<StatusCode> {
    let mut st = sh.lock();
    st.delete_meeting(id)?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- recordings -------------------------------------------------------------------

async fn get_recordings(
    State(sh): State<Arc<Shared>>,
    InstanceOf(mid, idx, _): RecordingOf,
) -> ApiResult<Json<Value>> {
    let mut st = sh.lock();
    st.recording_json(&sh.cfg, &sh.api_origin, mid, idx)
        .map(Json)
        .ok_or_else(ApiError::recording_not_found)
}

fn action(q: &HashMap<String, String>) -> ApiResult<String> {
    match q.get("action").map(String::as_str) {
        None | Some("trash") => Ok("trash".into()),
        Some("delete") => Ok("delete".into()),
        Some(_) => Err(ApiError::invalid("action", "Invalid field.")),
    }
}

async fn delete_recordings(
    State(sh): State<Arc<Shared>>,
    del: RecordingDelete,
) -> ApiResult<StatusCode> {
    let mut st = sh.lock();
    st.remove_recording(&sh.cfg, del.meeting, del.index, None, &del.action)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `{file}` path parameter of a one-file delete.
#[derive(Deserialize)]
struct FileParam {
    file: String,
}

async fn delete_recording_file(
    State(sh): State<Arc<Shared>>,
    del: RecordingDelete,
    Path(FileParam { file }): Path<FileParam>,
) -> ApiResult<StatusCode> {
    let mut st = sh.lock();
    st.remove_recording(&sh.cfg, del.meeting, del.index, Some(&file), &del.action)?;
    Ok(StatusCode::NO_CONTENT)
}

fn date_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<NaiveDate>> {
    match q.get(name) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ApiError::invalid(name, "Invalid date: use yyyy-mm-dd.")),
    }
}

/// `GET /users`: the account's users of one `status` (default `active`), paged.
async fn list_users(
    State(sh): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_map(&q);
    let status = q.get("status").map_or("active", String::as_str).to_owned();
    if !["active", "inactive", "pending"].contains(&status.as_str()) {
        return Err(ApiError::invalid("status", "Invalid field."));
    }
    let size = page_size(&q)?;
    let mut st = sh.lock();
    let key = format!("users|{status}");
    let start = st.page_start(&key, q.get("next_page_token").map(String::as_str))?;
    let matching: Vec<Value> = st
        .users
        .iter()
        .filter(|u| u.status == status)
        .map(|u| {
            json!({
                "id": u.id,
                "email": u.email,
                "type": 1,
                "status": u.status,
                "timezone": u.timezone,
            })
        })
        .collect();
    let total = matching.len();
    let page: Vec<Value> = matching.into_iter().skip(start).take(size).collect();
    let next = st.next_page_token(&key, start + page.len(), total);
    Ok(Json(json!({
        "page_size": size,
        "total_records": total,
        "next_page_token": next,
        "users": page,
    })))
}

async fn list_recordings(
    State(sh): State<Arc<Shared>>,
    Path(user): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = query_map(&q);
    let mut st = sh.lock();
    let host = st.user(&user)?;
    let today = st.now().date_naive();
    let to = date_param(&q, "to")?.unwrap_or(today);
    let from = date_param(&q, "from")?.unwrap_or(to.pred_opt().unwrap_or(to));
    if from > to {
        return Err(ApiError::bad_request(
            "The 'from' date must not be after the 'to' date.",
        ));
    }
    if from
        .checked_add_months(Months::new(1))
        .is_none_or(|lim| to > lim)
    {
        return Err(ApiError::bad_request(
            "The date range between 'from' and 'to' must not exceed one month.",
        ));
    }
    let trash = match q.get("trash").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("trash", "Invalid field.")),
    };
    let only_meeting = match q.get("meeting_id") {
        None => None,
        Some(s) => {
            Some(numeric_id(s).ok_or_else(|| ApiError::invalid("meeting_id", "Invalid field."))?)
        }
    };
    let size = page_size(&q)?;
    let key = format!(
        "recordings|{}|{from}|{to}|{trash}|{only_meeting:?}",
        host.id
    );
    let start = st.page_start(&key, q.get("next_page_token").map(String::as_str))?;
    let cfg = &sh.cfg;
    let mut found: Vec<(chrono::DateTime<chrono::Utc>, i64, usize)> = Vec::new();
    for m in st.meetings.values() {
        if m.host_id != host.id || only_meeting.is_some_and(|id| id != m.id) {
            continue;
        }
        for (idx, inst) in m.instances.iter().enumerate() {
            let day = inst.start.date_naive();
            if day < from || day > to {
                continue;
            }
            let listed = if trash {
                inst.removed.as_deref() == Some("trash")
            } else {
                st.has_recording(cfg, m, inst)
            };
            if listed {
                found.push((inst.start, m.id, idx));
            }
        }
    }
    // Newest first, as Zoom lists them.
    found.sort_by(|a, b| b.cmp(a));
    let total = found.len();
    let mut page = Vec::new();
    for (_, mid, idx) in found.iter().skip(start).take(size) {
        if trash {
            if let Some(v) = trashed_json(&st, *mid, *idx) {
                page.push(v);
            }
        } else if let Some(v) = st.recording_json(cfg, &sh.api_origin, *mid, *idx) {
            page.push(v);
        }
    }
    let next = st.next_page_token(&key, start + size.min(total.saturating_sub(start)), total);
    Ok(Json(json!({
        "from": from.format("%Y-%m-%d").to_string(),
        "to": to.format("%Y-%m-%d").to_string(),
        "page_size": size,
        "total_records": total,
        "next_page_token": next,
        "meetings": page,
    })))
}

/// A trashed recording as the trash listing shows it (no files to download).
fn trashed_json(st: &SimState, id: i64, idx: usize) -> Option<Value> {
    let m = st.meetings.get(&id)?;
    let inst = m.instances.get(idx)?;
    Some(json!({
        "uuid": inst.uuid,
        "id": id,
        "host_id": m.host_id,
        "topic": m.topic,
        "type": "2",
        "start_time": fmt_time(inst.start),
        "duration": m.duration,
        "total_size": 0,
        "recording_count": 0,
        "recording_files": [],
    }))
}

// ----- past meetings ----------------------------------------------------------------

async fn past_instances(
    State(sh): State<Arc<Shared>>,
    MeetingId(id): MeetingId,
) -> ApiResult<Json<Value>> {
    let st = sh.lock();
    if st.deleted_unheld(id) {
        return Err(ApiError::meeting_not_found());
    }
    let m = st
        .meetings
        .get(&id)
        .ok_or_else(ApiError::meeting_not_found)?;
    let now = st.now();
    let mut list: Vec<_> = m.instances.iter().filter(|i| i.start <= now).collect();
    list.sort_by_key(|i| i.start);
    let meetings: Vec<Value> = list
        .iter()
        .map(|i| json!({"uuid": i.uuid, "start_time": fmt_time(i.start)}))
        .collect();
    Ok(Json(json!({ "meetings": meetings })))
}

async fn past_meeting(
    State(sh): State<Arc<Shared>>,
    InstanceOf(mid, idx, _): PastInstanceOf,
) -> ApiResult<Json<Value>> {
    let st = sh.lock();
    let now = st.now();
    let m = st
        .meetings
        .get(&mid)
        .ok_or_else(ApiError::meeting_not_found)?;
    let inst = m
        .instances
        .get(idx)
        .filter(|i| i.start <= now)
        .ok_or_else(ApiError::meeting_not_found)?;
    let end = inst.end.min(now).max(inst.start);
    Ok(Json(json!({
        "id": mid,
        "uuid": inst.uuid,
        "host_id": m.host_id,
        "type": 2,
        "topic": m.topic,
        "user_name": "Sim Host",
        "user_email": m.host_email,
        "start_time": fmt_time(inst.start),
        "end_time": fmt_time(end),
        "duration": m.duration,
        "total_minutes": (end - inst.start).num_minutes(),
        "participants_count": 2,
        "dept": "",
        "source": "Zoom",
        "has_meeting_summary": false,
    })))
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::sim::{Sim, SimConfig};

    /// Status, and the Zoom error code when the body has one.
    async fn ask(sim: &Sim, method: reqwest::Method, path: &str) -> (u16, Option<i64>) {
        let tok = sim.issue_token();
        let url = format!("{}{path}", sim.api_url());
        let r = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(tok)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Option<Value> = r.json().await.ok();
        (status, body.and_then(|v| v["code"].as_i64()))
    }

    /// The extractors answer in the order the handler prologues did.
    #[tokio::test]
    async fn path_extractors_answer_as_zoom_does() {
        use reqwest::Method;
        let sim = Sim::start(SimConfig::default()).await.unwrap();
        // The action is checked before the recording is looked up.
        let cases = [
            (Method::GET, "/meetings/abc", (404, Some(3001))),
            (
                Method::GET,
                "/past_meetings/12x/instances",
                (404, Some(3001)),
            ),
            (Method::GET, "/past_meetings/nope", (404, Some(3001))),
            (Method::GET, "/meetings/nope/recordings", (404, Some(3301))),
            (
                Method::DELETE,
                "/meetings/nope/recordings?action=shred",
                (400, Some(300)),
            ),
            (
                Method::DELETE,
                "/meetings/nope/recordings/f1?action=shred",
                (400, Some(300)),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(ask(&sim, method, path).await, want, "{path}");
        }
        assert!(sim.report().encoding_errors.is_empty());
        // A uuid with `//` encoded once: logged, and not found.
        assert_eq!(
            ask(&sim, Method::GET, "/meetings/ab%2F%2Fcd/recordings").await,
            (404, Some(3301))
        );
        assert_eq!(sim.report().encoding_errors.len(), 1);
        // Not UTF-8 once decoded: axum's own path rejection, as with `Path<String>`.
        assert_eq!(ask(&sim, Method::GET, "/meetings/%FF").await, (400, None));
    }
}
