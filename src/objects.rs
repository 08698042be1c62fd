//! The archive in S3-compatible object storage (`archive = "s3://bucket/prefix"`), through
//! the `object_store` crate.
//!
//! A file goes up as a multipart upload to a staging key (`<prefix>/.partial/<path>`), hashed
//! on the way, in parts of [`PART_SIZE`] with at most [`PARTS_IN_FLIGHT`] sent at once, so
//! memory stays flat at any file size. Once complete, its size is read back, then a
//! server-side copy puts it at its final key with the `sha256` metadata (S3 fixes an object's
//! metadata when the upload is created, before the digest is known), the copy's size and
//! metadata are read back, and the staging object is deleted. So an object at a final key is
//! always whole and carries its digest, like a local file renamed from its `.part`.
//!
//! An interrupted upload is aborted and the file starts again (not resumed): the sha256 state
//! of the bytes already sent cannot be kept across a crash, and hashing them again would mean
//! reading them from Zoom anyway. The sequence for a writer: [`ObjectArchive::begin`] (creates
//! the upload and records it in `object_uploads` before the first part), [`ObjectWriter::write`]
//! each buffer, then [`ObjectWriter::finish`] or [`ObjectWriter::abort`] (either forgets the
//! record); at start, [`ObjectArchive::abort_recorded`] aborts what a crash left.
//!
//! Credentials are static keys (environment or systemd credentials) and never appear in an
//! error: every message names the endpoint and bucket and is scrubbed of the secret and token.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ClientOptions, GetOptions, ObjectStore, PutPayload, RetryConfig};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

use chrono::{DateTime, Utc};

use crate::config::S3Location;
use crate::secret::Secret;
use crate::store::Store;

/// Bytes per multipart part: above S3's 5 MiB minimum, and 10,000 parts (S3's maximum) of it
/// hold 78 GiB, past any recording Zoom makes.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts sent at once per file. With the part being filled, a file holds at most
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE` = 24 MiB.
pub const PARTS_IN_FLIGHT: usize = 2;
/// The largest object one CopyObject request copies (S3's limit); a larger one is streamed
/// from the staging key to the final key through zoomd instead.
pub const COPY_MAX: u64 = 5 * 1024 * 1024 * 1024;
/// The metadata key (`x-amz-meta-sha256`) that holds the hex sha256 of an archived object.
pub const SHA256_METADATA: &str = "sha256";
/// Where uploads in progress live, under the prefix; never a final key (sanitised archive
/// paths do not start with a dot).
pub const STAGING_DIR: &str = ".partial";
const PROBE_DIR: &str = ".zoomd-probe";

/// Path characters kept as they are in a request URL: RFC 3986's unreserved ones and `/`.
const KEY_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("{place}: {message}")]
    Setup { place: String, message: String },
    #[error("{place}: {op} {key}: {message}")]
    Request {
        place: String,
        op: &'static str,
        key: String,
        message: String,
    },
    #[error("{place}: {key}: {message}")]
    Verify {
        place: String,
        key: String,
        message: String,
    },
    /// Reading or writing the record of uploads (`object_uploads`) failed.
    #[error("{place}: the record of uploads: {source}")]
    Store {
        place: String,
        #[source]
        source: Box<crate::store::StoreError>,
    },
    #[error("{place}: '{key}' is not an archive key: {message}")]
    Key {
        place: String,
        key: String,
        message: String,
    },
}

/// Where the S3 endpoint and credentials come from: the standard `AWS_*` variables, each
/// credential else a systemd credential of the same name in lower case
/// (`$CREDENTIALS_DIRECTORY/aws_secret_access_key`).
#[derive(Debug, Clone, Default)]
pub struct S3Env {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// Default: AWS itself, `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// Needed for an `http://` endpoint (a loopback test server).
    pub allow_http: bool,
}

