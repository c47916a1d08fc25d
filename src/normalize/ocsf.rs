//! The slice of the OCSF 1.8.0 schema hookgate emits: classes, categories, activity, status
//! and severity captions, so every `*_id` gets its matching caption.
//!
//! Input: ids. Output: captions. Pure lookups; an id outside the table yields `None` and the
//! caller decides (definitions naming an unknown class fail at load).

/// One OCSF class.
#[derive(Debug)]
pub struct ClassInfo {
    /// `class_uid`.
    pub uid: u32,
    /// `class_name`.
    pub name: &'static str,
    /// `category_uid`.
    pub category_uid: u32,
    /// `category_name`.
    pub category_name: &'static str,
    /// `activity_id` captions.
    pub activities: &'static [(i64, &'static str)],
    /// Findings use the finding status enum and vendor severity.
    pub finding: bool,
}

const ACTIVITY_STATUS: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "Success"),
    (2, "Failure"),
    (99, "Other"),
];
const FINDING_STATUS: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "New"),
    (2, "In Progress"),
    (3, "Suppressed"),
    (4, "Resolved"),
    (5, "Archived"),
    (6, "Deleted"),
    (99, "Other"),
];
const SEVERITY: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "Informational"),
    (2, "Low"),
    (3, "Medium"),
    (4, "High"),
    (5, "Critical"),
    (6, "Fatal"),
    (99, "Other"),
];
const FINDING_ACTIVITIES: &[(i64, &str)] = &[
    (0, "Unknown"),
    (1, "Create"),
    (2, "Update"),
    (3, "Close"),
    (99, "Other"),
];

/// Every class a definition may name.
pub const CLASSES: &[ClassInfo] = &[
    ClassInfo {
        uid: 0,
        name: "Base Event",
        category_uid: 0,
        category_name: "Uncategorized",
        activities: &[(0, "Unknown"), (99, "Other")],
        finding: false,
    },
    ClassInfo {
        uid: 2002,
        name: "Vulnerability Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: FINDING_ACTIVITIES,
        finding: true,
    },
    ClassInfo {
        uid: 2004,
        name: "Detection Finding",
        category_uid: 2,
        category_name: "Findings",
        activities: FINDING_ACTIVITIES,
        finding: true,
    },
    ClassInfo {
        uid: 3001,
        name: "Account Change",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[
            (0, "Unknown"),
            (1, "Create"),
            (2, "Enable"),
            (3, "Password Change"),
            (4, "Password Reset"),
            (5, "Disable"),
            (6, "Delete"),
            (7, "Attach Policy"),
            (8, "Detach Policy"),
            (9, "Lock"),
            (10, "MFA Factor Enable"),
            (11, "MFA Factor Disable"),
            (12, "Unlock"),
            (99, "Other"),
        ],
        finding: false,
    },
    ClassInfo {
        uid: 3002,
        name: "Authentication",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[
            (0, "Unknown"),
            (1, "Logon"),
            (2, "Logoff"),
            (3, "Authentication Ticket"),
            (4, "Service Ticket Request"),
            (5, "Service Ticket Renew"),
            (6, "Preauth"),
            (7, "Account Switch"),
            (99, "Other"),
        ],
        finding: false,
    },
    ClassInfo {
        uid: 3004,
        name: "Entity Management",
        category_uid: 3,
        category_name: "Identity & Access Management",
        activities: &[
            (0, "Unknown"),
            (1, "Create"),
            (2, "Read"),
            (3, "Update"),
            (4, "Delete"),
            (5, "Move"),
            (6, "Enroll"),
            (7, "Unenroll"),
            (8, "Enable"),
            (9, "Disable"),
            (10, "Activate"),
            (11, "Deactivate"),
            (12, "Suspend"),
            (13, "Resume"),
            (99, "Other"),
        ],
        finding: false,
    },
    ClassInfo {
        uid: 5001,
        name: "Device Inventory Info",
        category_uid: 5,
        category_name: "Discovery",
        activities: &[(0, "Unknown"), (1, "Log"), (2, "Collect"), (99, "Other")],
        finding: false,
    },
    ClassInfo {
        uid: 6003,
        name: "API Activity",
        category_uid: 6,
        category_name: "Application Activity",
        activities: &[
            (0, "Unknown"),
            (1, "Create"),
            (2, "Read"),
            (3, "Update"),
            (4, "Delete"),
            (99, "Other"),
        ],
        finding: false,
    },
];

/// The class with `uid`.
pub fn class(uid: u32) -> Option<&'static ClassInfo> {
    CLASSES.iter().find(|c| c.uid == uid)
}

fn caption(table: &'static [(i64, &'static str)], id: i64) -> Option<&'static str> {
    table.iter().find(|(i, _)| *i == id).map(|(_, c)| *c)
}

/// `activity_name` for `id` in `class`.
pub fn activity_name(class: &ClassInfo, id: i64) -> Option<&'static str> {
    caption(class.activities, id)
}

/// `status` for `id` in `class`.
pub fn status_name(class: &ClassInfo, id: i64) -> Option<&'static str> {
    caption(
        if class.finding {
            FINDING_STATUS
        } else {
            ACTIVITY_STATUS
        },
        id,
    )
}

/// `severity` for `id`.
pub fn severity_name(id: i64) -> Option<&'static str> {
    caption(SEVERITY, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_caption_is_plain_text_that_json_needs_no_escape_for() {
        // normalize.rs copies captions into the output as they are (`member_captions`).
        let plain = |s: &str| {
            s.bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        };
        for class in CLASSES {
            assert!(plain(class.name), "{}", class.name);
            assert!(plain(class.category_name), "{}", class.category_name);
            for (_, caption) in class.activities {
                assert!(plain(caption), "{caption}");
            }
        }
        for (_, caption) in ACTIVITY_STATUS.iter().chain(FINDING_STATUS).chain(SEVERITY) {
            assert!(plain(caption), "{caption}");
        }
    }
}
