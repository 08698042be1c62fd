//! daemon.toml writers: a `[zoom]` section pointing at a sim, a `[daemon]` section, and
//! `[[meeting]]` entries.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use zoomd::sim::{Sim, SimConfig};

/// How the config names zoomd's credentials for the sim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// Server-to-Server OAuth, the client secret in `ZOOMD_CLIENT_SECRET`.
    OAuth,
    /// Server-to-Server OAuth, the client secret in a mode-600 file `secret` beside the
    /// config (`client_secret_file`).
    OAuthFile,
    /// The legacy JWT app, the API secret in `ZOOMD_API_SECRET`.
    Jwt,
}

/// A daemon.toml for a sim.
#[derive(Clone, Debug)]
pub struct DaemonToml {
    sim: SimConfig,
    login: Login,
    api_url: String,
    pub oauth_url: String,
    /// `[daemon]` settings as `key = value` lines, values in TOML; empty: no section.
    daemon: Vec<(String, String)>,
    /// Further `[zoom]` lines (`key = value`, values in TOML).
    zoom: Vec<String>,
    /// `[recordings]` lines (`key = value`, values in TOML); empty: no section.
    recordings: Vec<String>,
    /// `[http]` lines (`key = value`, values in TOML); empty: no section.
    http: Vec<String>,
    meetings: String,
}

impl DaemonToml {
    /// OAuth against `sim`, with the database and archive in the config's directory.
    pub fn new(sim: &Sim) -> DaemonToml {
        DaemonToml {
            sim: sim.config().clone(),
            login: Login::OAuth,
            api_url: sim.api_url(),
            oauth_url: sim.oauth_url(),
            daemon: Vec::new(),
            zoom: Vec::new(),
            recordings: Vec::new(),
            http: Vec::new(),
            meetings: String::new(),
        }
        .set("database", "\"state.db\"")
        .set("archive", "\"recordings\"")
    }

    /// For a daemon that runs against `sim` for real seconds: polls every second.
    pub fn run(sim: &Sim) -> DaemonToml {
        DaemonToml::new(sim).set("poll_every", "\"1s\"")
    }

    pub fn login(mut self, login: Login) -> DaemonToml {
        self.login = login;
        self
    }

    /// Sets `[daemon] key = value` (`value` in TOML syntax), replacing an earlier one.
    pub fn set(mut self, key: &str, value: &str) -> DaemonToml {
        match self.daemon.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => self.daemon.push((key.to_string(), value.to_string())),
        }
        self
    }

    /// Adds `[zoom] key = value` (`value` in TOML syntax).
    pub fn zoom(mut self, key: &str, value: &str) -> DaemonToml {
        self.zoom.push(format!("{key} = {value}\n"));
        self
    }

    /// Adds `[recordings] key = value` (`value` in TOML syntax): the account scan.
    pub fn recordings(mut self, key: &str, value: &str) -> DaemonToml {
        self.recordings.push(format!("{key} = {value}\n"));
        self
    }

    /// Adds `[http] key = value` (`value` in TOML syntax): the listener.
    pub fn http(mut self, key: &str, value: &str) -> DaemonToml {
        self.http.push(format!("{key} = {value}\n"));
        self
    }

    /// Leaves `[daemon]` out altogether (every default).
    pub fn no_daemon_section(mut self) -> DaemonToml {
        self.daemon.clear();
        self
    }

    /// Appends `[[meeting]]` entries (TOML text, e.g. from [`Entry::toml`]).
    pub fn meetings(mut self, text: &str) -> DaemonToml {
        self.meetings.push_str(text);
        self
    }

    pub fn text(&self) -> String {
        let zoom = match self.login {
            Login::OAuth => format!(
                "auth = \"oauth\"\naccount_id = \"{}\"\nclient_id = \"{}\"\n",
                self.sim.account_id, self.sim.client_id
            ),
            Login::OAuthFile => format!(
                "auth = \"oauth\"\naccount_id = \"{}\"\nclient_id = \"{}\"\nclient_secret_file = \"secret\"\n",
                self.sim.account_id, self.sim.client_id
            ),
            Login::Jwt => format!("auth = \"jwt\"\napi_key = \"{}\"\n", self.sim.api_key),
        };
        let mut text = format!(
            "[zoom]\n{zoom}api_url = \"{}\"\noauth_url = \"{}\"\n{}\n",
            self.api_url,
            self.oauth_url,
            self.zoom.concat()
        );
        if !self.daemon.is_empty() {
            text.push_str("[daemon]\n");
            for (k, v) in &self.daemon {
                text.push_str(&format!("{k} = {v}\n"));
            }
            text.push('\n');
        }
        if !self.http.is_empty() {
            text.push_str("[http]\n");
            text.push_str(&self.http.concat());
            text.push('\n');
        }
        if !self.recordings.is_empty() {
            text.push_str("[recordings]\n");
            text.push_str(&self.recordings.concat());
            text.push('\n');
        }
        text.push_str(&self.meetings);
        text
    }

    /// Writes `dir/daemon.toml` (and, for [`Login::OAuthFile`], the secret file); returns
    /// the config's path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        if self.login == Login::OAuthFile {
            let secret = dir.join("secret");
            std::fs::write(&secret, &self.sim.client_secret).expect("secret");
            chmod(&secret, 0o600);
        }
        let path = dir.join("daemon.toml");
        std::fs::write(&path, self.text()).expect("write config");
        path
    }

    /// The environment that hands zoomd the secret this config does not hold.
    pub fn env(&self) -> Vec<(String, String)> {
        match self.login {
            Login::OAuth => vec![("ZOOMD_CLIENT_SECRET".into(), self.sim.client_secret.clone())],
            Login::OAuthFile => Vec::new(),
            Login::Jwt => vec![("ZOOMD_API_SECRET".into(), self.sim.api_secret.clone())],
        }
    }
}