impl S3Env {
    pub fn from_process() -> Result<S3Env, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let dir = var("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let credential = |env: &str| -> Result<Option<String>, String> {
            if let Some(v) = var(env) {
                return Ok(Some(v));
            }
            let Some(path) = dir
                .as_ref()
                .map(|d| d.join(env.to_ascii_lowercase()))
                .filter(|p| p.exists())
            else {
                return Ok(None);
            };
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("systemd credential {}: {e}", path.display()))?;
            Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()))
        };
        Ok(S3Env {
            access_key_id: credential("AWS_ACCESS_KEY_ID")?,
            secret_access_key: credential("AWS_SECRET_ACCESS_KEY")?.map(Secret::new),
            session_token: credential("AWS_SESSION_TOKEN")?.map(Secret::new),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            endpoint: var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT")),
            allow_http: var("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }
}

/// An upload in progress, as the caller records it (before the first part) so that the next
/// start can abort it: `key` is the final key relative to the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
}

/// What a finished upload verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// Relative to the prefix, as stored in the database.
    pub key: String,
    pub size: u64,
    /// Hex sha256, equal to the object's `sha256` metadata.
    pub sha256: String,
}

/// An object's size and `sha256` metadata, as HEAD reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub sha256: Option<String>,
}

/// The S3 archive: a bucket and prefix at an endpoint.
#[derive(Clone)]
pub struct ObjectArchive {
    inner: Arc<Inner>,
}

struct Inner {
    store: AmazonS3,
    location: S3Location,
    /// `https://host/bucket` (path style, as `object_store` addresses it).
    bucket_url: String,
    region: String,
    /// Scrubbed from every message, in case a server echoes one (a token in an error body).
    secrets: Vec<Secret>,
    /// For the CopyObject that replaces metadata, which `object_store` does not offer.
    http: reqwest::Client,
    /// "s3://bucket/prefix at endpoint", the start of every error.
    place: String,
    copy_max: u64,
}

impl fmt::Debug for ObjectArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.place)
    }
}

