//! Streaming, resumable downloads of recording files.
//!
//! - [`ZoomClient::open_download`] sends the request for a byte range (with `If-Range` when
//!   the caller knows the file's validator) and checks the answer's headers: an [`Answer`]
//!   (206 with its range, a 200 whole file, or a 416 at exactly the end) and the file's
//!   validator (strong ETag, else Last-Modified). [`OpenDownload::read_into`] then streams
//!   the body chunk by chunk into a [`ChunkSink`]: constant memory for files of many GB, and
//!   several ranges of one file can be open at once. [`ZoomClient::download`] is both for a
//!   [`DownloadSink`] (an `AsyncWrite` that can start over).
//! - Redirects are followed by hand (at most [`MAX_REDIRECTS`] hops). The bearer token is
//!   sent only to trusted origins (see `trust`); a redirect to any other host (a signed
//!   storage URL) is followed without `Authorization`.
//! - Resume: with `offset > 0` the request carries `Range: bytes=offset-`. A 206 must start
//!   exactly at `offset`. A 200 means the server ignored the range (or `If-Range` did not
//!   match) and sends the whole file: `download` tells the sink to
//!   [`DownloadSink::restart`] before the first byte is written, and the outcome says
//!   `restarted_from_zero`.
//! - An HTML answer (Zoom's error page for a bad token) is an error and writes nothing; a
//!   body shorter than its `Content-Length` is [`ZoomError::Truncated`]; no data for
//!   `read_idle` is [`ZoomError::Stalled`]. Either way the bytes written so far stay in
//!   the sink, so the caller can resume from its length.
//! - Before the body starts, 429, 5xx and transport failures are retried per the policy
//!   (waiting on the client's clock), and a 401 with code 124 renews the token once.
//! - The request and idle timeouts are I/O timeouts: they measure the server, so they run
//!   on tokio's timer, not on the client's clock.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION, RANGE, RETRY_AFTER,
};
use tokio::io::{AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use super::client::ZoomClient;
use super::error::{ApiErrorBody, ZoomError, describe_reqwest, scrub};
use super::retry::{instant_after, parse_retry_after};
use crate::secret::Secret;

const OP: &str = "download";
/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

/// Where downloaded bytes go.
///
/// An `AsyncWrite` that can also start over: when a resumed download is answered with the
/// whole file (HTTP 200 instead of 206), [`DownloadSink::restart`] is called before any
/// byte is written, and must discard what was written before (truncate a file, reset a
/// running digest). Implemented for `tokio::fs::File`, `Vec<u8>`, `Cursor<Vec<u8>>` and
/// `tokio::io::Sink`; wrap your own writer (e.g. file + SHA-256) to add a digest.
pub trait DownloadSink: AsyncWrite + Unpin + Send {
    /// Discard everything written so far; the next byte written is the file's byte 0.
    fn restart(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl DownloadSink for tokio::fs::File {
    async fn restart(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.set_len(0).await?;
        self.seek(io::SeekFrom::Start(0)).await?;
        Ok(())
    }
}

impl DownloadSink for Vec<u8> {
    async fn restart(&mut self) -> io::Result<()> {
        self.clear();
        Ok(())
    }
}

impl DownloadSink for io::Cursor<Vec<u8>> {
    async fn restart(&mut self) -> io::Result<()> {
        self.get_mut().clear();
        self.set_position(0);
        Ok(())
    }
}

impl DownloadSink for tokio::io::Sink {
    async fn restart(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a finished download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadOutcome {
    /// Bytes written to the sink by this call (after a restart: from byte 0).
    pub bytes_written: u64,
    /// The server ignored the range and sent the whole file; the sink was restarted.
    pub restarted_from_zero: bool,
    /// The whole file's length, when the server said (`Content-Range` total or, for a 200,
    /// `Content-Length`).
    pub total_len: Option<u64>,
    pub content_type: Option<String>,
}

/// Parse `Content-Range: bytes a-b/total` (total may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let a: u64 = a.trim().parse().ok()?;
    let b: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (a <= b).then_some((a, b, total))
}

/// `Content-Range: bytes */total` of a 416 answer.
fn parse_unsatisfied_range(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes")?
        .trim_start()
        .strip_prefix("*/")?
        .trim()
        .parse()
        .ok()
}

fn header_str(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

enum Attempt {
    Retry(Duration),
    RenewAndRetry(Secret),
}

/// Which bytes of a file to ask for: `start..end`, or `start..` to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Exclusive; `None` = to the end of the file.
    pub end: Option<u64>,
}

impl ByteRange {
    /// The `Range` header, when one is needed (`None` for the whole file).
    fn header(&self) -> Option<String> {
        match (self.start, self.end) {
            (0, None) => None,
            (a, None) => Some(format!("bytes={a}-")),
            (a, Some(b)) => Some(format!("bytes={a}-{}", b.saturating_sub(1).max(a))),
        }
    }
}

/// What the server answered, before the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 206: bytes `start..end` of a file of `total` bytes (when the server said).
    Partial {
        start: u64,
        end: u64,
        total: Option<u64>,
    },
    /// 200: the whole file from byte 0 — the server ignored the range, or `If-Range` did
    /// not match (the file changed).
    Whole { len: Option<u64> },
    /// 416 for a range that starts exactly at the end: nothing is missing.
    Complete { total: u64 },
}

/// A download whose headers are in; [`OpenDownload::read_into`] streams its body.
#[derive(Debug)]
pub struct OpenDownload {
    resp: Option<reqwest::Response>,
    pub answer: Answer,
    /// The file's strong ETag, else its Last-Modified: what `If-Range` sends back, and what
    /// tells two answers of different versions of the file apart.
    pub validator: Option<String>,
    pub content_type: Option<String>,
    /// Where the redirects led (a signed URL, valid for a while): the file's further ranges
    /// can be asked of it directly, without the API hop and its place in the request budget.
    /// A credential of sorts, so it is kept as a [`Secret`].
    pub redirected_to: Option<Secret>,
    idle: Duration,
    attempt: u32,
}

/// Where a download's bytes go, one chunk at a time, in file order from the answer's first
/// byte. Chunks are `Bytes` so a consumer can hand them on without copying.
pub trait ChunkSink: Send {
    fn put(&mut self, chunk: Bytes) -> impl Future<Output = io::Result<()>> + Send;

    /// The body has paused (no data for `PAUSE`, 100 ms): hand on anything held back, so a stall
    /// or a stop leaves the bytes received so far where a resume finds them.
    fn pause(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A gap in a body this long counts as a pause ([`ChunkSink::pause`]); shorter ones are the
/// ordinary rhythm of a socket.
pub const PAUSE: Duration = Duration::from_millis(100);

/// Any [`DownloadSink`] takes chunks by writing them.
struct WriteAll<'a, W>(&'a mut W);

impl<W: DownloadSink> ChunkSink for WriteAll<'_, W> {
    async fn put(&mut self, chunk: Bytes) -> io::Result<()> {
        self.0.write_all(&chunk).await
    }
}

impl OpenDownload {
    /// Bytes the body will carry, when the server said.
    pub fn body_len(&self) -> Option<u64> {
        self.resp
            .as_ref()
            .and_then(reqwest::Response::content_length)
    }

    /// Streams the body into `sink`; returns the bytes received. `progress` gets the running
    /// count after each chunk. A body shorter than its `Content-Length` is
    /// [`ZoomError::Truncated`], no data for `read_idle` is [`ZoomError::Stalled`]; the bytes
    /// handed over so far stay with the sink.
    pub async fn read_into<S, P>(self, sink: &mut S, mut progress: P) -> Result<u64, ZoomError>
    where
        S: ChunkSink,
        P: FnMut(u64) + Send,
    {
        let Some(resp) = self.resp else {
            return Ok(0);
        };
        let body_len = resp.content_length();
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        let idle = self.idle;
        loop {
            // I/O timeout (tokio's timer, see the module docs); after a pause the sink
            // hands on what it holds.
            let next = match tokio::time::timeout(PAUSE.min(idle), stream.next()).await {
                Ok(next) => Ok(next),
                Err(_) => {
                    sink.pause()
                        .map_err(|source| ZoomError::Io { op: OP, source })?;
                    tokio::time::timeout(idle.saturating_sub(PAUSE), stream.next()).await
                }
            };
            match next {
                Err(_) => {
                    return Err(ZoomError::Stalled {
                        op: OP,
                        idle,
                        received: written,
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(match body_len {
                        Some(expected) if written < expected => ZoomError::Truncated {
                            op: OP,
                            received: written,
                            expected,
                        },
                        _ => ZoomError::Transport {
                            op: OP,
                            attempts: self.attempt,
                            detail: describe_reqwest(e),
                        },
                    });
                }
                Ok(Some(Ok(chunk))) => {
                    let n = chunk.len() as u64;
                    sink.put(chunk)
                        .await
                        .map_err(|source| ZoomError::Io { op: OP, source })?;
                    written += n;
                    progress(written);
                }
            }
        }
        if let Some(expected) = body_len
            && written < expected
        {
            return Err(ZoomError::Truncated {
                op: OP,
                received: written,
                expected,
            });
        }
        Ok(written)
    }
}

impl ZoomClient {
    /// Download `url` into `out`, starting at byte `offset` of the file.
    ///
    /// `progress` is called after each chunk with the position in the file (bytes from the
    /// start of the file now in the sink, i.e. `offset` + written, or written after a
    /// restart). See the module docs for redirects, resume and failure handling.
    pub async fn download<W, P>(
        &self,
        url: &str,
        offset: u64,
        out: &mut W,
        mut progress: P,
    ) -> Result<DownloadOutcome, ZoomError>
    where
        W: DownloadSink,
        P: FnMut(u64) + Send,
    {
        let range = ByteRange {
            start: offset,
            end: None,
        };
        let open = self.open_download(url, range, None).await?;
        let content_type = open.content_type.clone();
        let (restarted, total_len) = match open.answer {
            Answer::Complete { total } => {
                return Ok(DownloadOutcome {
                    bytes_written: 0,
                    restarted_from_zero: false,
                    total_len: Some(total),
                    content_type,
                });
            }
            Answer::Partial { total, .. } => (false, total),
            Answer::Whole { len } => {
                if offset > 0 {
                    out.restart()
                        .await
                        .map_err(|source| ZoomError::Io { op: OP, source })?;
                    tracing::info!(op = OP, offset, "range ignored; restarting from byte 0");
                }
                (offset > 0, len)
            }
        };
        let base = if restarted { 0 } else { offset };
        let written = open
            .read_into(&mut WriteAll(out), |n| progress(base + n))
            .await;
        let flushed = out.flush().await;
        let written = written?;
        flushed.map_err(|source| ZoomError::Io { op: OP, source })?;
        Ok(DownloadOutcome {
            bytes_written: written,
            restarted_from_zero: restarted,
            total_len,
            content_type,
        })
    }

    /// Sends the request for `range` of `url` (with `If-Range: validator` when given and a
    /// range is asked for) and checks the answer's headers; the body is left to
    /// [`OpenDownload::read_into`]. Before the body, 429, 5xx and transport failures are
    /// retried per the policy, and a 401 with code 124 renews the token once.
    pub async fn open_download(
        &self,
        url: &str,
        range: ByteRange,
        if_range: Option<&str>,
    ) -> Result<OpenDownload, ZoomError> {
        let start = Url::parse(url).map_err(|e| ZoomError::InvalidInput {
            op: OP,
            detail: format!("download URL does not parse: {e}"),
        })?;
        if !matches!(start.scheme(), "http" | "https") {
            return Err(ZoomError::InvalidInput {
                op: OP,
                detail: format!("download URL scheme {:?} is not http(s)", start.scheme()),
            });
        }
        let policy = &self.inner.retry;
        let mut attempt = 0u32;
        let mut renewed = false;
        loop {
            attempt += 1;
            let step = match self.try_open(&start, range, if_range, attempt).await {
                Ok(Ok(open)) => return Ok(open),
                Ok(Err(step)) => step,
                Err(e) => return Err(e),
            };
            match step {
                Attempt::RenewAndRetry(stale) if !renewed => {
                    tracing::info!(op = OP, "token refused (124); renewing once");
                    self.inner.auth.invalidate(&stale).await;
                    renewed = true;
                    attempt -= 1;
                }
                Attempt::RenewAndRetry(_) => {
                    return Err(ZoomError::Auth {
                        op: OP,
                        status: Some(401),
                        detail: "token refused again after renewal".to_owned(),
                    });
                }
                Attempt::Retry(delay) => {
                    debug_assert!(attempt < policy.max_attempts);
                    self.wait_to_retry(OP, attempt, delay, "download").await;
                }
            }
        }
    }

    /// One pass: follow redirects, check the answer's headers.
    /// `Ok(Err(_))` asks the caller loop to retry.
    async fn try_open(
        &self,
        start: &Url,
        range: ByteRange,
        if_range: Option<&str>,
        attempt: u32,
    ) -> Result<Result<OpenDownload, Attempt>, ZoomError> {
        let inner = &self.inner;
        let policy = &inner.retry;
        let can_retry = attempt < policy.max_attempts;
        let offset = range.start;
        let range_header = range.header();
        let mut current = start.clone();
        let mut hops = 0usize;
        let (resp, token) = loop {
            // A webhook's download token, while valid, stands in for the client's own on
            // the URL it came with.
            let token = if !inner.trusted.allows(&current) {
                None
            } else if let Some(t) = (hops == 0)
                .then(|| self.download_token_for(start.as_str()))
                .flatten()
            {
                Some(t)
            } else {
                Some(inner.auth.bearer().await?)
            };
            let mut rb = inner.http.get(current.clone());
            if let Some(t) = &token {
                rb = rb.bearer_auth(t.expose());
            }
            if let Some(r) = &range_header {
                rb = rb.header(RANGE, r);
                if let Some(v) = if_range {
                    rb = rb.header(IF_RANGE, v);
                }
            }
            tracing::debug!(
                op = OP,
                host = current.host_str().unwrap_or(""),
                with_auth = token.is_some(),
                offset,
                end = range.end,
                "download request"
            );
            // A request to Zoom's own hosts passes the request budget until its headers are
            // in; the signed file host (a CDN) is not Zoom's API and has no such limit.
            let ticket = match token {
                Some(_) => Some(inner.place().await),
                None => None,
            };
            // I/O timeout (tokio's timer, see the module docs).
            let sent = tokio::time::timeout(inner.timeouts.request, rb.send()).await;
            drop(ticket);
            if token.is_some() {
                // Answers of Zoom's own hosts count as API requests; the file host is none.
                let status = sent
                    .as_ref()
                    .ok()
                    .and_then(|r| r.as_ref().ok())
                    .map(|r| r.status().as_u16());
                self.count_answer(OP, status);
            }
            let detail = match sent {
                Ok(Ok(resp)) => {
                    if resp.status().is_redirection() && resp.status() != StatusCode::NOT_MODIFIED {
                        hops += 1;
                        if hops > MAX_REDIRECTS {
                            return Err(ZoomError::Redirect {
                                op: OP,
                                detail: format!("more than {MAX_REDIRECTS} redirects"),
                            });
                        }
                        let next = header_str(&resp, LOCATION)
                            .and_then(|loc| current.join(&loc).ok())
                            .ok_or_else(|| ZoomError::Redirect {
                                op: OP,
                                detail: format!(
                                    "HTTP {} without a usable Location",
                                    resp.status().as_u16()
                                ),
                            })?;
                        if !matches!(next.scheme(), "http" | "https") {
                            return Err(ZoomError::Redirect {
                                op: OP,
                                detail: format!("redirect to scheme {:?}", next.scheme()),
                            });
                        }
                        current = next;
                        continue;
                    }
                    break (resp, token);
                }
                Ok(Err(e)) => describe_reqwest(e),
                Err(_) => format!("no answer within {:?}", inner.timeouts.request),
            };
            // No answer at all: a GET is safe to repeat.
            if can_retry {
                return Ok(Err(Attempt::Retry(policy.backoff(attempt - 1))));
            }
            return Err(ZoomError::Transport {
                op: OP,
                attempts: attempt,
                detail,
            });
        };

        let status = resp.status();
        let content_type = header_str(&resp, CONTENT_TYPE);
        let html = content_type
            .as_deref()
            .is_some_and(|c| c.trim_start().to_ascii_lowercase().starts_with("text/html"));

        if !(status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT) {
            if status == StatusCode::UNAUTHORIZED
                && can_retry
                && token.is_some()
                && token == self.download_token_for(start.as_str())
            {
                // The webhook's token was refused (expired early, revoked): the client's
                // own token does the next attempt.
                self.forget_download_token(start.as_str());
                return Ok(Err(Attempt::Retry(Duration::ZERO)));
            }
            return self
                .download_error(resp, token, offset, html, can_retry, attempt)
                .await;
        }
        if html {
            // Zoom's error page comes as 200 text/html: never write it as a recording.
            return Err(ZoomError::HtmlErrorPage {
                op: OP,
                status: status.as_u16(),
            });
        }

        let answer = if status == StatusCode::PARTIAL_CONTENT {
            let cr = header_str(&resp, CONTENT_RANGE).unwrap_or_default();
            match parse_content_range(&cr) {
                Some((a, b, total)) if a == offset => Answer::Partial {
                    start: a,
                    end: b + 1,
                    total,
                },
                _ => {
                    return Err(ZoomError::RangeMismatch {
                        op: OP,
                        expected_start: offset,
                        detail: if cr.is_empty() {
                            "206 without Content-Range".to_owned()
                        } else {
                            format!("Content-Range {cr:?}")
                        },
                    });
                }
            }
        } else {
            Answer::Whole {
                len: resp.content_length(),
            }
        };
        let validator = header_str(&resp, ETAG)
            .filter(|e| !e.trim_start().starts_with("W/"))
            .or_else(|| header_str(&resp, LAST_MODIFIED))
            .map(|v| v.trim().to_owned());
        Ok(Ok(OpenDownload {
            resp: Some(resp),
            answer,
            validator,
            content_type,
            redirected_to: (hops > 0).then(|| Secret::new(current.as_str())),
            idle: inner.timeouts.read_idle,
            attempt,
        }))
    }

    /// A download answered with neither 200 nor 206.
    async fn download_error(
        &self,
        resp: reqwest::Response,
        token: Option<Secret>,
        offset: u64,
        html: bool,
        can_retry: bool,
        attempt: u32,
    ) -> Result<Result<OpenDownload, Attempt>, ZoomError> {
        let inner = &self.inner;
        let status = resp.status();
        let code = status.as_u16();
        let now = inner.clock.now();
        let retry_after = header_str(&resp, RETRY_AFTER).and_then(|v| parse_retry_after(&v, now));
        let content_range = header_str(&resp, CONTENT_RANGE);
        // Error bodies are small; bound the wait anyway (an I/O timeout, on tokio's timer).
        let body = tokio::time::timeout(inner.timeouts.request, resp.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let api: ApiErrorBody = serde_json::from_slice(&body).unwrap_or_default();
        let secrets: Vec<&str> = token
            .iter()
            .map(Secret::expose)
            .chain([inner.auth.credential_secret().expose()])
            .collect();
        let message = scrub(api.message.as_deref().unwrap_or(""), &secrets);

        if status == StatusCode::RANGE_NOT_SATISFIABLE && offset > 0 {
            // Asked for bytes past the end: complete already if the file is exactly
            // `offset` long.
            return match content_range.as_deref().and_then(parse_unsatisfied_range) {
                Some(total) if total == offset => Ok(Ok(OpenDownload {
                    resp: None,
                    answer: Answer::Complete { total },
                    validator: None,
                    content_type: None,
                    redirected_to: None,
                    idle: inner.timeouts.read_idle,
                    attempt,
                })),
                _ => Err(ZoomError::RangeMismatch {
                    op: OP,
                    expected_start: offset,
                    detail: format!(
                        "HTTP 416, Content-Range {:?}",
                        content_range.unwrap_or_default()
                    ),
                }),
            };
        }
        if status == StatusCode::UNAUTHORIZED {
            if let (Some(t), Some(124)) = (token, api.code) {
                return Ok(Err(Attempt::RenewAndRetry(t)));
            }
            return Err(ZoomError::Auth {
                op: OP,
                status: Some(code),
                detail: message,
            });
        }
        if code == 429 || status.is_server_error() {
            let too_long = retry_after.is_some_and(|d| d > inner.retry.max_retry_after);
            if can_retry && !too_long {
                let delay = retry_after.unwrap_or_else(|| inner.retry.backoff(attempt - 1));
                return Ok(Err(Attempt::Retry(delay)));
            }
            if code == 429 {
                return Err(ZoomError::RateLimited {
                    op: OP,
                    attempts: attempt,
                    retry_at: retry_after.and_then(|d| instant_after(now, d)),
                });
            }
        }
        Err(match code {
            404 => ZoomError::NotFound {
                op: OP,
                code: api.code,
                message,
            },
            _ if html => ZoomError::HtmlErrorPage {
                op: OP,
                status: code,
            },
            _ => ZoomError::Api {
                op: OP,
                status: code,
                code: api.code,
                message,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, 199, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("bytes 5-4/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_unsatisfied_range("bytes */1000"), Some(1000));
        assert_eq!(parse_unsatisfied_range("bytes 1-2/3"), None);
    }

    #[tokio::test]
    async fn sinks_restart() {
        let mut v = b"abc".to_vec();
        v.restart().await.unwrap();
        assert!(v.is_empty());
        let dir = std::env::temp_dir().join(format!("zoomd-sink-{}", std::process::id()));
        let mut f = tokio::fs::File::create(&dir).await.unwrap();
        f.write_all(b"old data").await.unwrap();
        f.restart().await.unwrap();
        f.write_all(b"new").await.unwrap();
        f.flush().await.unwrap();
        drop(f);
        assert_eq!(tokio::fs::read(&dir).await.unwrap(), b"new");
        let _ = tokio::fs::remove_file(&dir).await;
    }
}
