//! Alarms and audit lines the cloud refused wait on the node as dead letters, beside refused
//! events: an admin lists them (stream, the line, the cloud's reason, attempts) and sends one
//! again with the same retry call as an event; the retry is itself on the audit log.

use rollcall_node::{store::NodeStore, template_key::TemplateKey};
use rollcall_tests::{Node, NodeOptions};

#[test]
fn refused_alarms_and_audit_lines_are_listed_and_retried() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node_dir = dir.path().join("node");
    // A node's database in which the cloud refused an alarm and kept an audit line.
    let node = Node::start(&node_dir, &NodeOptions::standalone()).expect("node");
    drop(node);
    let data = node_dir.join("data");
    let (alarm_id, line_id) = {
        let key = TemplateKey::load_or_create(&data.join("template.key")).expect("key");
        let mut store = NodeStore::open(&data.join("node.sqlite"), key).expect("store");
        store
            .record_alarm("door_forced", Some(1), "door 1")
            .expect("alarm");
        store.add_person("p1", "Ann", None).expect("person");
        store.delete_person("p1", "installer").expect("deleted");
        let pending = store.pending_records(10).expect("pending");
        let alarm = pending.alarms[0].id.clone();
        let line = pending
            .audit
            .iter()
            .find(|l| l.action == "person.deleted")
            .map(|l| l.id.clone())
            .expect("the deletion");
        store
            .apply_ack(
                std::slice::from_ref(&line),
                &[(alarm.clone(), "invalid_record: test".to_owned())],
            )
            .expect("ack");
        (alarm, line)
    };

    let node = Node::start(&node_dir, &NodeOptions::standalone()).expect("node restarts");
    let dead = node
        .admin_list("/api/v1/dead-letters/records")
        .expect("records");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["stream"], "alarm");
    assert_eq!(dead[0]["record"]["id"], alarm_id.as_str());
    assert_eq!(dead[0]["record"]["kind"], "door_forced");
    assert_eq!(dead[0]["reason"], "invalid_record: test");
    assert_eq!(dead[0]["attempts"], 1);
    assert!(node.has_metric("rollcall_node_outbox_records_dead 1"));

    // The retry call events use: back in the outbox, and on the audit log.
    let (status, body) = node
        .post_json(
            &format!("/api/v1/dead-letters/{alarm_id}/retry"),
            &serde_json::json!({}),
            true,
        )
        .expect("retry");
    assert_eq!(status, 202, "{body}");
    assert!(
        node.admin_list("/api/v1/dead-letters/records")
            .expect("records")
            .is_empty()
    );
    let retried = node
        .admin_list("/api/v1/audit")
        .expect("audit")
        .into_iter()
        .any(|l| l["action"] == "sync.retry" && l["subject"] == alarm_id.as_str());
    assert!(retried, "the retry is audited");
    // A line that was stored is no dead letter.
    let (status, _) = node
        .post_json(
            &format!("/api/v1/dead-letters/{line_id}/retry"),
            &serde_json::json!({}),
            true,
        )
        .expect("retry");
    assert_eq!(status, 404);
}
