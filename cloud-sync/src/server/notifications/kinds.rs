//! The kinds of notification, each with who gets it, whether it is critical (cannot be muted,
//! mails at once through quiet hours and digests) and its channels' defaults.

use serde::Serialize;
use utoipa::ToSchema;

use crate::server::users::store::Role;

/// One kind of notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Kind {
    /// `alarm.tamper`, `fraud.review`, …
    pub name: &'static str,
    pub description: &'static str,
    /// Cannot be muted on either channel; mails at once, through quiet hours and digests.
    pub critical: bool,
    /// Whether it mails when neither the user nor the tenant said otherwise.
    pub email_by_default: bool,
    /// Who gets it.
    #[serde(skip)]
    #[schema(ignore)]
    pub roles: &'static [Role],
}

const SITE_WATCHERS: &[Role] = &[Role::Owner, Role::Admin, Role::Supervisor];

pub const DOOR_FORCED: &str = "alarm.door_forced";
pub const TAMPER: &str = "alarm.tamper";
pub const DOOR_HELD_OPEN: &str = "alarm.door_held_open";
pub const READER_OFFLINE: &str = "alarm.reader_offline";
pub const OTHER_ALARM: &str = "alarm.other";
pub const FRAUD_REVIEW: &str = "fraud.review";
pub const NODE_OFFLINE: &str = "node.offline";

const ADMINS: &[Role] = &[Role::Owner, Role::Admin];

/// Every kind, in the order the preferences list them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: DOOR_FORCED,
        description: "a door was opened without a grant",
        critical: true,
        email_by_default: true,
        roles: SITE_WATCHERS,
    },
    Kind {
        name: TAMPER,
        description: "a reader or controller reported tampering",
        critical: true,
        email_by_default: true,
        roles: SITE_WATCHERS,
    },
    Kind {
        name: FRAUD_REVIEW,
        description: "a check-in the fraud checks held for review",
        critical: true,
        email_by_default: true,
        roles: SITE_WATCHERS,
    },
    Kind {
        name: DOOR_HELD_OPEN,
        description: "a door stayed open past its time",
        critical: false,
        email_by_default: false,
        roles: SITE_WATCHERS,
    },
    Kind {
        name: READER_OFFLINE,
        description: "a card reader stopped answering its node",
        critical: false,
        email_by_default: true,
        roles: SITE_WATCHERS,
    },
    Kind {
        name: NODE_OFFLINE,
        description: "a site's node stopped reaching the cloud",
        critical: false,
        email_by_default: true,
        roles: ADMINS,
    },
    Kind {
        name: OTHER_ALARM,
        description: "any other hardware alarm a node reported",
        critical: false,
        email_by_default: false,
        roles: SITE_WATCHERS,
    },
];

pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// The notification kind of a hardware alarm of kind `alarm` (as nodes push it).
pub fn of_alarm(alarm: &str) -> &'static Kind {
    let name = match alarm {
        "door_forced" => DOOR_FORCED,
        "tamper" => TAMPER,
        "door_held_open" => DOOR_HELD_OPEN,
        "reader_offline" => READER_OFFLINE,
        _ => OTHER_ALARM,
    };
    kind(name).unwrap_or(&KINDS[KINDS.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alarm_maps_to_a_listed_kind() {
        for a in [
            "door_forced",
            "tamper",
            "door_held_open",
            "reader_offline",
            "x",
        ] {
            assert!(KINDS.contains(of_alarm(a)), "{a}");
        }
        assert_eq!(of_alarm("something_new").name, OTHER_ALARM);
        // Names are unique and critical kinds always mail.
        for (i, k) in KINDS.iter().enumerate() {
            assert!(
                KINDS[i + 1..].iter().all(|o| o.name != k.name),
                "{}",
                k.name
            );
            assert!(!k.critical || k.email_by_default, "{}", k.name);
        }
    }
}