/// A `[[meeting]]` entry: host `me`, zone UTC, one minute long unless set otherwise.
#[derive(Clone, Debug)]
pub struct Entry {
    key: String,
    topic: String,
    host: String,
    when: String,
    timezone: Option<String>,
    duration: String,
    agenda: Option<String>,
}

impl Entry {
    /// An entry that runs at `cron` (a 5- or 6-field expression).
    pub fn cron(key: &str, topic: &str, cron: &str) -> Entry {
        Entry {
            key: key.into(),
            topic: topic.into(),
            host: "me".into(),
            when: format!("cron = \"{cron}\""),
            timezone: Some("UTC".into()),
            duration: "1m".into(),
            agenda: None,
        }
    }

    /// A one-off entry at the local time `at` (`YYYY-MM-DDTHH:MM`).
    pub fn at(key: &str, topic: &str, at: &str) -> Entry {
        let mut e = Entry::cron(key, topic, "");
        e.when = format!("at = \"{at}\"");
        e
    }

    pub fn host(mut self, host: &str) -> Entry {
        self.host = host.into();
        self
    }

    /// The entry's zone; `None` leaves it to `[daemon] timezone`.
    pub fn timezone(mut self, tz: Option<&str>) -> Entry {
        self.timezone = tz.map(Into::into);
        self
    }

    pub fn duration(mut self, d: &str) -> Entry {
        self.duration = d.into();
        self
    }

    pub fn agenda(mut self, agenda: &str) -> Entry {
        self.agenda = Some(agenda.into());
        self
    }

    pub fn toml(&self) -> String {
        let mut s = format!(
            "[[meeting]]\nkey = \"{}\"\ntopic = \"{}\"\nhost = \"{}\"\n{}\n",
            self.key, self.topic, self.host, self.when
        );
        if let Some(tz) = &self.timezone {
            s.push_str(&format!("timezone = \"{tz}\"\n"));
        }
        s.push_str(&format!("duration = \"{}\"\n", self.duration));
        if let Some(a) = &self.agenda {
            s.push_str(&format!("agenda = \"{a}\"\n"));
        }
        s
    }
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The schedule: `n` starts `spacing` seconds apart from `first`, dealt round-robin to four
/// series (two hosts). A 6-field cron names seconds within one minute, so each series gets
/// one entry per minute it spans.
pub fn series_schedule(
    first: DateTime<Utc>,
    n: usize,
    spacing: i64,
) -> (String, Vec<DateTime<Utc>>) {
    let mut groups: BTreeMap<(usize, String), Vec<DateTime<Utc>>> = BTreeMap::new();
    let mut starts = Vec::new();
    for i in 0..n {
        let t = first + chrono::Duration::seconds(i as i64 * spacing);
        starts.push(t);
        let minute = t.format("%M %H %d %m").to_string();
        groups.entry((i % 4, minute)).or_default().push(t);
    }
    let mut text = String::new();
    for ((series, _), times) in &groups {
        let t0 = times[0];
        let secs: Vec<String> = times.iter().map(|t| t.format("%-S").to_string()).collect();
        let host = if series % 2 == 0 {
            "me"
        } else {
            "chair@example.org"
        };
        let cron = format!("{} {}", secs.join(","), t0.format("%-M %-H %-d %-m *"));
        let key = format!("s{series}-{}", t0.format("%H%M"));
        let entry = Entry::cron(&key, &format!("Crash series {series}"), &cron)
            .host(host)
            .duration("10m")
            .agenda(&format!("Series {series}"));
        text.push_str(&entry.toml());
    }
    (text, starts)
}
