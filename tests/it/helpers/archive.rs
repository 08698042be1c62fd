//! What a correct archive holds, checked against the sim: every file with Zoom's digest,
//! on disk as recorded, nothing partial; and one Zoom meeting per occurrence.

use std::collections::HashMap;

use chrono::Utc;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zoomd::sim::{ExpectedFile, MeetingRecord, Sim};
use zoomd::store::{ArchiveRow, OccurrenceRow, Store};

use super::daemon::Daemon;

/// Every file below `dir`, depth first; nothing when `dir` does not exist.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The `.part` files below `dir`, with their sizes.
pub fn part_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .map(|p| {
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p, len)
        })
        .collect()
}

/// Whether a download is under way or was cut short: a `.part` with bytes in it.
pub fn partial_download(dir: &Path) -> bool {
    part_files(dir).iter().any(|(_, len)| *len > 0)
}

/// `e` is in the archive view with the sim's digest.
pub fn is_archived(e: &ExpectedFile, archive: &[ArchiveRow]) -> bool {
    archive
        .iter()
        .any(|a| a.meeting_uuid == e.uuid && a.sha256.as_deref() == Some(e.sha256.as_str()))
}

/// The archive view holds exactly the completed files the sim has, each with its digest.
pub fn holds_exactly(expected: &[ExpectedFile], archive: &[ArchiveRow]) -> bool {
    expected.len() == archive.len() && expected.iter().all(|e| is_archived(e, archive))
}

/// How many of the sim's files are archived with their digest, per Zoom meeting id.
pub fn archived_per_meeting(
    expected: &[ExpectedFile],
    archive: &[ArchiveRow],
) -> HashMap<i64, usize> {
    let mut per_meeting: HashMap<i64, usize> = HashMap::new();
    for e in expected.iter().filter(|e| is_archived(e, archive)) {
        *per_meeting.entry(e.meeting_id).or_default() += 1;
    }
    per_meeting
}

/// Every archived row's file is on disk under `root` with the recorded size and digest,
/// and no `.part` is left over. Returns the bytes on disk.
pub fn assert_on_disk(root: &Path, archive: &[ArchiveRow]) -> u64 {
    let mut total = 0;
    for a in archive {
        let rel = a.path.clone().expect("path");
        let full = root.join(&rel);
        assert!(full.starts_with(root), "{rel} escapes {}", root.display());
        let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
        assert_eq!(Some(bytes.len() as i64), a.bytes, "{rel}");
        assert_eq!(Some(hex::encode(Sha256::digest(&bytes))), a.sha256, "{rel}");
        total += bytes.len() as u64;
    }
    let parts = part_files(root);
    assert!(parts.is_empty(), "left over: {parts:?}");
    total
}

/// One occurrence, at most one Zoom meeting: the marker zoomd writes as the agenda's last
/// line is on every meeting and unique. Ad-hoc meetings (held outside the API) carry none
/// and are skipped. Returns marker -> meeting id.
pub fn assert_markers_unique(meetings: &[MeetingRecord]) -> HashMap<String, i64> {
    let mut seen = HashMap::new();
    for m in meetings.iter().filter(|m| !m.adhoc) {
        let marker = m.agenda.lines().last().unwrap_or_default().to_string();
        assert!(
            marker.starts_with("zoomd:"),
            "agenda without marker: {:?}",
            m.agenda
        );
        if let Some(other) = seen.insert(marker.clone(), m.id) {
            panic!("two meetings ({other}, {}) for {marker}", m.id);
        }
    }
    seen
}

/// No token went into a URL or to the download host, and every uuid was encoded as Zoom
/// needs it.
pub fn assert_no_leaks(sim: &Sim) {
    let r = sim.report();
    assert!(r.tokens_in_urls.is_empty(), "{:?}", r.tokens_in_urls);
    assert!(
        r.download_auth_headers.is_empty(),
        "Authorization sent to the download host: {} time(s)",
        r.download_auth_headers.len()
    );
    assert!(r.encoding_errors.is_empty(), "{:?}", r.encoding_errors);
}

