//! The SeaweedFS command line, for the object-storage tests (`s3.rs` beside it) and the
//! benchmarks: `weed server -s3` in a directory, bound to loopback, with every listener on a
//! free port (so servers run side by side) and one static S3 identity.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A free loopback port (free when asked: a server started on it may still lose a race).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// `weed` from `$ZOOMD_WEED`, else `PATH`, else the venv `scripts/s3-check` installs.
pub fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ZOOMD_WEED") {
        return Some(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let venv = PathBuf::from(std::env::var_os("HOME")?).join(VENV);
        venv.is_file().then_some(venv)
    })
}

/// Where `scripts/s3-check` installs `weed`, under `$HOME`.
pub const VENV: &str = ".cache/zoomd/seaweedfs/bin/weed";

/// What one server is started with.
pub struct Server<'a> {
    pub weed: &'a Path,
    /// Holds the data, the identity file and the sockets.
    pub dir: &'a Path,
    pub key_id: &'a str,
    pub secret: &'a str,
    pub s3_port: u16,
    /// `-master.volumeSizeLimitMB` and `-volume.max`: room for the objects to come.
    pub volume_mb: u32,
    pub volumes: u32,
}

impl Server<'_> {
    /// Writes the identity file and the data directory; the command to spawn (its output
    /// not yet directed).
    pub fn command(&self) -> std::io::Result<Command> {
        let config = self.dir.join("s3.json");
        let identity = serde_json::json!({
            "identities": [{
                "name": "zoomd",
                "credentials": [{"accessKey": self.key_id, "secretKey": self.secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            }]
        });
        std::fs::write(&config, identity.to_string())?;
        let data = self.dir.join("data");
        std::fs::create_dir_all(&data)?;
        let p = self.dir.display();
        let mut cmd = Command::new(self.weed);
        cmd.current_dir(self.dir)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-filer", "-s3"])
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-s3.port={}", self.s3_port))
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
            .arg(format!("-master.volumeSizeLimitMB={}", self.volume_mb))
            .arg(format!("-volume.max={}", self.volumes));
        Ok(cmd)
    }
}
