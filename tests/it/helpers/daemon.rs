//! The real `zoomd` binary: one-shot commands, and the daemon as a child process in its
//! own directory, logs captured, stopped by pid with SIGTERM or SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use zoomd::store::{ArchiveRow, Store};

use super::config::DaemonToml;
use super::time::{HANG, eventually};

/// `zoomd` with none of the environment that would change what it reads (config, secrets,
/// systemd's directories and sockets, log filter) inherited from the test's.
pub fn zoomd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zoomd"));
    for k in [
        "ZOOMD_CONFIG",
        "ZOOMD_CLIENT_SECRET",
        "ZOOMD_API_SECRET",
        "ZOOMD_LOG",
        "CREDENTIALS_DIRECTORY",
        "STATE_DIRECTORY",
        "JOURNAL_STREAM",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
    ] {
        c.env_remove(k);
    }
    c.stdin(Stdio::null());
    c
}

/// stdout then stderr of a finished command, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `cmd` to its end; it must exit 0.
pub fn output_ok(cmd: &mut Command) -> Output {
    let o = cmd.output().expect("run zoomd");
    assert!(o.status.success(), "{cmd:?}: {}", text(&o));
    o
}

/// `zoomd run` as a child process, with its directory: `daemon.toml`, `state.db`,
/// `recordings/` and one `daemon-<run>.log` per start. Killed on drop.
pub struct Daemon {
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    env: Vec<(String, String)>,
    child: Mutex<Option<Child>>,
    /// How many times it was started.
    pub runs: usize,
}

/// Writes `config` into a fresh directory and starts the daemon on it, with the
/// environment the config needs for its secret plus `env` (over
/// `ZOOMD_LOG=info,zoomd=debug`). A `WATCHDOG_USEC` in `env` makes the daemon the watched
/// process, as systemd does.
pub fn spawn_daemon(config: &DaemonToml, env: &[(&str, &str)]) -> Daemon {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = config.write(dir.path());
    let mut all = config.env();
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut d = Daemon {
        dir,
        config_path,
        env: all,
        child: Mutex::new(None),
        runs: 0,
    };
    d.start();
    d
}

impl Daemon {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn archive(&self) -> PathBuf {
        self.path("recordings")
    }

    /// A one-shot `zoomd <args> --config <config>` with the daemon's environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = zoomd();
        c.args(args).arg("--config").arg(&self.config_path);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the daemon (again), logging to `daemon-<run>.log`.
    pub fn start(&mut self) {
        assert!(self.child().is_none(), "already running");
        self.runs += 1;
        let log =
            std::fs::File::create(self.path(&format!("daemon-{}.log", self.runs))).expect("log");
        let mut cmd = zoomd();
        if self.env.iter().any(|(k, _)| k == "WATCHDOG_USEC") {
            // systemd names the watched process: the shell's pid is zoomd's after `exec`.
            cmd = Command::new("sh");
            cmd.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
                .arg(env!("CARGO_BIN_EXE_zoomd"));
        }
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config_path)
            .env("ZOOMD_LOG", "info,zoomd=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        *self.child() = Some(cmd.spawn().expect("spawn zoomd"));
    }

    /// Sends `sig` to the daemon's pid.
    pub fn signal(&self, sig: libc::c_int) {
        let pid = self.child().as_ref().expect("running").id();
        let pid = libc::pid_t::try_from(pid).expect("pid");
        // SAFETY: kill(2) with our own child's pid, which is not reaped yet and so cannot
        // name another process.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
    }

    /// The running daemon's pid (the middle of its lease holder, `host:pid:nonce`).
    pub fn pid(&self) -> Option<u32> {
        self.child().as_ref().map(|c| c.id())
    }

    /// Whether the daemon is still running (it did not exit on its own).
    pub fn running(&self) -> bool {
        let mut child = self.child();
        let child = child.as_mut().expect("started");
        child.try_wait().expect("wait").is_none()
    }

    /// SIGKILL, and reaps it.
    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let child = self.child().take();
        let _ = child.expect("running").wait();
    }

    /// SIGTERM; the daemon must exit 0. A hang guard bounds the wait; it says nothing
    /// about how fast the exit was.
    pub async fn stop(&mut self) {
        self.stop_within(Duration::from_secs(60)).await;
    }

    /// SIGTERM; the daemon must exit 0 before `limit` (e.g. systemd's stop timeout) has
    /// passed, else it is killed and the test fails.
    pub async fn stop_within(&mut self, limit: Duration) {
        self.signal(libc::SIGTERM);
        let mut child = self.child().take().expect("running");
        let mut status = None;
        let exited = eventually(limit, || {
            status = child.try_wait().expect("wait");
            std::future::ready(status.is_some())
        })
        .await;
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hung: no exit within {limit:?} after SIGTERM\n{}",
                self.log_tail()
            );
        }
        let status = status.expect("exited");
        assert!(status.success(), "exit {status}\n{}", self.log_tail());
    }

    /// Every run's log, oldest first.
    pub fn logs(&self) -> String {
        (1..=self.runs)
            .map(|i| {
                std::fs::read_to_string(self.path(&format!("daemon-{i}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// The last lines of the last three runs' logs, for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for i in self.runs.saturating_sub(3) + 1..=self.runs {
            let text =
                std::fs::read_to_string(self.path(&format!("daemon-{i}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!("--- run {i} ---\n"));
            out.push_str(&lines[lines.len().saturating_sub(60)..].join("\n"));
            out.push('\n');
        }
        out
    }

    /// The daemon's database, read-only; `None` until it exists.
    pub async fn store(&self) -> Option<Store> {
        Store::open_read_only(&self.path("state.db")).await.ok()
    }

    /// [`settled`](super::settled) on its database; false until the database exists.
    pub async fn settled(&self, sim: &zoomd::sim::Sim) -> bool {
        let Some(store) = self.store().await else {
            return false;
        };
        let settled = super::settled(&store, sim).await;
        store.close().await;
        settled
    }

    /// The archive view; empty until the database exists.
    pub async fn archive_rows(&self) -> Vec<ArchiveRow> {
        let Some(store) = self.store().await else {
            return Vec::new();
        };
        let rows = store.archive().await.unwrap_or_default();
        store.close().await;
        rows
    }

    /// Waits until `cond` holds. Panics if the daemon exits meanwhile, or as hung (with
    /// the log) after [`HANG`].
    pub async fn wait_for<F, Fut>(&self, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let reached = eventually(HANG, || {
            if let Some(c) = self.child().as_mut()
                && let Some(status) = c.try_wait().expect("wait")
            {
                panic!(
                    "the daemon exited ({status}) while waiting for {what}\n{}",
                    self.log_tail()
                );
            }
            cond()
        })
        .await;
        assert!(reached, "hung waiting for {what}\n{}", self.log_tail());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