impl ObjectArchive {
    pub fn new(location: &S3Location, env: &S3Env) -> Result<ObjectArchive, ObjectError> {
        let region = env.region.clone().unwrap_or_else(|| "us-east-1".into());
        let endpoint = env
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint = endpoint.trim_end_matches('/').to_string();
        // Checked before it is named in any message: user info in it could be a secret.
        let parsed = url::Url::parse(&endpoint);
        let clean = parsed.as_ref().is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
        });
        if !clean {
            return Err(ObjectError::Setup {
                place: location.to_string(),
                message: "AWS_ENDPOINT_URL is not an http(s) URL without user info or query, e.g. https://s3.example.org".into(),
            });
        }
        let place = format!("{location} at {endpoint}");
        let setup = |message: String| ObjectError::Setup {
            place: place.clone(),
            message,
        };
        let (Some(key_id), Some(secret)) = (&env.access_key_id, &env.secret_access_key) else {
            return Err(setup(
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or systemd credentials aws_access_key_id and aws_secret_access_key (LoadCredential=)".into(),
            ));
        };
        if endpoint.starts_with("http://") && !env.allow_http {
            return Err(setup(
                "the endpoint is plain http: set AWS_ALLOW_HTTP=true (for a loopback test server only)".into(),
            ));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&region)
            .with_endpoint(&endpoint)
            .with_access_key_id(key_id)
            .with_secret_access_key(secret.expose())
            // A dead endpoint fails `check --online` within a minute, not after several.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
                ..RetryConfig::default()
            })
            .with_client_options(
                // allow_http lives in the client options: set here, not on the builder,
                // whose with_client_options replaces them whole.
                ClientOptions::new()
                    .with_allow_http(env.allow_http)
                    .with_connect_timeout(Duration::from_secs(10))
                    .with_timeout(Duration::from_secs(300)),
            );
        let mut secrets = vec![secret.clone()];
        if let Some(token) = &env.session_token {
            builder = builder.with_token(token.expose());
            secrets.push(token.clone());
        }
        let store = builder
            .build()
            .map_err(|e| setup(scrub(&e.to_string(), &secrets)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| setup(format!("HTTP client: {e}")))?;
        Ok(ObjectArchive {
            inner: Arc::new(Inner {
                store,
                location: location.clone(),
                bucket_url: format!("{endpoint}/{}", location.bucket),
                region,
                secrets,
                http,
                place,
                copy_max: COPY_MAX,
            }),
        })
    }

    /// The same archive with another CopyObject limit: tests reach the streamed copy of a
    /// large object with small ones.
    pub fn with_copy_max(&self, copy_max: u64) -> ObjectArchive {
        let i = &self.inner;
        ObjectArchive {
            inner: Arc::new(Inner {
                store: i.store.clone(),
                location: i.location.clone(),
                bucket_url: i.bucket_url.clone(),
                region: i.region.clone(),
                secrets: i.secrets.clone(),
                http: i.http.clone(),
                place: i.place.clone(),
                copy_max,
            }),
        }
    }

    /// "s3://bucket/prefix at endpoint".
    pub fn place(&self) -> &str {
        &self.inner.place
    }

    /// The object key (under the prefix) of an archive path, which must be relative and
    /// without empty, `.` or `..` parts.
    fn path(&self, key: &str) -> Result<ObjectPath, ObjectError> {
        let bad = |message: &str| ObjectError::Key {
            place: self.inner.place.clone(),
            key: key.to_string(),
            message: message.to_string(),
        };
        if key.is_empty() || key.starts_with('/') {
            return Err(bad("it must be a relative path"));
        }
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(bad("it has an empty, '.' or '..' part"));
        }
        let full = match self.inner.location.prefix.as_str() {
            "" => key.to_string(),
            prefix => format!("{prefix}/{key}"),
        };
        ObjectPath::parse(&full).map_err(|e| bad(&e.to_string()))
    }

    fn staging(&self, key: &str) -> Result<ObjectPath, ObjectError> {
        self.path(&format!("{STAGING_DIR}/{key}"))
    }

    fn failed(&self, op: &'static str, key: &str, e: &object_store::Error) -> ObjectError {
        let hint = match e {
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                " (access denied: check the credentials and that they may use this bucket)"
            }
            _ => "",
        };
        ObjectError::Request {
            place: self.inner.place.clone(),
            op,
            key: key.to_string(),
            message: format!(
                "{}{hint}",
                scrub(&tidy(&e.to_string()), &self.inner.secrets)
            ),
        }
    }

    fn stored(&self, source: crate::store::StoreError) -> ObjectError {
        ObjectError::Store {
            place: self.inner.place.clone(),
            source: Box::new(source),
        }
    }

    fn verify(&self, key: &str, message: String) -> ObjectError {
        ObjectError::Verify {
            place: self.inner.place.clone(),
            key: key.to_string(),
            message,
        }
    }

    /// Starts archiving `key`: creates its multipart upload at the staging key and, given a
    /// store, records it (`object_uploads`, at `now`) before any part is sent, so that a
    /// crash leaves nothing the next start cannot abort ([`abort_recorded`](Self::abort_recorded)).
    /// The writer forgets the record once the upload is finished or aborted.
    pub async fn begin(
        &self,
        store: Option<&Store>,
        key: &str,
        file_id: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<ObjectWriter, ObjectError> {
        let staging = self.staging(key)?;
        let upload_id = self
            .inner
            .store
            .create_multipart(&staging)
            .await
            .map_err(|e| self.failed("create multipart upload", key, &e))?;
        let upload = Upload {
            key: key.to_string(),
            upload_id,
        };
        let record = store.map(|store| Record {
            store: store.clone(),
            file_id,
            at: now,
        });
        if let Some(r) = &record
            && let Err(e) = r.add(self, &upload).await
        {
            // Not on record, so abort it now.
            let _ = self.abort_upload(&upload).await;
            return Err(e);
        }
        Ok(ObjectWriter::new(self.clone(), upload, staging, record))
    }

    /// Aborts an upload (one recorded before a crash, or a failed one) and deletes the
    /// staging object, in case it had completed. The upload may be the staging key's or the
    /// final key's (the streamed copy's): both are tried. Idempotent: an upload S3 no longer
    /// knows counts as aborted.
    pub async fn abort_upload(&self, upload: &Upload) -> Result<(), ObjectError> {
        let staging = self.staging(&upload.key)?;
        for path in [&staging, &self.path(&upload.key)?] {
            match self
                .inner
                .store
                .abort_multipart(path, &upload.upload_id)
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.failed("abort multipart upload", &upload.key, &e)),
            }
        }
        match self.inner.store.delete(&staging).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete staging object", &upload.key, &e)),
        }
    }

    /// At start: aborts every upload the database still records (a crash's), deletes its
    /// staging object and forgets it. Returns how many there were.
    pub async fn abort_recorded(&self, store: &Store) -> Result<usize, ObjectError> {
        let stored = |source| self.stored(source);
        let rows = store.object_uploads().await.map_err(stored)?;
        for row in &rows {
            let upload = Upload {
                key: row.key.clone(),
                upload_id: row.upload_id.clone(),
            };
            self.abort_upload(&upload).await?;
            store
                .forget_object_upload(&row.upload_id)
                .await
                .map_err(stored)?;
            tracing::info!(key = %row.key, "aborted an unfinished upload left by an earlier run");
        }
        Ok(rows.len())
    }

    /// The size and `sha256` metadata of `key`; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        self.head_path(key, &self.path(key)?).await
    }

    async fn head_path(
        &self,
        key: &str,
        path: &ObjectPath,
    ) -> Result<Option<ObjectInfo>, ObjectError> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self.inner.store.get_opts(path, options).await {
            Ok(r) => Ok(Some(ObjectInfo {
                size: r.meta.size,
                sha256: r
                    .attributes
                    .get(&Attribute::Metadata(SHA256_METADATA.into()))
                    .map(|v| v.as_ref().to_string()),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("head", key, &e)),
        }
    }

    /// The whole object (small ones: the probe and tests).
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectError> {
        let path = self.path(key)?;
        let r = self
            .inner
            .store
            .get(&path)
            .await
            .map_err(|e| self.failed("get", key, &e))?;
        r.bytes().await.map_err(|e| self.failed("get", key, &e))
    }

    /// Deletes `key`; no such object is no error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        match self.inner.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", key, &e)),
        }
    }

    /// Proves access for `check --online`: archives a small object under
    /// `<prefix>/.zoomd-probe/` the way a recording is archived (multipart, copy with
    /// metadata, read back), reads it back whole, then deletes it. Returns its key.
    pub async fn probe(&self) -> Result<String, ObjectError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("{PROBE_DIR}/{}-{nanos}", std::process::id());
        let body = format!("zoomd check --online {nanos}\n").into_bytes();
        // No record: the probe runs without the database; a failure aborts at once.
        let mut w = self.begin(None, &key, None, Utc::now()).await?;
        w.write(&body).await?;
        w.finish(body.len() as u64).await?;
        let back = self.get(&key).await;
        let deleted = self.delete(&key).await;
        if back? != body {
            return Err(self.verify(&key, "read back other bytes than were written".into()));
        }
        deleted?;
        if self.head(&key).await?.is_some() {
            return Err(self.verify(&key, "still there after delete".into()));
        }
        Ok(key)
    }

    /// Puts the complete staging object of `key` at its final key with the `sha256`
    /// metadata.
    async fn place_with_digest(
        &self,
        key: &str,
        size: u64,
        sha256: &str,
        record: Option<&Record>,
    ) -> Result<(), ObjectError> {
        if size <= self.inner.copy_max {
            self.copy_object(key, sha256).await
        } else {
            self.stream_copy(key, sha256, record).await
        }
    }

    /// A request `object_store` does not offer, signed with its SigV4 signer; (status, body).
    async fn signed(
        &self,
        op: &'static str,
        key: &str,
        method: http::Method,
        url: &str,
        headers: &[(String, String)],
    ) -> Result<(http::StatusCode, String), ObjectError> {
        let i = &self.inner;
        let credential = i
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| self.failed(op, key, &e))?;
        let fail = |message: String| ObjectError::Request {
            place: i.place.clone(),
            op,
            key: key.to_string(),
            message: scrub(&message, &i.secrets),
        };
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .header(http::header::CONTENT_LENGTH, "0");
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let mut request = builder
            .body(object_store::client::HttpRequestBody::empty())
            .map_err(|e| fail(format!("cannot build the request: {e}")))?;
        AwsAuthorizer::new(&credential, "s3", &i.region).authorize(&mut request, None);
        let response = i
            .http
            .request(method, url)
            .headers(request.headers().clone())
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        Ok((status, body))
    }

    fn refused(
        &self,
        op: &'static str,
        key: &str,
        status: http::StatusCode,
        body: &str,
    ) -> ObjectError {
        let denied = if matches!(status.as_u16(), 401 | 403) {
            " (access denied: check the credentials and that they may use this bucket)"
        } else {
            ""
        };
        ObjectError::Request {
            place: self.inner.place.clone(),
            op,
            key: key.to_string(),
            message: scrub(
                &tidy(&format!("HTTP {status}{denied}: {body}")),
                &self.inner.secrets,
            ),
        }
    }

    fn url(&self, path: &ObjectPath) -> String {
        format!(
            "{}/{}",
            self.inner.bucket_url,
            utf8_percent_encode(path.as_ref(), KEY_ENCODE)
        )
    }

    /// CopyObject from the staging key with `x-amz-metadata-directive: REPLACE`: the crate
    /// copies objects but keeps their metadata.
    async fn copy_object(&self, key: &str, sha256: &str) -> Result<(), ObjectError> {
        let from = self.staging(key)?;
        let url = self.url(&self.path(key)?);
        let source = format!(
            "{}/{}",
            self.inner.location.bucket,
            utf8_percent_encode(from.as_ref(), KEY_ENCODE)
        );
        let headers = [
            ("x-amz-copy-source".to_string(), source),
            (
                "x-amz-metadata-directive".to_string(),
                "REPLACE".to_string(),
            ),
            (format!("x-amz-meta-{SHA256_METADATA}"), sha256.to_string()),
        ];
        let (status, body) = self
            .signed("copy", key, http::Method::PUT, &url, &headers)
            .await?;
        // S3 may answer 200 and report a failed copy in the body.
        if !status.is_success() || !body.contains("CopyObjectResult") {
            return Err(self.refused("copy", key, status, &body));
        }
        Ok(())
    }

    /// CreateMultipartUpload at the final key with the `sha256` metadata (the crate's
    /// `MultipartStore` creates uploads without metadata, and its uploads that take
    /// metadata do not tell their id, which must go on record).
    async fn create_with_digest(&self, key: &str, sha256: &str) -> Result<String, ObjectError> {
        let url = format!("{}?uploads=", self.url(&self.path(key)?));
        let headers = [(format!("x-amz-meta-{SHA256_METADATA}"), sha256.to_string())];
        let op = "create multipart upload";
        let (status, body) = self
            .signed(op, key, http::Method::POST, &url, &headers)
            .await?;
        let id = body
            .split_once("<UploadId>")
            .and_then(|(_, rest)| rest.split_once("</UploadId>"))
            .map(|(id, _)| id.to_string());
        match id {
            Some(id) if status.is_success() && !id.is_empty() => Ok(id),
            _ => Err(self.refused(op, key, status, &body)),
        }
    }

    /// The copy of an object past CopyObject's limit: read from the staging key and written
    /// to the final key by a multipart upload created with the metadata (on record like the
    /// first), hashed again on the way. Memory stays bounded like the first upload's, at the
    /// price of moving the bytes twice.
    async fn stream_copy(
        &self,
        key: &str,
        sha256: &str,
        record: Option<&Record>,
    ) -> Result<(), ObjectError> {
        use futures_util::StreamExt;
        let upload = Upload {
            key: key.to_string(),
            upload_id: self.create_with_digest(key, sha256).await?,
        };
        if let Some(r) = record
            && let Err(e) = r.add(self, &upload).await
        {
            let _ = self.abort_upload(&upload).await;
            return Err(e);
        }
        let mut w = ObjectWriter::new(self.clone(), upload.clone(), self.path(key)?, None);
        let copied = async {
            let from = self.staging(key)?;
            let op = "copy (streamed)";
            let mut stream = self
                .inner
                .store
                .get(&from)
                .await
                .map_err(|e| self.failed(op, key, &e))?
                .into_stream();
            while let Some(chunk) = stream.next().await {
                w.write(&chunk.map_err(|e| self.failed(op, key, &e))?)
                    .await?;
            }
            let copied = w.complete().await?;
            if copied != sha256 {
                return Err(self.verify(
                    key,
                    format!("the staging object reads back as sha256 {copied}, not {sha256}"),
                ));
            }
            Ok(())
        }
        .await;
        let settled = match &copied {
            Ok(()) => Ok(()),
            Err(_) => {
                w.in_flight.abort_all();
                self.abort_upload(&upload).await
            }
        };
        if let (Some(r), Ok(())) = (record, settled) {
            r.forget(self, &upload).await?;
        }
        copied
    }
}

