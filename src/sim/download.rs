//! Recording downloads in two hops, like Zoom: the API host's `download_url` (Bearer
//! required) redirects to a signed URL on a different host, which serves the bytes with
//! `Range` support and must never receive an `Authorization` header.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::stream;
use sha2::{Digest, Sha256};

use super::RequestLog;
use super::api::ApiError;
use super::conn::ConnCtl;
use super::content::{CHUNK, Content};
use super::faults::{Fault, Hop, Route};
use super::respond::{fault_response, html_error_page, wait};
use super::state::{FileState, Shared};

/// `GET /rec/download/<opaque>` on the API host (the gate has checked the Bearer token).
pub(crate) async fn redirect(State(sh): State<Arc<Shared>>, Path(op): Path<String>) -> Response {
    let cfg = &sh.cfg;
    let st = sh.lock();
    let ready = st.dl_links.get(&op).and_then(|link| {
        if link.generation != st.dl_generation {
            return None; // expired download URL
        }
        let (id, idx) = st.find_uuid(&link.uuid)?;
        let m = st.meetings.get(&id)?;
        let inst = m.instances.get(idx)?;
        let f = inst.files.iter().find(|f| f.key == link.key)?;
        let ok =
            st.has_recording(cfg, m, inst) && st.file_state(cfg, inst, f) == FileState::Completed;
        ok.then_some(())
    });
    if ready.is_none() {
        return ApiError::recording_not_found().into_response();
    }
    let expires = st
        .now()
        .timestamp()
        .saturating_add(cfg.signed_url_ttl.as_secs().min(i64::MAX as u64) as i64);
    drop(st);
    let sig = signature(&sh.sign_key, &op, expires);
    let location = format!("{}/signed/{op}?expires={expires}&sig={sig}", sh.dl_origin);
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn signature(key: &[u8; 32], op: &str, expires: i64) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(op.as_bytes());
    h.update(expires.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

/// The download host's router.
pub(crate) fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/signed/{op}", get(serve))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(sh)
}

fn forbidden(msg: &'static str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/xml")],
        format!("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>{msg}</Message></Error>"),
    )
        .into_response()
}

/// `GET /signed/<opaque>?expires=..&sig=..`: the bytes.
async fn serve(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(ctl): ConnectInfo<ConnCtl>,
    Path(op): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let path = format!("/signed/{op}");
    let (resp, killed) = serve_inner(&sh, &ctl, &op, query.as_deref(), &headers).await;
    let mut st = sh.lock();
    if killed {
        st.counters.connections_killed += 1;
    }
    st.log_request(RequestLog {
        route: Route::SignedDownload,
        method: "GET".into(),
        path,
        query,
        status: if killed { 0 } else { resp.status().as_u16() },
    });
    resp
}

/// How the body of this answer goes wrong, if it does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    Whole,
    Truncate,
    Stall,
}