/// The database is sound, disk matches it (nothing partial left) and nothing leaked to
/// the sim. Returns the archived bytes.
pub async fn assert_sound(store: &Store, root: &Path, sim: &Sim) -> u64 {
    let bytes = assert_on_disk(root, &store.archive().await.expect("archive"));
    assert_eq!(store.integrity_check().await.expect("check"), "ok");
    assert_no_leaks(sim);
    bytes
}

/// What every run of the daemon ends with: one meeting per marker, and
/// [`assert_sound`] on its database and archive.
pub async fn assert_consistent(d: &Daemon, sim: &Sim) {
    assert_markers_unique(&sim.meetings());
    let store = d.store().await.expect("database");
    assert_sound(&store, &d.archive(), sim).await;
    store.close().await;
}

/// Whether everything has settled: no create in doubt, every file the sim has archived
/// with its digest, nothing queued.
pub async fn settled(store: &Store, sim: &Sim) -> bool {
    let occ = store
        .list_occurrences(&Default::default(), Utc::now())
        .await
        .unwrap_or_default();
    let archive = store.archive().await.unwrap_or_default();
    let files = store.list_files(None).await.unwrap_or_default();
    if occ.iter().any(|o| o.state.as_str() == "creating") {
        return false;
    }
    if files.iter().any(|f| f.state.as_str() != "archived") {
        return false;
    }
    // A watch sees its last file archived at its next poll, not at once.
    if occ.iter().any(|o| {
        o.state.as_str() == "created" && !matches!(o.recording_state.as_str(), "complete" | "done")
    }) {
        return false;
    }
    holds_exactly(&sim.expected_files(), &archive)
}

/// One occurrence's final state, checked against what Zoom holds.
pub fn assert_final(o: &OccurrenceRow, by_marker: &HashMap<String, i64>) {
    let in_zoom = by_marker.get(&o.marker).copied();
    match o.state.as_str() {
        "created" => {
            assert!(o.meeting_id.is_some(), "{o:?}");
            assert_eq!(o.meeting_id, in_zoom, "{o:?}");
            assert!(
                matches!(o.recording_state.as_str(), "complete" | "done"),
                "{o:?}"
            );
        }
        // Never created: the create's outcome stayed unknown until the start passed, or a
        // retry was due only after it. Such an occurrence has no meeting (never two).
        "failed" | "deferred" => {
            assert!(
                o.last_error.as_deref().is_some_and(|e| !e.is_empty()),
                "{o:?}"
            );
            assert_eq!(o.meeting_id, None, "{o:?}");
            assert_eq!(in_zoom, None, "Zoom has a meeting zoomd lost: {o:?}");
            assert!(o.start_utc <= Utc::now(), "{o:?}");
        }
        _ => panic!("not a final state: {o:?}"),
    }
}

/// Every Zoom meeting (one per marker, from [`assert_markers_unique`]) belongs to one of
/// `occurrences`, and each occurrence is in a final state consistent with Zoom.
pub fn assert_occurrences_final(occurrences: &[OccurrenceRow], by_marker: &HashMap<String, i64>) {
    for o in occurrences {
        assert_final(o, by_marker);
    }
    for (marker, id) in by_marker {
        assert!(
            occurrences
                .iter()
                .any(|o| &o.marker == marker && o.meeting_id == Some(*id)),
            "meeting {id} ({marker}) unknown to the database"
        );
    }
}

/// The archive under `root` is exactly the sim's files: each archived with its digest,
/// nothing partial, nothing on disk the archive view does not name. Returns the view.
pub async fn assert_archive_exact(store: &Store, root: &Path, sim: &Sim) -> Vec<ArchiveRow> {
    let expected = sim.expected_files();
    let rows = store.archive().await.expect("archive");
    assert_eq!(expected.len(), rows.len());
    for e in &expected {
        assert!(is_archived(e, &rows), "not archived: {e:?}");
    }
    assert!(part_files(root).is_empty(), "{:?}", part_files(root));
    let leftovers: Vec<_> = walk(root)
        .into_iter()
        .filter(|p| {
            !rows
                .iter()
                .any(|a| a.path.as_deref().is_some_and(|r| root.join(r) == *p))
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "not in the archive view: {leftovers:?}"
    );
    rows
}
