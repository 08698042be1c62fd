//! The archive in object storage against a real S3 server (SeaweedFS on loopback, started
//! per test): multipart uploads, the sha256 metadata, HEAD sizes, aborted uploads, wrong
//! credentials, and `zoomd check --online`. Ignored by default: `scripts/s3-check` installs
//! SeaweedFS when missing and runs them.

use bytes::Bytes;
use chrono::Utc;
use sha2::{Digest, Sha256};
use zoomd::objects::{ObjectArchive, ObjectError, PART_SIZE, Upload};
use zoomd::secret::Secret;
use zoomd::sim::SimConfig;
use zoomd::store::Store;
use zoomd::zoom::ChunkSink;

use std::time::Duration;

use zoomd::sim::Sim;
use zoomd::store::FileState;

use crate::helpers::{
    Daemon, DaemonToml, Entry, S3_BUCKET, S3_SECRET, S3Server, archived_per_meeting,
    assert_markers_unique, cron_at, in_secs, spawn_daemon, spawn_s3, spawn_sim, zoomd,
};

/// Bytes that differ at every offset (a part sent twice or out of order shows).
fn content(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn archive(s3: &S3Server, prefix: &str) -> ObjectArchive {
    ObjectArchive::new(&s3.location(prefix), &s3.env()).expect("archive")
}

/// A state database of its own (the record of uploads).
async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state.db"))
        .await
        .expect("open");
    (dir, store)
}

/// Writes `data` in uneven buffers (as a downloader hands them over) and finishes.
async fn upload(
    a: &ObjectArchive,
    store: &Store,
    key: &str,
    data: &[u8],
) -> Result<zoomd::objects::Archived, ObjectError> {
    let mut w = a.begin(Some(store), key, None, Utc::now()).await?;
    // Through the downloader's interface, as the download stream hands chunks over.
    for chunk in data.chunks(1024 * 1024 + 7) {
        w.put(Bytes::copy_from_slice(chunk))
            .await
            .expect("the object writer takes the chunk");
    }
    w.finish(data.len() as u64).await
}

/// The archived object is the bytes, HEAD reports Zoom's size and the sha256 metadata, and
/// only the final key is left: no staging object, no unfinished upload, and no record of one.
async fn assert_archived(s3: &S3Server, a: &ObjectArchive, prefix: &str, key: &str, data: &[u8]) {
    let (_dir, store) = store().await;
    let done = upload(a, &store, key, data).await.expect("upload");
    assert_eq!(done.key, key);
    assert_eq!(done.size, data.len() as u64);
    assert_eq!(done.sha256, sha256_hex(data));
    let head = a.head(key).await.expect("head").expect("the object exists");
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.sha256.as_deref(), Some(sha256_hex(data).as_str()));
    let back = a.get(key).await.expect("get");
    assert!(
        back == data,
        "{} bytes back, {} written, not the same",
        back.len(),
        data.len()
    );
    assert_eq!(s3.keys().await, [format!("{prefix}/{key}")]);
    assert_eq!(s3.multipart_uploads().await, Vec::<String>::new());
    assert_eq!(store.object_uploads().await.expect("records"), []);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn multipart_round_trip_is_byte_identical_with_sha256_metadata_and_size() {
    let s3 = spawn_s3().await;
    let a = archive(&s3, "zoom/rec");
    // Three parts, the last a short one.
    let data = content(2 * PART_SIZE + 123_457);
    assert_archived(
        &s3,
        &a,
        "zoom/rec",
        // A host's email and a topic in French: keys are encoded alike for the upload and the copy.
        "users/jane@example.org/2026-12/2026-12-07_0900_Réunion_d'équipe_123/x_MP4.mp4",
        &data,
    )
    .await;
}

/// Past CopyObject's limit the object is streamed to its final key by a second multipart
/// upload created with the metadata (the limit lowered so that a small file takes the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn an_object_past_the_copy_limit_is_streamed_to_its_key_with_metadata() {
    let s3 = spawn_s3().await;
    let a = archive(&s3, "big").with_copy_max(PART_SIZE as u64);
    let data = content(PART_SIZE + PART_SIZE / 2);
    assert_archived(&s3, &a, "big", "2026-12/long.mp4", &data).await;
}

