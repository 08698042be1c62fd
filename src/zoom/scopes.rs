//! Which OAuth scopes each Zoom operation zoomd uses needs, in Zoom's two naming schemes:
//! the classic ones (`meeting:write:admin`) and the granular ones of today's Marketplace
//! (`meeting:write:meeting:admin`). An app has one kind or the other; either satisfies an
//! operation. Taken from the operations' `security` lists in Zoom's API document.

/// A group of operations a configured feature needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Creating, updating, deleting and checking the scheduled meetings.
    Meetings,
    /// Watching the meetings' cloud recordings (past instances, recording files).
    Recordings,
    /// `after_download = "trash" | "delete"`: removing the cloud copy.
    CloudDelete,
    /// The same with a `file_types` filter: only the archived files go, one by one.
    CloudDeleteFiles,
    /// `[recordings] users`: listing each user's cloud recordings.
    AccountScan,
    /// `[recordings] users = "*"`: listing the account's users.
    AccountUsers,
}

/// Every feature, for lookups by operation.
const ALL_FEATURES: [Feature; 6] = [
    Feature::Meetings,
    Feature::Recordings,
    Feature::CloudDelete,
    Feature::CloudDeleteFiles,
    Feature::AccountScan,
    Feature::AccountUsers,
];

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::Meetings => "meetings (create, update, cancel, drift check)",
            Feature::Recordings => "recordings (watch and download)",
            Feature::CloudDelete => "after_download (trash or delete the cloud copy)",
            Feature::CloudDeleteFiles => {
                "after_download with file_types (trash or delete archived files one by one)"
            }
            Feature::AccountScan => "[recordings] users (list each user's cloud recordings)",
            Feature::AccountUsers => "[recordings] users = \"*\" (list the account's users)",
        }
    }

    /// The operations of the feature and, for each, the scopes any one of which allows it.
    pub fn needs(self) -> &'static [Need] {
        match self {
            Feature::Meetings => &MEETINGS,
            Feature::Recordings => &RECORDINGS,
            Feature::CloudDelete => &CLOUD_DELETE,
            Feature::CloudDeleteFiles => &CLOUD_DELETE_FILES,
            Feature::AccountScan => &ACCOUNT_SCAN,
            Feature::AccountUsers => &ACCOUNT_USERS,
        }
    }
}

/// One operation and the scopes that allow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    pub op: &'static str,
    pub classic: &'static [&'static str],
    pub granular: &'static [&'static str],
}

impl Need {
    fn met_by(&self, granted: &[&str]) -> bool {
        self.classic
            .iter()
            .chain(self.granular)
            .any(|s| granted.contains(s))
    }
}

const MEETING_READ: &[&str] = &["meeting:read:admin", "meeting:read"];
const MEETING_WRITE: &[&str] = &["meeting:write:admin", "meeting:write"];
const RECORDING_READ: &[&str] = &["recording:read:admin", "recording:read"];
const RECORDING_WRITE: &[&str] = &["recording:write:admin", "recording:write"];

const MEETINGS: [Need; 5] = [
    Need {
        op: "create_meeting",
        classic: MEETING_WRITE,
        granular: &["meeting:write:meeting:admin", "meeting:write:meeting"],
    },
    Need {
        op: "update_meeting",
        classic: MEETING_WRITE,
        granular: &["meeting:update:meeting:admin", "meeting:update:meeting"],
    },
    Need {
        op: "delete_meeting",
        classic: MEETING_WRITE,
        granular: &["meeting:delete:meeting:admin", "meeting:delete:meeting"],
    },
    Need {
        op: "get_meeting",
        classic: MEETING_READ,
        granular: &["meeting:read:meeting:admin", "meeting:read:meeting"],
    },
    Need {
        op: "list_upcoming_meetings",
        classic: MEETING_READ,
        granular: &[
            "meeting:read:list_meetings:admin",
            "meeting:read:list_meetings",
        ],
    },
];

const RECORDINGS: [Need; 2] = [
    Need {
        op: "list_past_instances",
        classic: MEETING_READ,
        granular: &[
            "meeting:read:list_past_instances:admin",
            "meeting:read:list_past_instances",
        ],
    },
    Need {
        op: "get_recordings",
        classic: RECORDING_READ,
        granular: &[
            "cloud_recording:read:list_recording_files:admin",
            "cloud_recording:read:list_recording_files:master",
            "cloud_recording:read:list_recording_files",
        ],
    },
];