/// A writer's record of its uploads in the database.
#[derive(Clone)]
struct Record {
    store: Store,
    file_id: Option<i64>,
    at: DateTime<Utc>,
}

impl Record {
    async fn add(&self, archive: &ObjectArchive, upload: &Upload) -> Result<(), ObjectError> {
        self.store
            .record_object_upload(&upload.upload_id, &upload.key, self.file_id, self.at)
            .await
            .map_err(|source| archive.stored(source))
    }

    async fn forget(&self, archive: &ObjectArchive, upload: &Upload) -> Result<(), ObjectError> {
        self.store
            .forget_object_upload(&upload.upload_id)
            .await
            .map_err(|source| archive.stored(source))
    }
}

/// Feeds one upload: buffers up to a part, hashes every byte, sends parts with at most
/// [`PARTS_IN_FLIGHT`] at once. A sequential writer calls [`write`](Self::write) with each
/// buffer and then [`finish`](Self::finish) or [`abort`](Self::abort); dropping it
/// unfinished (a crash) leaves the upload on record for [`ObjectArchive::abort_recorded`].
pub struct ObjectWriter {
    archive: ObjectArchive,
    upload: Upload,
    /// Where the parts go: the staging key (or the final key, for the streamed copy).
    target: ObjectPath,
    record: Option<Record>,
    hasher: Sha256,
    buf: BytesMut,
    next_part: usize,
    in_flight: JoinSet<Result<(usize, PartId), ObjectError>>,
    parts: Vec<Option<PartId>>,
    written: u64,
}