async fn serve_inner(
    sh: &Arc<Shared>,
    ctl: &ConnCtl,
    op: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> (Response, bool) {
    let fault = {
        let mut st = sh.lock();
        st.count(Route::SignedDownload);
        if let Some(a) = headers.get(header::AUTHORIZATION) {
            let v = String::from_utf8_lossy(a.as_bytes()).into_owned();
            st.report.download_auth_headers.push(v);
        }
        let fault = st.faults.take(Route::SignedDownload, Hop::Signed);
        if let Some(f) = &fault {
            st.counters.faults_fired += 1;
            st.report
                .faults_fired
                .push((Route::SignedDownload, f.label()));
        }
        fault
    };
    let mut mode = BodyMode::Whole;
    match fault {
        None => {}
        Some(Fault::ConnectionReset) => {
            ctl.kill();
            return (StatusCode::INTERNAL_SERVER_ERROR.into_response(), true);
        }
        Some(Fault::Delay(d)) => wait(sh, d).await,
        Some(Fault::TruncatedBody) => mode = BodyMode::Truncate,
        Some(Fault::StalledBody) => mode = BodyMode::Stall,
        Some(Fault::HtmlPage) => return (html_error_page(), false),
        Some(f) => return (fault_response(sh, Route::SignedDownload, &f), false),
    }

    // The signature and its expiry.
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let Some(expires) = get("expires").and_then(|e| e.parse::<i64>().ok()) else {
        return (forbidden("Missing or malformed expires"), false);
    };
    if get("sig").as_deref() != Some(signature(&sh.sign_key, op, expires).as_str()) {
        return (forbidden("Signature does not match"), false);
    }
    if sh.now().timestamp() > expires {
        return (forbidden("Request has expired"), false);
    }

    let found = {
        let st = sh.lock();
        st.dl_links.get(op).and_then(|link| {
            let (id, idx) = st.find_uuid(&link.uuid)?;
            let inst = st.meetings.get(&id)?.instances.get(idx)?;
            let f = inst.files.iter().find(|f| f.key == link.key)?;
            if inst.removed.is_some() || f.removed.is_some() {
                return None;
            }
            let name = format!("{}.{}", f.file_type, f.ext.to_ascii_lowercase());
            Some((f.content.clone(), f.ext, name))
        })
    };
    let Some((content, ext, name)) = found else {
        return ((StatusCode::NOT_FOUND, "Not Found").into_response(), false);
    };
    let (rate, ranges_ignored) = {
        let st = sh.lock();
        (st.download_rate, st.ranges_ignored)
    };
    let len = content.len();
    let etag = content.etag();
    // If-Range (RFC 9110 13.1.5): the range only for the version the client has; a strong
    // comparison of entity tags.
    let if_range_ok = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = match headers.get(header::RANGE) {
        _ if ranges_ignored || !if_range_ok => None,
        None => None,
        Some(v) => match parse_range(v.to_str().unwrap_or(""), len) {
            Some(r) => Some(r),
            None => {
                let resp = (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                )
                    .into_response();
                return (resp, false);
            }
        },
    };
    let (start, end, status) = match range {
        Some((s, e)) => (s, e, StatusCode::PARTIAL_CONTENT),
        None => (0, len, StatusCode::OK),
    };
    let body = body_stream(sh.clone(), content, start, end, mode, rate);
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    let ctype = match ext {
        "MP4" => "video/mp4",
        "M4A" => "audio/mp4",
        "VTT" => "text/vtt",
        "TXT" => "text/plain",
        "JSON" => "application/json",
        _ => "application/octet-stream",
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if !ranges_ignored {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    (resp, false)
}

/// One `bytes=` range (`a-b`, `a-`, `-n`) as `start..end`; `None` when malformed or
/// unsatisfiable (both answered 416).
fn parse_range(v: &str, len: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None; // multipart ranges are not served
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return None;
        }
        return Some((len.saturating_sub(n), len));
    }
    let start: u64 = a.parse().ok()?;
    if start >= len {
        return None;
    }
    let end = if b.is_empty() {
        len
    } else {
        let last: u64 = b.parse().ok()?;
        if last < start {
            return None;
        }
        last.saturating_add(1).min(len)
    };
    Some((start, end))
}

struct BodyState {
    sh: Arc<Shared>,
    content: Content,
    pos: u64,
    end: u64,
    /// Where a truncated or stalled body stops sending.
    cut: u64,
    mode: BodyMode,
    /// The connection's cap, bytes per second, and when this body began.
    rate: Option<u64>,
    began: tokio::time::Instant,
    first: u64,
    _stream: StreamCount,
}

/// Counts a body among those being sent while it lives (dropped when the body ends or the
/// client goes away).
struct StreamCount(Arc<Shared>);

impl StreamCount {
    fn new(sh: Arc<Shared>) -> StreamCount {
        {
            let mut st = sh.lock();
            st.download_streams += 1;
            st.counters.max_download_streams =
                st.counters.max_download_streams.max(st.download_streams);
        }
        StreamCount(sh)
    }
}

impl Drop for StreamCount {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.download_streams = st.download_streams.saturating_sub(1);
    }
}

fn body_stream(
    sh: Arc<Shared>,
    content: Content,
    start: u64,
    end: u64,
    mode: BodyMode,
    rate: Option<u64>,
) -> Body {
    // Send about half (at least one byte when there is more than one) before failing.
    let cut = match mode {
        BodyMode::Whole => end,
        _ => start + ((end - start) / 2).max(1).min(end - start),
    };
    let st = BodyState {
        _stream: StreamCount::new(sh.clone()),
        sh,
        content,
        pos: start,
        end,
        cut,
        mode,
        rate,
        began: tokio::time::Instant::now(),
        first: start,
    };
    let s = stream::unfold(Some(st), |st| async move {
        let mut st = st?;
        if st.pos >= st.cut && st.mode != BodyMode::Whole {
            match st.mode {
                BodyMode::Stall => {
                    let d = st.sh.cfg.stall_for;
                    wait(&st.sh, d).await;
                }
                // Let hyper flush what was sent, so the client sees a short body (real
                // time: this is about the socket, not the sim's clock).
                _ => tokio::time::sleep(Duration::from_millis(30)).await,
            }
            let e = io::Error::new(io::ErrorKind::ConnectionAborted, "sim: body cut short");
            return Some((Err(e), None));
        }
        if st.pos >= st.end {
            return None;
        }
        if let Some(rate) = st.rate {
            // Paced: this chunk leaves when the connection's cap allows it.
            let due = Duration::from_secs_f64((st.pos - st.first) as f64 / rate as f64);
            tokio::time::sleep_until(st.began + due).await;
        }
        let next = (st.pos + CHUNK).min(st.cut).min(st.end);
        let chunk: Bytes = st.content.range(st.pos, next);
        st.sh.lock().counters.bytes_served += chunk.len() as u64;
        st.pos = next;
        Some((Ok::<Bytes, io::Error>(chunk), Some(st)))
    });
    Body::from_stream(s)
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 10)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=4-5", 10), Some((4, 6)));
        assert_eq!(parse_range("bytes=4-50", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=-3", 10), Some((7, 10)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=5-4", 10), None);
        assert_eq!(parse_range("bytes=a-", 10), None);
        assert_eq!(parse_range("items=0-", 10), None);
        assert_eq!(parse_range("bytes=0-1,3-4", 10), None);
    }
}