const CLOUD_DELETE: [Need; 1] = [Need {
    op: "delete_recordings",
    classic: RECORDING_WRITE,
    granular: &[
        "cloud_recording:delete:meeting_recording:admin",
        "cloud_recording:delete:meeting_recording:master",
        "cloud_recording:delete:meeting_recording",
    ],
}];

const CLOUD_DELETE_FILES: [Need; 1] = [Need {
    op: "delete_recording_file",
    classic: RECORDING_WRITE,
    granular: &[
        "cloud_recording:delete:recording_file:admin",
        "cloud_recording:delete:recording_file:master",
        "cloud_recording:delete:recording_file",
    ],
}];

const ACCOUNT_SCAN: [Need; 1] = [Need {
    op: "list_user_recordings",
    classic: RECORDING_READ,
    granular: &[
        "cloud_recording:read:list_user_recordings:admin",
        "cloud_recording:read:list_user_recordings:master",
        "cloud_recording:read:list_user_recordings",
    ],
}];

const ACCOUNT_USERS: [Need; 1] = [Need {
    op: "list_users",
    classic: &["user:read:admin", "user:read"],
    granular: &["user:read:list_users:admin", "user:read:list_users:master"],
}];

/// The operations of `features` that the `granted` scopes (the token answer's `scope`:
/// names separated by spaces or commas) do not allow.
pub fn missing(granted: &str, features: &[Feature]) -> Vec<(Feature, Need)> {
    let granted: Vec<&str> = granted
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    features
        .iter()
        .flat_map(|f| f.needs().iter().map(move |n| (*f, *n)))
        .filter(|(_, n)| !n.met_by(&granted))
        .collect()
}

/// The feature an operation belongs to, for an error that names it.
pub fn feature_of(op: &str) -> Option<Feature> {
    ALL_FEATURES
        .into_iter()
        .find(|f| f.needs().iter().any(|n| n.op == op))
}

/// The scope names of Zoom's 4711 message ("Invalid access token, does not contain scopes:
/// [meeting:write:admin, meeting:write]."), if it is one.
pub fn scopes_in_4711(message: &str) -> Vec<String> {
    let Some(start) = message.find('[') else {
        return Vec::new();
    };
    let rest = &message[start + 1..];
    let end = rest.find(']').unwrap_or(rest.len());
    rest[..end]
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Feature; 6] = ALL_FEATURES;

    #[test]
    fn classic_admin_scopes_cover_everything() {
        let granted = "meeting:read:admin meeting:write:admin recording:read:admin \
                       recording:write:admin user:read:admin";
        assert!(missing(granted, &ALL).is_empty());
    }

    #[test]
    fn granular_scopes_cover_everything_too() {
        let granted: Vec<&str> = ALL
            .iter()
            .flat_map(|f| f.needs().iter().map(|n| n.granular[0]))
            .collect();
        assert!(missing(&granted.join(","), &ALL).is_empty());
    }

    #[test]
    fn a_missing_granular_scope_is_named_with_its_feature() {
        let granted: Vec<&str> = ALL
            .iter()
            .flat_map(|f| f.needs().iter().map(|n| n.granular[0]))
            .filter(|s| *s != "cloud_recording:read:list_recording_files:admin")
            .collect();
        let gaps = missing(&granted.join(" "), &ALL);
        assert_eq!(gaps.len(), 1, "{gaps:?}");
        assert_eq!(gaps[0].0, Feature::Recordings);
        assert_eq!(gaps[0].1.op, "get_recordings");
        // Deleting the cloud copy is only needed when configured.
        let gaps = missing(
            "meeting:read:admin meeting:write:admin recording:read:admin user:read:admin",
            &ALL,
        );
        assert!(
            gaps.iter()
                .all(|(f, _)| matches!(f, Feature::CloudDelete | Feature::CloudDeleteFiles)),
            "{gaps:?}"
        );
        assert!(
            missing(
                "meeting:read:admin meeting:write:admin recording:read:admin",
                &[Feature::Meetings, Feature::Recordings]
            )
            .is_empty()
        );
    }

    #[test]
    fn zoom_4711_names_its_scopes() {
        let msg = "Invalid access token, does not contain scopes:[meeting:write:admin, meeting:write:meeting:admin].";
        assert_eq!(
            scopes_in_4711(msg),
            ["meeting:write:admin", "meeting:write:meeting:admin"]
        );
        assert!(scopes_in_4711("Invalid access token.").is_empty());
        assert_eq!(feature_of("get_recordings"), Some(Feature::Recordings));
        assert_eq!(feature_of("nothing"), None);
        assert_eq!(
            feature_of("list_user_recordings"),
            Some(Feature::AccountScan)
        );
    }
}
