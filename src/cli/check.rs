//! `zoomd check`: validate the config and show what it schedules.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{Config, ConfigError, MeetingEntry, When, format_duration};
use crate::schedule;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// How many occurrences to list per entry
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub next: usize,
    /// List occurrences from this instant instead of now (RFC 3339, e.g. 2027-03-01T00:00:00Z)
    #[arg(long, value_name = "INSTANT")]
    pub from: Option<DateTime<Utc>>,
    /// Also obtain a token and look up each host with Zoom
    #[arg(long)]
    pub online: bool,
}

pub async fn run(path: &Path, args: &CheckArgs) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(match e {
                ConfigError::Read { .. } | ConfigError::Invalid(_) | ConfigError::Secret(_) => {
                    super::EXIT_INVALID
                }
            });
        }
    };
    let from = args.from.unwrap_or_else(Utc::now);
    // Buffered: a large schedule prints 100,000 lines.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed stdout (`zoomd check | head`) is not worth a panic or an error exit.
    let _ = write_report(&mut out, &config, from, args.next).and_then(|()| out.flush());
    for w in &config.warnings {
        eprintln!("{w}");
    }
    if args.online {
        return online(&config).await;
    }
    if let Err(e) = &config.zoom.credentials {
        eprintln!(
            "{}: warning: credentials: {e} (`zoomd run` would not start)",
            config.path.display()
        );
    }
    ExitCode::SUCCESS
}

/// Names, per configured feature, the operations the token's scopes do not allow, with the
/// classic and the granular scope that would. True when nothing is missing (or a JWT,
/// which carries no scope list, leaves nothing to compare).
async fn report_scopes(client: &crate::zoom::ZoomClient, config: &Config) -> bool {
    use crate::zoom::scopes::{self, Feature};
    let granted = match client.granted_scopes().await {
        Ok(Some(s)) => s,
        Ok(None) => {
            println!("online: scopes: the token lists none (JWT); not checked");
            return true;
        }
        Err(e) => {
            eprintln!("online: scopes: {e}");
            return false;
        }
    };
    use crate::config::{AccountUsers, AfterDownload};
    let mut features = vec![Feature::Meetings, Feature::Recordings];
    let rec = &config.recordings;
    let scanning = rec.users != AccountUsers::None;
    let removes = config.daemon.after_download != AfterDownload::Keep
        || (scanning && rec.after_download != AfterDownload::Keep);
    if removes {
        // With a file_types filter only the archived files go, one by one.
        features.push(if rec.file_types.is_some() {
            Feature::CloudDeleteFiles
        } else {
            Feature::CloudDelete
        });
    }
    if scanning {
        features.push(Feature::AccountScan);
    }
    if rec.users == AccountUsers::All {
        features.push(Feature::AccountUsers);
    }
    let gaps = scopes::missing(&granted, &features);
    if gaps.is_empty() {
        println!("online: scopes: every configured feature is allowed");
        return true;
    }
    for (feature, need) in gaps {
        eprintln!(
            "online: scopes: {} needs {}: add {} (granular) or {} (classic)",
            feature.name(),
            need.op,
            need.granular[0],
            need.classic[0]
        );
    }
    false
}

/// Proves an object-storage archive (write, read back, delete a small object), then checks
/// Zoom. Exit 1 when anything fails.
async fn online(config: &Config) -> ExitCode {
    let archive_ok = probe_archive(config).await;
    let zoom = online_zoom(config).await;
    if archive_ok || zoom != ExitCode::SUCCESS {
        zoom
    } else {
        ExitCode::from(super::EXIT_RUNTIME)
    }
}

/// For `archive = "s3://..."`: archives a probe object the way recordings are archived,
/// reads it back and deletes it. True for a local archive.
async fn probe_archive(config: &Config) -> bool {
    let crate::config::ArchiveLocation::S3(location) = &config.daemon.archive else {
        return true;
    };
    let archive = crate::objects::S3Env::from_process()
        .map_err(|e| format!("{location}: {e}"))
        .and_then(|env| {
            crate::objects::ObjectArchive::new(location, &env).map_err(|e| e.to_string())
        });
    let archive = match archive {
        Ok(a) => a,
        Err(e) => {
            eprintln!("online: archive: {e}");
            return false;
        }
    };
    match archive.probe().await {
        Ok(key) => {
            println!(
                "online: archive {}: wrote, read back and deleted {key}",
                archive.place()
            );
            true
        }
        Err(e) => {
            eprintln!("online: archive: {e}");
            false
        }
    }
}

