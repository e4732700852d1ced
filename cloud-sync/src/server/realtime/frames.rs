//! Who may subscribe to which topic (the frames, topics and close codes themselves are the
//! protocol's: `rollcall_protocol::realtime`).

pub use rollcall_protocol::realtime::*;

use crate::server::users::store::Role;

/// Why a job topic is refused unless the job is the caller's own.
pub const JOB_OF_ANOTHER: &str = "only those who read the jobs, or who started it, follow a job";

/// Whether a caller of `role` (user `user`, none for the platform token) may subscribe to
/// `topic`: the tenant's and the sites' messages to those who read attendance, a user's to
/// that user, a role's to its users.
pub fn allowed(topic: &Topic, role: Role, user: Option<&str>) -> Result<(), String> {
    let reads_attendance = matches!(
        role,
        Role::Owner | Role::Admin | Role::Supervisor | Role::Auditor
    );
    match topic {
        Topic::Tenant | Topic::Site(_) if reads_attendance => Ok(()),
        Topic::Tenant | Topic::Site(_) => Err(format!(
            "the `{}` role does not read the tenant's or a site's messages",
            role.as_str()
        )),
        Topic::User(id) if user == Some(id.as_str()) => Ok(()),
        Topic::User(_) => Err("only a user subscribes to their own messages".into()),
        Topic::Role(r) if r == role.as_str() => Ok(()),
        Topic::Role(_) => Err("only the users of a role subscribe to it".into()),
        // Those who read the jobs follow any; anyone else only a job they started (looked up
        // by the connection: `needs_actor_check`).
        Topic::Job(_) if matches!(role, Role::Owner | Role::Admin | Role::Auditor) => Ok(()),
        Topic::Job(_) => Err(JOB_OF_ANOTHER.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_authorised_by_role_and_user() {
        let t = |s: &str| Topic::parse(s).expect("topic");
        assert!(allowed(&t("tenant"), Role::Supervisor, Some("u1")).is_ok());
        assert!(allowed(&t("tenant"), Role::Guard, Some("u1")).is_err());
        assert!(allowed(&t("site:hq"), Role::Auditor, None).is_ok());
        assert!(allowed(&t("user:u1"), Role::Guard, Some("u1")).is_ok());
        assert!(allowed(&t("user:u2"), Role::Owner, Some("u1")).is_err());
        assert!(allowed(&t("role:guard"), Role::Guard, Some("u1")).is_ok());
        assert!(allowed(&t("role:admin"), Role::Guard, Some("u1")).is_err());
        // Every role name the protocol takes is one the cloud knows.
        for name in ROLES {
            assert_eq!(Role::parse(name).map(Role::as_str), Some(name));
        }
    }
}
