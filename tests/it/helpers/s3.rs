//! A real S3 server on loopback for the object-storage tests: SeaweedFS (`weed server -s3`)
//! in a temporary directory, on free ports, with one static identity and one bucket. Killed
//! on drop. `weed` comes from `$ZOOMD_WEED`, else `PATH`, else the venv that `scripts/s3-check`
//! installs (`~/.cache/zoomd/seaweedfs/bin/weed`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::CredentialProvider;
use object_store::aws::{AwsAuthorizer, AwsCredential};
use zoomd::config::S3Location;
use zoomd::objects::S3Env;
use zoomd::secret::Secret;

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
    if let Some(p) = std::env::var_os("ZOOMD_WEED") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path {
        return p;
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let venv = home.join(".cache/zoomd/seaweedfs/bin/weed");
    assert!(
        venv.is_file(),
        "no SeaweedFS: set ZOOMD_WEED, put weed on PATH, or run scripts/s3-check (installs it into {})",
        venv.display()
    );
    venv
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
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
    let config = dir.path().join("s3.json");
    let identity = serde_json::json!({
        "identities": [{
            "name": "zoomd",
            "credentials": [{"accessKey": S3_KEY_ID, "secretKey": S3_SECRET}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]
        }]
    });
    std::fs::write(&config, identity.to_string()).expect("write s3.json");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    let log = std::fs::File::create(dir.path().join("weed.log")).expect("log");
    let s3_port = free_port();
    let p = dir.path().display().to_string();
    let mut cmd = Command::new(weed());
    cmd.current_dir(dir.path())
        .arg("server")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .args(["-filer", "-s3"])
        .arg(format!("-s3.config={}", config.display()))
        .arg(format!("-s3.port={s3_port}"))
        // Every other listener on a free port too, so tests run side by side.
        .arg(format!("-master.port={}", free_port()))
        .arg(format!("-master.port.grpc={}", free_port()))
        .arg(format!("-volume.port={}", free_port()))
        .arg(format!("-volume.port.grpc={}", free_port()))
        .arg(format!("-filer.port={}", free_port()))
        .arg(format!("-filer.port.grpc={}", free_port()))
        .arg(format!("-s3.port.grpc={}", free_port()))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
        .arg(format!("-filer.localSocket={p}/filer.sock"))
        .arg(format!("-s3.localSocket={p}/s3.sock"))
        .args(["-master.volumeSizeLimitMB=64", "-volume.max=16"])
        .stdin(Stdio::null())
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