impl ObjectWriter {
    fn new(
        archive: ObjectArchive,
        upload: Upload,
        target: ObjectPath,
        record: Option<Record>,
    ) -> ObjectWriter {
        ObjectWriter {
            archive,
            upload,
            target,
            record,
            hasher: Sha256::new(),
            buf: BytesMut::with_capacity(PART_SIZE),
            next_part: 0,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            written: 0,
        }
    }

    pub fn upload(&self) -> &Upload {
        &self.upload
    }

    /// Bytes accepted so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub async fn write(&mut self, mut data: &[u8]) -> Result<(), ObjectError> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        while !data.is_empty() {
            let room = PART_SIZE - self.buf.len();
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() == PART_SIZE {
                self.send_part().await?;
            }
        }
        Ok(())
    }

    /// Sends the buffer as the next part, after waiting for a free slot.
    async fn send_part(&mut self) -> Result<(), ObjectError> {
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.join_one().await?;
        }
        let data = std::mem::replace(&mut self.buf, BytesMut::with_capacity(PART_SIZE)).freeze();
        let idx = self.next_part;
        self.next_part += 1;
        let archive = self.archive.clone();
        let upload = self.upload.clone();
        let target = self.target.clone();
        self.in_flight.spawn(async move {
            archive
                .inner
                .store
                .put_part(&target, &upload.upload_id, idx, PutPayload::from(data))
                .await
                .map(|part| (idx, part))
                .map_err(|e| archive.failed("upload part", &upload.key, &e))
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), ObjectError> {
        let Some(joined) = self.in_flight.join_next().await else {
            return Ok(());
        };
        let (idx, part) = joined.map_err(|e| ObjectError::Request {
            place: self.archive.inner.place.clone(),
            op: "upload part",
            key: self.upload.key.clone(),
            message: format!("the part's task ended: {e}"),
        })??;
        if self.parts.len() <= idx {
            self.parts.resize(idx + 1, None);
        }
        self.parts[idx] = Some(part);
        Ok(())
    }

    /// Gives the upload up (the download failed or is being stopped): parts in flight are
    /// cancelled, the upload is aborted and its record forgotten.
    pub async fn abort(mut self) -> Result<(), ObjectError> {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        self.archive.abort_upload(&self.upload).await?;
        match &self.record {
            Some(r) => r.forget(&self.archive, &self.upload).await,
            None => Ok(()),
        }
    }

    /// Sends the rest, completes the upload and verifies: the byte count equals
    /// `expected_size` (Zoom's `file_size`) before completing, the staging object's size
    /// after, and the final object's size and `sha256` metadata after the copy. On a
    /// failure the upload is aborted (its record forgotten only once that worked, else the
    /// next start aborts it).
    pub async fn finish(mut self, expected_size: u64) -> Result<Archived, ObjectError> {
        let result = self.finish_inner(expected_size).await;
        let settled = match &result {
            Ok(_) => Ok(()),
            Err(_) => {
                self.in_flight.abort_all();
                self.archive.abort_upload(&self.upload).await
            }
        };
        if let (Some(r), Ok(())) = (&self.record, settled)
            && let Err(e) = r.forget(&self.archive, &self.upload).await
        {
            // What is archived stays so; the stale record costs one no-op abort at start.
            tracing::warn!(key = %self.upload.key, "{e}");
        }
        result
    }

    /// Sends what is buffered, waits for every part, completes the upload at its target and
    /// returns the hex sha256 of the bytes.
    async fn complete(&mut self) -> Result<String, ObjectError> {
        let key = self.upload.key.clone();
        if !self.buf.is_empty() {
            self.send_part().await?;
        }
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        let parts: Vec<PartId> = std::mem::take(&mut self.parts)
            .into_iter()
            .collect::<Option<_>>()
            .ok_or_else(|| {
                self.archive
                    .verify(&key, "a part's result is missing".into())
            })?;
        self.archive
            .inner
            .store
            .complete_multipart(&self.target, &self.upload.upload_id, parts)
            .await
            .map_err(|e| self.archive.failed("complete multipart upload", &key, &e))?;
        Ok(hex::encode(std::mem::take(&mut self.hasher).finalize()))
    }

    async fn finish_inner(&mut self, expected_size: u64) -> Result<Archived, ObjectError> {
        let key = self.upload.key.clone();
        let archive = self.archive.clone();
        if self.written != expected_size {
            return Err(archive.verify(
                &key,
                format!(
                    "{} bytes written, Zoom's file_size is {expected_size}",
                    self.written
                ),
            ));
        }
        let sha256 = self.complete().await?;
        let staging = archive.staging(&key)?;
        let staged = archive.head_path(&key, &staging).await?;
        if staged.as_ref().map(|i| i.size) != Some(expected_size) {
            return Err(archive.verify(
                &key,
                format!(
                    "the completed upload has {} bytes, Zoom's file_size is {expected_size}",
                    staged.map_or("no".into(), |i| i.size.to_string())
                ),
            ));
        }
        archive
            .place_with_digest(&key, expected_size, &sha256, self.record.as_ref())
            .await?;
        let placed = archive.head(&key).await?;
        match placed {
            Some(ObjectInfo {
                size,
                sha256: Some(meta),
            }) if size == expected_size && meta == sha256 => {}
            other => {
                // A wrong copy must not stay where it counts as archived.
                let _ = archive.delete(&key).await;
                return Err(archive.verify(
                    &key,
                    format!(
                        "after the copy HEAD reports {other:?}; expected {expected_size} bytes and sha256 {sha256}"
                    ),
                ));
            }
        }
        match archive.inner.store.delete(&staging).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(archive.failed("delete staging object", &key, &e)),
        }
        Ok(Archived {
            key,
            size: expected_size,
            sha256,
        })
    }
}

