//! Hostile input, by property: whatever Zoom or an operator sends, archive paths stay inside
//! the archive and the config parser answers with an error instead of a panic.

use std::path::Path;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use zoomd::config::{Config, Env};
use zoomd::sync::archive::{COMPONENT_MAX, FileName, relative_path, under};

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[./\\\\:*?\"<>|\\x00-\\x1f CONPRNAUXNULcomlpt1-9 ]{0,300}",
        Just("../../etc/passwd".to_string()),
        Just("CON".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn archive_paths_stay_inside_and_short(
        topic in any_text(),
        file_type in any_text(),
        recording_type in proptest::option::of(any_text()),
        extension in any_text(),
        scan_host in proptest::option::of(any_text()),
        meeting_id in any::<i64>(),
        start in 0i64..4_102_444_800,
        rec_offset in proptest::option::of(-86_400i64..86_400),
        tz_index in 0usize..chrono_tz::TZ_VARIANTS.len(),
    ) {
        let scheduled_start = Utc.timestamp_opt(start, 0).single().expect("in range");
        let name = FileName {
            topic: &topic,
            meeting_id,
            scheduled_start,
            recording_start: rec_offset.map(|o| scheduled_start + chrono::Duration::seconds(o)),
            timezone: chrono_tz::TZ_VARIANTS[tz_index],
            file_type: &file_type,
            recording_type: recording_type.as_deref(),
            extension: &extension,
            scan_host: scan_host.as_deref(),
        };
        let rel = relative_path(&name);
        let archive = Path::new("/srv/zoomd/recordings");
        let full = under(archive, &rel);
        prop_assert!(full.is_some(), "escaped: {rel:?}");
        prop_assert!(full.as_deref().is_some_and(|p| p.starts_with(archive)));
        // users/<host>/ in front of a meeting zoomd did not create.
        let depth = if scan_host.is_some() { 5 } else { 3 };
        prop_assert_eq!(rel.components().count(), depth);
        for c in rel.components() {
            let s = c.as_os_str().to_str();
            prop_assert!(s.is_some(), "not UTF-8: {rel:?}");
            let s = s.unwrap_or_default();
            prop_assert!(!s.is_empty() && s.len() <= COMPONENT_MAX, "{s:?}");
            prop_assert!(!s.starts_with('.') && !s.contains('/') && !s.contains('\\'), "{s:?}");
            prop_assert!(!s.chars().any(char::is_control), "{s:?}");
            let stem = s.split('.').next().unwrap_or_default().to_ascii_uppercase();
            prop_assert!(!["CON", "PRN", "AUX", "NUL", "COM1", "LPT1"].contains(&stem.as_str()), "{s:?}");
        }
    }

    #[test]
    fn config_parser_never_panics_on_any_text(text in any::<String>()) {
        let _ = Config::parse(&text, Path::new("daemon.toml"), &Env::default());
    }

    #[test]
    fn config_parser_never_panics_on_mutated_examples(
        cut in 0usize..4000,
        insert in "[\\[\\]=\"'#\\n a-z0-9.*/:-]{0,12}",
    ) {
        let example = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/daemon.toml"));
        let mut at = cut.min(example.len());
        while !example.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &example[..at], &example[at..]);
        match Config::parse(&text, Path::new("daemon.toml"), &Env::default()) {
            Ok(_) => {}
            // Every error has a place.
            Err(zoomd::config::ConfigError::Invalid(diags)) => {
                prop_assert!(!diags.is_empty());
                for d in diags {
                    prop_assert!(d.line >= 1 && d.col >= 1);
                    prop_assert!(d.to_string().starts_with("daemon.toml:"));
                }
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
}