/// Obtains a token and asks Zoom for each host's upcoming meetings (which fails for a host
/// Zoom does not know, code 1001). Exit 1 when anything fails.
async fn online_zoom(config: &Config) -> ExitCode {
    let client = match crate::daemon::zoom_client(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(super::EXIT_INVALID);
        }
    };
    if let Err(e) = client.token().await {
        eprintln!(
            "online: cannot obtain a token from {}: {e}",
            config.zoom.oauth_url
        );
        return ExitCode::from(super::EXIT_RUNTIME);
    }
    println!(
        "\nonline: token obtained ({})",
        match config.zoom.auth {
            crate::config::AuthMode::OAuth => "oauth",
            crate::config::AuthMode::Jwt => "jwt",
        }
    );
    let mut ok = report_scopes(&client, config).await;
    let mut hosts: Vec<&str> = config.meetings.iter().map(|m| m.host.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    for host in hosts {
        match client.list_upcoming_meetings(host).await {
            Ok(list) => println!(
                "online: host {host}: known to Zoom, {} upcoming meeting(s)",
                list.len()
            ),
            Err(e) => {
                ok = false;
                eprintln!("online: host {host}: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::EXIT_RUNTIME)
    }
}

fn write_report(
    out: &mut impl Write,
    config: &Config,
    from: DateTime<Utc>,
    n: usize,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: ok: {} meeting entr{}, auth {}, api {}",
        config.path.display(),
        config.meetings.len(),
        if config.meetings.len() == 1 {
            "y"
        } else {
            "ies"
        },
        match config.zoom.auth {
            crate::config::AuthMode::OAuth => "oauth",
            crate::config::AuthMode::Jwt => "jwt",
        },
        config.zoom.api_url
    )?;
    writeln!(
        out,
        "database {}, archive {}",
        config.daemon.database,
        config.daemon.archive.display()
    )?;
    if let Some(addr) = config.http.listen {
        let hooks = match &config.http.webhook_secret {
            Ok(_) => "webhooks verified with the secret token".to_string(),
            Err(e) => format!("webhooks refused (503): {e}"),
        };
        let page = if config.http.token.is_some() {
            "status page and calendar need the bearer token"
        } else {
            "status page and calendar open"
        };
        writeln!(out, "http: listening on {addr}; {hooks}; {page}")?;
    }
    if config.recordings.users != crate::config::AccountUsers::None {
        let who = match &config.recordings.users {
            crate::config::AccountUsers::All => "every user of the account".to_string(),
            crate::config::AccountUsers::Listed(u) => format!("{} user(s)", u.len()),
            crate::config::AccountUsers::None => String::new(),
        };
        writeln!(
            out,
            "recordings: the account scan lists {who} every {}, since {}",
            crate::config::format_duration(
                config.recordings.scan_every.to_std().unwrap_or_default()
            ),
            config
                .recordings
                .since
                .map_or("30 days before each user's first scan".to_string(), |d| d
                    .to_string())
        )?;
    }
    // Entries are independent: render them on every core, print them in file order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = config.meetings.len().div_ceil(threads).max(1);
    let rendered: Vec<std::io::Result<Vec<u8>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = config
            .meetings
            .chunks(chunk)
            .map(|entries| {
                scope.spawn(move || {
                    let mut buf = Vec::with_capacity(entries.len() * 80 * (n + 1));
                    for entry in entries {
                        writeln!(buf)?;
                        write_entry(&mut buf, entry, from, n)?;
                    }
                    Ok(buf)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a render thread panicked")))
            })
            .collect()
    });
    for part in rendered {
        out.write_all(&part?)?;
    }
    Ok(())
}

fn write_entry(
    out: &mut impl Write,
    entry: &MeetingEntry,
    from: DateTime<Utc>,
    n: usize,
) -> std::io::Result<()> {
    let when = match &entry.when {
        When::Cron(c) => format!("cron \"{}\"", c.text),
        When::At(t) => format!("at {}", t.format("%Y-%m-%dT%H:%M")),
    };
    writeln!(
        out,
        "{} \"{}\": {} {}, {}, host {}",
        entry.key,
        entry.topic,
        when,
        entry.timezone.name(),
        format_duration(std::time::Duration::from_secs(
            u64::from(entry.duration_min) * 60
        )),
        entry.host
    )?;
    let next = schedule::next(entry, from, n);
    if next.is_empty() {
        writeln!(
            out,
            "  (no occurrence after {})",
            from.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
    }
    for o in next {
        write!(
            out,
            "  {}  {}  {}",
            o.local.to_rfc3339_opts(SecondsFormat::Secs, false),
            o.local.format("%a %Z"),
            o.start.to_rfc3339_opts(SecondsFormat::Secs, true)
        )?;
        match o.dst {
            Some(note) => writeln!(out, "  ({note})")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}
