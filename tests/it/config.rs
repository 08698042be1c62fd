//! daemon.toml parsing: every malformed fixture gives its exact message at its exact place,
//! and the rules for defaults, secrets and warnings hold.

use std::path::{Path, PathBuf};

use zoomd::config::{
    AccountUsers, AfterDownload, ArchiveLocation, Config, ConfigError, Credentials, Env,
    FILE_TYPES, S3Location, When,
};
use zoomd::store::Database;

const BASE: &str = "[zoom]\naccount_id = \"acc\"\nclient_id = \"cid\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("daemon.toml"), &Env::default())
}

fn err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Every `tests/fixtures/config/bad/*.toml` fails with the message in the `.expected` file
/// beside it (first line), which starts `daemon.toml:LINE:COL: `.
#[test]
fn malformed_fixtures_give_their_exact_messages() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/bad");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "only {} fixtures", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let text = std::fs::read_to_string(case).expect("fixture");
        let expected_path = case.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("missing {}", expected_path.display()));
        let got = match parse(&text) {
            Ok(_) => "<accepted>".to_string(),
            Err(e) => e.to_string(),
        };
        let first = got.lines().next().unwrap_or_default();
        if first != expected.trim_end() {
            failures.push(format!(
                "{}:\n  expected: {}\n  got:      {}",
                case.display(),
                expected.trim_end(),
                first
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn example_daemon_toml_is_valid() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("daemon.toml");
    let text = std::fs::read_to_string(&path).expect("daemon.toml");
    let config = Config::parse(&text, &path, &Env::default()).expect("example is valid");
    assert!(config.meetings.len() >= 3);
    assert!(
        config
            .meetings
            .iter()
            .any(|m| matches!(m.when, When::At(_)))
    );
}

#[test]
fn defaults_follow_the_design() {
    let c = parse(BASE).expect("valid");
    assert_eq!(c.daemon.database, PathBuf::from("./state.db"));
    assert_eq!(c.daemon.archive.local(), Some(Path::new("./recordings")));
    assert_eq!(c.daemon.create_ahead.num_seconds(), 7 * 86400);
    assert_eq!(c.daemon.poll_every.num_seconds(), 300);
    assert_eq!(c.daemon.give_up_after.num_seconds(), 72 * 3600);
    assert_eq!(c.daemon.downloads, 2);
    assert_eq!(c.daemon.segment_size, 64 * 1024 * 1024);
    assert_eq!(c.daemon.connections_per_file, 4);
    assert_eq!(c.daemon.after_download, AfterDownload::Keep);
    assert_eq!(c.daemon.timezone, chrono_tz::UTC);
    assert_eq!(c.zoom.api_url.as_str(), "https://api.zoom.us/v2");
    assert_eq!(c.zoom.oauth_url.as_str(), "https://zoom.us/oauth/token");
    assert_eq!(c.zoom.pace.requests_per_second, 10.0);
    assert_eq!(c.zoom.pace.max_in_flight, 8);

    let env = Env {
        state_directory: Some(PathBuf::from("/var/lib/zoomd")),
        ..Env::default()
    };
    let c = Config::parse(BASE, Path::new("/etc/zoomd/daemon.toml"), &env).expect("valid");
    assert_eq!(c.daemon.database, PathBuf::from("/var/lib/zoomd/state.db"));
    assert_eq!(
        c.daemon.archive.local(),
        Some(Path::new("/var/lib/zoomd/recordings"))
    );

    // Relative paths in the file resolve against the file's directory.
    let text = format!("{BASE}[daemon]\ndatabase = \"db/state.db\"\n");
    let c =
        Config::parse(&text, Path::new("/srv/zoomd/daemon.toml"), &Env::default()).expect("valid");
    assert_eq!(c.daemon.database, PathBuf::from("/srv/zoomd/db/state.db"));
}

/// `database = "postgres://..."` is a PostgreSQL database; the password never shows, and a
/// systemd credential `database_password` wins over one in the URL (which is warned about).
#[test]
fn a_postgres_url_is_a_database_whose_password_never_shows() {
    let text = format!(
        "{BASE}[daemon]\ndatabase = \"postgres://zoomd:url-pw@db.example.org:5432/zoomd\"\n"
    );
    let c = parse(&text).expect("valid");
    let Database::Postgres(pg) = &c.daemon.database else {
        panic!("not PostgreSQL: {:?}", c.daemon.database);
    };
    assert_eq!(pg.password().map(|p| p.expose()), Some("url-pw"));
    for shown in [c.daemon.database.to_string(), format!("{:?}", c.daemon)] {
        assert!(!shown.contains("url-pw"), "{shown}");
    }
    assert_eq!(
        c.daemon.database.to_string(),
        "postgres://zoomd@db.example.org:5432/zoomd"
    );
    let warned: Vec<String> = c.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warned.iter().any(|w| w
            .starts_with("daemon.toml:5:12: warning: database: the URL holds a password")
            && w.contains("database_password")
            && !w.contains("url-pw")),
        "{warned:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("database_password"), "cred-pw\n").expect("credential");
    let env = Env {
        credentials_directory: Some(dir.path().to_path_buf()),
        ..Env::default()
    };
    let c = Config::parse(&text, Path::new("daemon.toml"), &env).expect("valid");
    let Database::Postgres(pg) = &c.daemon.database else {
        panic!("not PostgreSQL");
    };
    assert_eq!(pg.password().map(|p| p.expose()), Some("cred-pw"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Without a password anywhere: none (sqlx then reads $PGPASSWORD, ~/.pgpass).
    let text = format!("{BASE}[daemon]\ndatabase = \"postgresql://zoomd@127.0.0.1/zoomd\"\n");
    let c = parse(&text).expect("valid");
    assert!(c.daemon.database.is_postgres());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // A bad URL is an error at its place that does not repeat the password.
    let e = err(&format!(
        "{BASE}[daemon]\ndatabase = \"mysql://zoomd:url-pw@db/zoomd\"\n"
    ));
    assert!(
        e.starts_with("daemon.toml:5:12: database: a URL with scheme 'mysql'"),
        "{e}"
    );
    assert!(!e.contains("url-pw"), "{e}");
}

/// `archive` is a directory (a path, or a file URL) or `s3://bucket/prefix`; anything else
/// is an error at the value that names what would be valid.
#[test]
fn archive_is_a_directory_or_an_s3_bucket_and_prefix() {
    let archive = |value: &str| {
        let text = format!("{BASE}[daemon]\narchive = \"{value}\"\n");
        Config::parse(&text, Path::new("/srv/zoomd/daemon.toml"), &Env::default())
            .map(|c| c.daemon.archive)
    };
    let s3 = |bucket: &str, prefix: &str| {
        ArchiveLocation::S3(S3Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
        })
    };
    assert_eq!(
        archive("rec").expect("path"),
        ArchiveLocation::Local(PathBuf::from("/srv/zoomd/rec"))
    );
    assert_eq!(
        archive("file:///var/lib/zoomd/rec").expect("file URL"),
        ArchiveLocation::Local(PathBuf::from("/var/lib/zoomd/rec"))
    );
    assert_eq!(
        archive("s3://zoom-archive/team/rec/").expect("s3"),
        s3("zoom-archive", "team/rec")
    );
    assert_eq!(
        archive("s3://zoom-archive").expect("s3"),
        s3("zoom-archive", "")
    );
    assert_eq!(
        archive("s3://zoom-archive/team/rec").expect("s3").display(),
        "s3://zoom-archive/team/rec"
    );

    let at = "daemon.toml:5:11: archive";
    for (value, message) in [
        (
            "gs://bucket/p",
            " 'gs://bucket/p': scheme 'gs' is not supported; write a path, file:///path or s3://bucket/prefix",
        ),
        (
            "s3://Zoom_Archive/p",
            " 's3://Zoom_Archive/p': 'Zoom_Archive' is not a bucket name (3 to 63 of a-z, 0-9, '.' and '-', starting and ending with a letter or digit)",
        ),
        (
            "s3://zoom-archive/a//b",
            " 's3://zoom-archive/a//b': the prefix 'a//b' has an empty, '.' or '..' part; write e.g. s3://zoom-archive/zoom/recordings",
        ),
        (
            "s3://key:secret@zoom-archive/p",
            ": an s3 URL is s3://bucket/prefix, without query, fragment or user info (credentials come from the environment or systemd credentials)",
        ),
    ] {
        assert_eq!(
            err(&format!("{BASE}[daemon]\narchive = \"{value}\"\n")),
            format!("{at}{message}")
        );
    }
}

#[test]
fn segments_take_binary_sizes() {
    for (v, want) in [
        ("\"8MiB\"", 8u64 << 20),
        ("\"1GiB\"", 1 << 30),
        ("\"16 MiB\"", 16 << 20),
    ] {
        let text = format!("{BASE}[daemon]\nsegment_size = {v}\nconnections_per_file = 16\n");
        let c = parse(&text).expect("valid");
        assert_eq!(c.daemon.segment_size, want, "{v}");
        assert_eq!(c.daemon.connections_per_file, 16);
    }
    assert!(err(&format!("{BASE}[daemon]\nsegment_size = \"2GiB\"\n")).contains("out of range"));
    assert!(
        err(&format!("{BASE}[daemon]\nconnections_per_file = 0\n")).contains("must be 1 to 16")
    );
}

#[test]
fn the_request_budget_takes_fractions_and_whole_numbers() {
    let text = BASE.replacen(
        "[zoom]\n",
        "[zoom]\nrequests_per_second = 12.5\nmax_in_flight = 16\n",
        1,
    );
    let c = parse(&text).expect("valid");
    assert_eq!(c.zoom.pace.requests_per_second, 12.5);
    assert_eq!(c.zoom.pace.max_in_flight, 16);
    let text = BASE.replacen("[zoom]\n", "[zoom]\nrequests_per_second = 80\n", 1);
    assert_eq!(
        parse(&text).expect("valid").zoom.pace.requests_per_second,
        80.0
    );
}

#[test]
fn the_account_scan_is_off_by_default_and_takes_every_user_or_a_list() {
    let c = parse(BASE).expect("valid");
    assert_eq!(c.recordings.users, AccountUsers::None);
    assert_eq!(c.recordings.file_types, None);
    assert_eq!(c.recordings.scan_every.num_seconds(), 3600);
    assert_eq!(c.recordings.after_download, AfterDownload::Keep);
    assert!(c.recordings.wants("TIMELINE"));

    for all in ["\"*\"", "[\"*\"]"] {
        let c = parse(&format!("{BASE}[recordings]\nusers = {all}\n")).expect("valid");
        assert_eq!(c.recordings.users, AccountUsers::All, "{all}");
    }
    let text = format!(
        "{BASE}[recordings]\nusers = [\"jane@example.org\", \"KDcuGIm1QgePTO8WbOqwIQ\"]\n\
         since = \"2026-01-01\"\nfile_types = [\"mp4\", \"TRANSCRIPT\"]\nscan_every = \"30m\"\n\
         after_download = \"trash\"\n"
    );
    let c = parse(&text).expect("valid");
    assert_eq!(
        c.recordings.users,
        AccountUsers::Listed(vec![
            "jane@example.org".into(),
            "KDcuGIm1QgePTO8WbOqwIQ".into()
        ])
    );
    assert_eq!(c.recordings.since, "2026-01-01".parse().ok());
    assert!(c.recordings.wants("MP4") && c.recordings.wants("transcript"));
    assert!(!c.recordings.wants("CHAT"));
    assert_eq!(c.recordings.scan_every.num_seconds(), 1800);
    assert_eq!(c.recordings.after_download, AfterDownload::Trash);
    // An empty list is today's behaviour.
    let c = parse(&format!("{BASE}[recordings]\nusers = []\n")).expect("valid");
    assert_eq!(c.recordings.users, AccountUsers::None);
}

#[test]
fn the_account_scan_refuses_what_it_cannot_use_and_says_where() {
    let e = err(&format!(
        "{BASE}[recordings]\nfile_types = [\"MP4\", \"MP3\"]\n"
    ));
    assert!(
        e.starts_with("daemon.toml:5:22: unknown file type 'MP3' in file_types; valid types: "),
        "{e}"
    );
    for t in FILE_TYPES {
        assert!(e.contains(t), "{e} does not list {t}");
    }
    let e = err(&format!(
        "{BASE}[recordings]\nusers = [\"*\", \"jane@example.org\"]\n"
    ));
    assert!(
        e.starts_with("daemon.toml:5:9: users: \"*\" already means every user"),
        "{e}"
    );
    let e = err(&format!(
        "{BASE}[recordings]\nusers = [\"a@x.org\", \"A@x.org\"]\n"
    ));
    assert!(e.contains("users: 'A@x.org' is listed twice"), "{e}");
    let e = err(&format!("{BASE}[recordings]\nusers = [\"a b\"]\n"));
    assert!(e.contains("'a b' is not a Zoom user id or email"), "{e}");
    let e = err(&format!("{BASE}[recordings]\nusers = 3\n"));
    assert!(
        e.contains("users: expected a string or a list, found integer"),
        "{e}"
    );
    let e = err(&format!("{BASE}[recordings]\nsince = \"2026-13-01\"\n"));
    assert!(
        e.starts_with("daemon.toml:5:9: invalid date '2026-13-01' in since"),
        "{e}"
    );
    let e = err(&format!("{BASE}[recordings]\nscan_every = \"10s\"\n"));
    assert!(e.contains("out of range"), "{e}");
    let e = err(&format!("{BASE}[recordings]\nuser = \"*\"\n"));
    assert!(e.contains("unknown field `user`"), "{e}");
}

#[test]
fn the_http_listener_is_off_by_default_and_finds_its_secret_like_the_others() {
    let c = parse(BASE).expect("valid");
    assert_eq!(c.http.listen, None);
    assert!(c.http.webhook_secret.is_err());

    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("webhook_secret");
    std::fs::write(&secret, "whsec-from-file\n").expect("secret");
    set_mode(&secret, 0o600);
    let token = dir.path().join("token");
    std::fs::write(&token, "page-token\n").expect("token");
    set_mode(&token, 0o600);
    let text = format!(
        "{BASE}[http]\nlisten = \"127.0.0.1:8080\"\nwebhook_secret_file = \"webhook_secret\"\ntoken_file = \"token\"\n"
    );
    let path = dir.path().join("daemon.toml");
    let env = Env {
        webhook_secret: Some("from-env".into()),
        ..Env::default()
    };
    let c = Config::parse(&text, &path, &env).expect("valid");
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().ok());
    assert_eq!(
        c.http
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        Ok("whsec-from-file".to_string()),
        "the file wins over the environment"
    );
    assert_eq!(
        c.http.token.as_ref().map(|t| t.expose()),
        Some("page-token")
    );
    // Without the file: the environment, then the systemd credential.
    let text = format!("{BASE}[http]\nlisten = \"127.0.0.1:8080\"\n");
    let c = Config::parse(&text, &path, &env).expect("valid");
    assert_eq!(
        c.http
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        Ok("from-env".to_string())
    );
    std::fs::write(dir.path().join("webhook_secret"), "from-credential").expect("cred");
    let env = Env {
        credentials_directory: Some(dir.path().to_path_buf()),
        ..Env::default()
    };
    let c = Config::parse(&text, &path, &env).expect("valid");
    assert_eq!(
        c.http
            .webhook_secret
            .as_ref()
            .map(|s| s.expose().to_string()),
        Ok("from-credential".to_string())
    );
    let e = Config::parse(&text, &path, &Env::default())
        .expect("valid")
        .http
        .webhook_secret
        .expect_err("no secret anywhere");
    assert!(
        e.contains("ZOOMD_WEBHOOK_SECRET") && e.contains("in [http]"),
        "{e}"
    );

    let e = err(&format!("{BASE}[http]\nlisten = \"localhost\"\n"));
    assert!(
        e.starts_with("daemon.toml:5:10: listen: 'localhost' is not an address and port"),
        "{e}"
    );
    // Reachable from elsewhere without a token: allowed, with a warning.
    let c = parse(&format!("{BASE}[http]\nlisten = \"0.0.0.0:8080\"\n")).expect("valid");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.to_string().contains("set token_file")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn meeting_defaults_inherit_zone_and_record_to_cloud() {
    let text = format!(
        "{BASE}[daemon]\ntimezone = \"Europe/Berlin\"\n[[meeting]]\nkey = \"a\"\ntopic = \"A\"\nhost = \"me\"\ncron = \"0 9 * * Mon\"\nduration = \"1h30m\"\n[meeting.settings]\njoin_before_host = true\n"
    );
    let c = parse(&text).expect("valid");
    let m = &c.meetings[0];
    assert_eq!(m.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(m.duration_min, 90);
    assert_eq!(m.settings["auto_recording"], "cloud");
    assert_eq!(m.settings["join_before_host"], true);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn non_cloud_recording_is_allowed_with_a_warning() {
    let text = format!(
        "{BASE}[[meeting]]\nkey = \"a\"\ntopic = \"A\"\nhost = \"me\"\ncron = \"0 9 * * Mon\"\nduration = \"1h\"\n[meeting.settings]\nauto_recording = \"local\"\n"
    );
    let c = parse(&text).expect("valid");
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(
        c.warnings[0].to_string(),
        "daemon.toml:11:18: warning: meeting 'a': auto_recording = \"local\": Zoom will not record to the cloud, so zoomd has nothing to archive"
    );
    // e2ee is fine when nothing goes to the cloud.
    let text = text.replace(
        "auto_recording = \"local\"",
        "auto_recording = \"none\"\nencryption_type = \"e2ee\"",
    );
    assert!(parse(&text).is_ok());
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = format!(
        "{BASE}[[meeting]]\nkey = \"a\"\ntopic = \"A\"\nhost = \"me\"\ncron = \"0 9 * * *\"\nduration = \"1h\"\n[[meeting]]\nkey = \"a\"\ntopic = \"B\"\nhost = \"\"\ncron = \"0 9 * * *\"\nduration = \"1h\"\n"
    );
    let e = err(&text);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 2, "{e}");
    assert!(
        lines[0].starts_with("daemon.toml:11:7: duplicate key 'a'"),
        "{e}"
    );
    assert!(
        lines[1].starts_with("daemon.toml:13:8: `host` must not be empty"),
        "{e}"
    );
}

#[test]
fn secret_lookup_order_file_then_env_then_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cred_dir = dir.path().join("creds");
    std::fs::create_dir(&cred_dir).expect("mkdir");
    std::fs::write(cred_dir.join("client_secret"), "from-credential\n").expect("write");
    let file = dir.path().join("client_secret");
    std::fs::write(&file, "from-file\n").expect("write");
    set_mode(&file, 0o600);

    let secret_of = |text: &str, env: &Env| -> String {
        let c = Config::parse(text, &dir.path().join("daemon.toml"), env).expect("valid");
        match c.zoom.credentials.expect("credentials") {
            Credentials::OAuth { client_secret, .. } => client_secret.expose().to_string(),
            Credentials::Jwt { .. } => panic!("oauth expected"),
        }
    };
    let env = Env {
        client_secret: Some("from-env".into()),
        credentials_directory: Some(cred_dir.clone()),
        ..Env::default()
    };
    let with_file = format!("{BASE}client_secret_file = \"client_secret\"\n");
    assert_eq!(secret_of(&with_file, &env), "from-file");
    assert_eq!(secret_of(BASE, &env), "from-env");
    let env = Env {
        credentials_directory: Some(cred_dir),
        ..Env::default()
    };
    assert_eq!(secret_of(BASE, &env), "from-credential");

    // Nothing anywhere: the config is valid, the credentials are not, and the reason names
    // every place that was looked at.
    let c = parse(BASE).expect("valid");
    let why = c.zoom.credentials.expect_err("no secret");
    assert!(
        why.contains("client_secret_file")
            && why.contains("ZOOMD_CLIENT_SECRET")
            && why.contains("LoadCredential"),
        "{why}"
    );
}

#[test]
fn readable_secret_file_warns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret");
    std::fs::write(&file, "s3cr3t-value").expect("write");
    set_mode(&file, 0o644);
    let text = format!("{BASE}client_secret_file = \"secret\"\n");
    let c = Config::parse(&text, &dir.path().join("daemon.toml"), &Env::default()).expect("valid");
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    let w = c.warnings[0].to_string();
    assert!(
        w.starts_with("daemon.toml:4:22: warning: secret file ")
            || w.contains(":4:22: warning: secret file "),
        "{w}"
    );
    assert!(w.contains("mode 644") && w.contains("chmod 600"), "{w}");
    assert!(!w.contains("s3cr3t-value"));
    // Debug output of the whole config never shows the secret.
    assert!(!format!("{c:?}").contains("s3cr3t-value"));
}

#[test]
fn jwt_secret_must_be_ascii() {
    let env = Env {
        api_secret: Some("geheimnis-ä".into()),
        ..Env::default()
    };
    let e = Config::parse(
        "[zoom]\nauth = \"jwt\"\napi_key = \"k\"\n",
        Path::new("daemon.toml"),
        &env,
    )
    .expect_err("non-ASCII secret");
    let e = e.to_string();
    assert!(e.contains("not ASCII") && !e.contains("geheimnis"), "{e}");

    let env = Env {
        api_secret: Some("ascii-secret".into()),
        ..Env::default()
    };
    let c = Config::parse(
        "[zoom]\nauth = \"jwt\"\napi_key = \"k\"\n",
        Path::new("daemon.toml"),
        &env,
    )
    .expect("valid");
    match c.zoom.credentials.expect("credentials") {
        Credentials::Jwt { api_key, ttl, .. } => {
            assert_eq!(api_key, "k");
            assert_eq!(ttl.as_secs(), 30);
        }
        Credentials::OAuth { .. } => panic!("jwt expected"),
    }
}

#[test]
fn parser_never_panics_on_truncated_input() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("daemon.toml");
    let text = std::fs::read_to_string(path).expect("daemon.toml");
    for cut in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
        let _ = parse(&text[..cut]);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