/// A download streams straight into the writer (`OpenDownload::read_into`), in order: the
/// parts and the digest need the bytes from the first on, so an object has one connection.
impl crate::zoom::ChunkSink for ObjectWriter {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.write(&chunk).await.map_err(std::io::Error::other)
    }
}

/// An S3 error body (XML) in a message reduced to its code and message; other text kept to
/// a readable length.
fn tidy(text: &str) -> String {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let len = text.get(start..)?.find(&format!("</{name}>"))?;
        text.get(start..start + len)
    };
    match (
        text.find("<?xml").or_else(|| text.find("<Error>")),
        element("Code"),
    ) {
        (Some(at), Some(code)) => format!(
            "{}S3 error {code}: {}",
            text.get(..at).unwrap_or_default(),
            element("Message").unwrap_or_default()
        ),
        _ => text.chars().take(1000).collect(),
    }
}

/// `text` with every secret replaced by a placeholder.
fn scrub(text: &str, secrets: &[Secret]) -> String {
    secrets
        .iter()
        .filter(|s| !s.expose().is_empty())
        .fold(text.to_string(), |t, s| t.replace(s.expose(), "<redacted>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(prefix: &str) -> ObjectArchive {
        let location = S3Location {
            bucket: "zoom-archive".into(),
            prefix: prefix.into(),
        };
        let env = S3Env {
            access_key_id: Some("AKID".into()),
            secret_access_key: Some(Secret::new("very-secret-key")),
            endpoint: Some("http://127.0.0.1:9".into()),
            allow_http: true,
            ..S3Env::default()
        };
        ObjectArchive::new(&location, &env).expect("archive")
    }

    #[test]
    fn keys_live_under_the_prefix_and_staging_apart() {
        let a = archive("zoom/rec");
        assert_eq!(
            a.path("2026-12/x.mp4").expect("key").as_ref(),
            "zoom/rec/2026-12/x.mp4"
        );
        assert_eq!(
            a.staging("2026-12/x.mp4").expect("key").as_ref(),
            "zoom/rec/.partial/2026-12/x.mp4"
        );
        assert_eq!(archive("").path("a/b").expect("key").as_ref(), "a/b");
        for bad in ["", "/abs", "a/../b", "a//b", "./a"] {
            assert!(matches!(a.path(bad), Err(ObjectError::Key { .. })), "{bad}");
        }
    }

    #[test]
    fn errors_name_the_place_and_never_the_secret() {
        let a = archive("p");
        assert_eq!(a.place(), "s3://zoom-archive/p at http://127.0.0.1:9");
        let e = a.failed(
            "put",
            "k",
            &object_store::Error::Generic {
                store: "S3",
                source: "server said very-secret-key".into(),
            },
        );
        let text = e.to_string();
        assert!(
            text.starts_with("s3://zoom-archive/p at http://127.0.0.1:9: put k: "),
            "{text}"
        );
        assert!(!text.contains("very-secret-key"), "{text}");
    }

    #[test]
    fn an_s3_error_body_becomes_its_code_and_message() {
        let text = "POST http://h/b/k - 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match.</Message><Key>k</Key></Error>";
        assert_eq!(
            tidy(text),
            "POST http://h/b/k - 403 Forbidden: S3 error SignatureDoesNotMatch: The signature does not match."
        );
        assert_eq!(tidy("connection refused"), "connection refused");
    }

    #[test]
    fn missing_credentials_and_plain_http_are_refused_by_name() {
        let location = S3Location {
            bucket: "b-1".into(),
            prefix: String::new(),
        };
        let e = ObjectArchive::new(&location, &S3Env::default()).expect_err("no keys");
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
        let env = S3Env {
            access_key_id: Some("AKID".into()),
            secret_access_key: Some(Secret::new("s")),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Env::default()
        };
        let e = ObjectArchive::new(&location, &env).expect_err("http");
        assert!(e.to_string().contains("AWS_ALLOW_HTTP"), "{e}");
        let env = S3Env {
            endpoint: Some("https://user:hunter2@s3.example.org".into()),
            ..env
        };
        let e = ObjectArchive::new(&location, &env).expect_err("user info");
        assert!(e.to_string().contains("AWS_ENDPOINT_URL"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}