/// A writer that dies after its first part leaves an unfinished upload on the server; the
/// next start aborts it from the upload id recorded in the database (none is left, and the
/// record is gone), and the file goes up again from its first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn an_interrupted_upload_is_aborted_at_the_next_start_and_sent_again() {
    let s3 = spawn_s3().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("state.db");
    let key = "2026-12/interrupted.mp4";
    let data = content(PART_SIZE + 4096);
    {
        let store = Store::open(&db).await.expect("open");
        let a = archive(&s3, "p");
        let mut w = a
            .begin(Some(&store), key, None, Utc::now())
            .await
            .expect("begin");
        assert_eq!(
            store.object_uploads().await.expect("records")[0].upload_id,
            w.upload().upload_id,
            "on record before the first part"
        );
        w.write(&data[..PART_SIZE + 10]).await.expect("write");
        // The crash: the writer is dropped without finish or abort.
        drop(w);
        store.close().await;
    }
    assert_eq!(
        s3.multipart_uploads().await,
        ["p/.partial/2026-12/interrupted.mp4"]
    );

    let store = Store::open(&db).await.expect("reopen");
    let next_start = archive(&s3, "p");
    assert_eq!(next_start.abort_recorded(&store).await.expect("abort"), 1);
    assert_eq!(s3.multipart_uploads().await, Vec::<String>::new());
    assert_eq!(s3.keys().await, Vec::<String>::new());
    assert_eq!(store.object_uploads().await.expect("records"), []);
    // Aborting an upload S3 no longer knows (a second start before the record went) is no
    // error.
    let gone = Upload {
        key: key.into(),
        upload_id: "no-such-upload".into(),
    };
    next_start.abort_upload(&gone).await.expect("abort again");

    assert_archived(&s3, &next_start, "p", key, &data).await;
    store.close().await;
}

/// Fewer bytes than Zoom's file_size: nothing is archived and nothing is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn a_size_other_than_zooms_file_size_archives_nothing_and_leaves_nothing() {
    let s3 = spawn_s3().await;
    let a = archive(&s3, "p");
    let (_dir, store) = store().await;
    let data = content(PART_SIZE + 1);
    let mut w = a
        .begin(Some(&store), "short.mp4", None, Utc::now())
        .await
        .expect("begin");
    w.write(&data).await.expect("write");
    let e = w.finish(data.len() as u64 + 1).await.expect_err("short");
    assert!(matches!(e, ObjectError::Verify { .. }), "{e}");
    assert!(e.to_string().contains("file_size"), "{e}");
    assert_eq!(a.head("short.mp4").await.expect("head"), None);
    assert_eq!(s3.multipart_uploads().await, Vec::<String>::new());
    assert_eq!(s3.keys().await, Vec::<String>::new());
    assert_eq!(store.object_uploads().await.expect("records"), []);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn wrong_credentials_name_the_endpoint_and_bucket_and_never_the_secret() {
    let s3 = spawn_s3().await;
    let wrong = "wrong-secret-9f3c1e";
    let mut env = s3.env();
    env.secret_access_key = Some(Secret::new(wrong));
    let a = ObjectArchive::new(&s3.location("p"), &env).expect("archive");
    let e = a.probe().await.expect_err("wrong secret");
    let text = e.to_string();
    assert!(
        text.contains(&s3.endpoint) && text.contains(S3_BUCKET),
        "{text}"
    );
    assert!(text.contains("access denied"), "{text}");
    assert!(!text.contains(wrong) && !text.contains(S3_SECRET), "{text}");
    assert_eq!(s3.keys().await, Vec::<String>::new());
}

/// `zoomd check --online` with an s3 archive proves access and leaves no object behind;
/// with a wrong secret it fails, naming endpoint and bucket and not the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn check_online_writes_reads_back_and_deletes_a_probe_object() {
    let s3 = spawn_s3().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = DaemonToml::new(&sim).set("archive", &format!("\"s3://{S3_BUCKET}/zoom\""));
    let path = config.write(dir.path());
    let run = |secret: &str| {
        let mut cmd = zoomd();
        cmd.args(["check", "--online", "--config"])
            .arg(&path)
            .envs(config.env())
            .envs(s3.env_vars())
            .env("AWS_SECRET_ACCESS_KEY", secret);
        tokio::task::spawn_blocking(move || cmd.output().expect("run"))
    };
    let out = run(S3_SECRET).await.expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let expected = format!(
        "online: archive s3://{S3_BUCKET}/zoom at {}: wrote, read back and deleted .zoomd-probe/",
        s3.endpoint
    );
    assert!(stdout.contains(&expected), "{stdout}");
    assert_eq!(s3.keys().await, Vec::<String>::new());
    assert_eq!(s3.multipart_uploads().await, Vec::<String>::new());

    let wrong = "wrong-secret-77aa01";
    let out = run(wrong).await.expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "online: archive: s3://{S3_BUCKET}/zoom at {}",
            s3.endpoint
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(wrong) && !String::from_utf8_lossy(&out.stdout).contains(wrong));
}

// ---------------------------------------------------------------------------------------
// The daemon into `s3://`

const MIB: u64 = 1024 * 1024;

/// `zoomd run` on `sim` archiving into the test server under `zoom/`.
fn daemon_into(sim: &Sim, s3: &S3Server, key: &str) -> Daemon {
    let toml = DaemonToml::run(sim)
        .set("create_ahead", "\"1m\"")
        .set("give_up_after", "\"2m\"")
        .set("archive", &format!("\"s3://{S3_BUCKET}/zoom\""))
        .meetings(&Entry::cron(key, "Into the bucket", &cron_at(in_secs(4))).toml());
    let vars = s3.env_vars();
    let env: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_daemon(&toml, &env)
}

/// Every file of the meeting archived: all five, the transcript included (it appears later
/// than the others, so "everything the sim holds now" could be four).
async fn all_archived(d: &Daemon, sim: &Sim) -> bool {
    let expected = sim.expected_files();
    let per = archived_per_meeting(&expected, &d.archive_rows().await);
    expected.len() >= 5 && per.values().sum::<usize>() == expected.len()
}

