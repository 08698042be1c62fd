//! The archive path builder on arbitrary names: always inside the archive, short, UTF-8.
#![no_main]

use std::path::Path;

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use zoomd::sync::archive::{COMPONENT_MAX, FileName, relative_path, under};

fuzz_target!(
    |input: (String, String, String, Option<String>, i64, u32)| {
        let (topic, file_type, extension, recording_type, meeting_id, secs) = input;
        let Some(start) = Utc.timestamp_opt(i64::from(secs), 0).single() else {
            return;
        };
        let rel = relative_path(&FileName {
            topic: &topic,
            meeting_id,
            scheduled_start: start,
            recording_start: None,
            timezone: chrono_tz::Europe::Berlin,
            file_type: &file_type,
            recording_type: recording_type.as_deref(),
            extension: &extension,
        });
        let archive = Path::new("/archive");
        assert!(under(archive, &rel).is_some_and(|p| p.starts_with(archive)));
        for c in rel.components() {
            let s = c.as_os_str().to_str().expect("UTF-8");
            assert!(!s.is_empty() && s.len() <= COMPONENT_MAX && !s.starts_with('.'));
        }
    }
);