/// Every file of the sim is in the bucket once, at the key the database names, byte for
/// byte (read back and hashed), with its `sha256` metadata; nothing else is there and no
/// upload is left unfinished.
async fn assert_bucket_holds_the_archive(d: &Daemon, sim: &Sim, s3: &S3Server) {
    assert_markers_unique(&sim.meetings());
    let a = archive(s3, "zoom");
    let rows = d.archive_rows().await;
    let expected = sim.expected_files();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    let mut keys = Vec::new();
    for row in &rows {
        let key = row.path.clone().expect("a key");
        let sha = row.sha256.clone().expect("a digest");
        let bytes = a.get(&key).await.expect("the archived object");
        assert_eq!(sha256_hex(&bytes), sha, "{key}");
        assert_eq!(Some(bytes.len() as i64), row.bytes, "{key}");
        assert!(
            expected.iter().any(|e| e.sha256 == sha),
            "{key}: not the sim's bytes"
        );
        let info = a.head(&key).await.expect("head").expect("object");
        assert_eq!(info.sha256.as_deref(), Some(sha.as_str()), "{key}");
        keys.push(format!("zoom/{key}"));
    }
    let mut listed = s3.keys().await;
    listed.sort();
    keys.sort();
    assert_eq!(
        listed, keys,
        "only the archived objects, no staging or part object"
    );
    assert_eq!(s3.multipart_uploads().await, Vec::<String>::new());
    let store = d.store().await.expect("database");
    assert_eq!(store.object_uploads().await.expect("uploads"), []);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn the_whole_pipeline_archives_into_s3_byte_identical_with_its_digest() {
    let s3 = spawn_s3().await;
    let sim = spawn_sim(SimConfig {
        mp4_size: 20 * MIB + 5,
        ..SimConfig::default()
    })
    .await;
    let mut d = daemon_into(&sim, &s3, "bucket");
    d.wait_for("every file in the bucket", || all_archived(&d, &sim))
        .await;
    d.stop().await;
    assert_bucket_holds_the_archive(&d, &sim, &s3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn sigkill_mid_upload_then_restart_archives_once_and_leaves_no_upload() {
    let s3 = spawn_s3().await;
    let sim = spawn_sim(SimConfig {
        mp4_size: 40 * MIB,
        ..SimConfig::default()
    })
    .await;
    // Slow enough to be killed with parts sent and the upload unfinished.
    sim.set_download_rate_per_connection(Some(8 * MIB));
    let mut d = daemon_into(&sim, &s3, "killed");
    d.wait_for("an upload under way", || async {
        !s3.multipart_uploads().await.is_empty() && sim.counters().bytes_served > 12 * MIB
    })
    .await;
    d.kill9();
    assert!(!s3.multipart_uploads().await.is_empty());
    sim.set_download_rate_per_connection(None);
    d.start();
    d.wait_for("every file in the bucket", || all_archived(&d, &sim))
        .await;
    d.stop().await;
    // The killed upload was aborted at the start, the file sent again and archived once.
    assert_bucket_holds_the_archive(&d, &sim, &s3).await;
    assert!(
        d.logs()
            .contains("unfinished uploads from an earlier run aborted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SeaweedFS: scripts/s3-check"]
async fn the_store_gone_mid_upload_fails_the_file_retryably_and_archives_nothing() {
    let mut s3 = spawn_s3().await;
    let sim = spawn_sim(SimConfig {
        mp4_size: 40 * MIB,
        ..SimConfig::default()
    })
    .await;
    sim.set_download_rate_per_connection(Some(8 * MIB));
    let mut d = daemon_into(&sim, &s3, "gone");
    d.wait_for("an upload under way", || async {
        !s3.multipart_uploads().await.is_empty()
    })
    .await;
    let endpoint = s3.endpoint.clone();
    s3.stop();
    sim.set_download_rate_per_connection(None);
    d.wait_for("the MP4 back in the queue", || async {
        let Some(store) = d.store().await else {
            return false;
        };
        let files = store.list_files(None).await.unwrap_or_default();
        files.iter().any(|f| {
            f.file_type == "MP4"
                && f.state == FileState::Queued
                && f.attempts >= 1
                && f.last_error.is_some()
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    d.stop().await;
    let store = d.store().await.expect("database");
    let files = store.list_files(None).await.expect("files");
    let mp4 = files.iter().find(|f| f.file_type == "MP4").expect("MP4");
    assert_ne!(mp4.state, FileState::Archived);
    let error = mp4.last_error.clone().unwrap_or_default();
    assert!(
        error.contains(&format!("s3://{S3_BUCKET}/zoom at {endpoint}")),
        "{error}"
    );
    assert!(!error.contains(S3_SECRET), "{error}");
    // Nothing of it counts as archived, and the upload is on record for the next start.
    assert!(d.archive_rows().await.iter().all(|r| r.file_type != "MP4"));
    assert!(!store.object_uploads().await.expect("uploads").is_empty());
    store.close().await;
}
