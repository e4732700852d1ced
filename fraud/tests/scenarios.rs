//! Table-driven scenarios: every file in `tests/scenarios/` has a `[base]` context, optional
//! `[policy]` overrides, and `[[scenario]]`s whose `context` is merged over the base (tables
//! merged, other values replaced; `remove = ["key"]` drops a base key), each with the expected
//! verdict and the exact set of reason codes.

use std::{collections::BTreeSet, path::Path};

use rollcall_fraud::{CheckInContext, Code, Policy, Verdict, assess};
use toml::Value;

fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Table(b), Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(existing) if existing.is_table() && v.is_table() => merge(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

struct Outcome {
    file: String,
    name: String,
    problem: Option<String>,
    codes: BTreeSet<Code>,
}

fn run_file(path: &Path) -> Vec<Outcome> {
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("?")
        .to_owned();
    let text = std::fs::read_to_string(path).expect("read scenario file");
    let doc: Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let base = doc
        .get("base")
        .cloned()
        .unwrap_or(Value::Table(Default::default()));
    let file_policy = doc
        .get("policy")
        .cloned()
        .unwrap_or(Value::Table(Default::default()));
    let scenarios = doc
        .get("scenario")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{file}: no [[scenario]]"));
    scenarios
        .iter()
        .map(|s| {
            let name = s
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            let mut ctx = base.clone();
            if let Some(over) = s.get("context") {
                merge(&mut ctx, over);
            }
            if let (Some(Value::Table(t)), Some(remove)) =
                (Some(&mut ctx), s.get("remove").and_then(Value::as_array))
            {
                for k in remove.iter().filter_map(Value::as_str) {
                    t.remove(k);
                }
            }
            let mut policy = file_policy.clone();
            if let Some(over) = s.get("policy") {
                merge(&mut policy, over);
            }
            let policy = Policy::from_toml(&file, &toml::to_string(&policy).expect("policy toml"))
                .unwrap_or_else(|e| panic!("{file} / {name}: {e}"));
            let ctx: CheckInContext = ctx
                .try_into()
                .unwrap_or_else(|e| panic!("{file} / {name}: context: {e}"));
            let verdict: Verdict = s
                .get("verdict")
                .cloned()
                .and_then(|v| v.try_into().ok())
                .unwrap_or_else(|| {
                    panic!("{file} / {name}: verdict must be allow, review or deny")
                });
            let expected: BTreeSet<Code> = s
                .get("codes")
                .and_then(Value::as_array)
                .unwrap_or_else(|| panic!("{file} / {name}: codes = [...] is required"))
                .iter()
                .map(|c| {
                    c.as_str()
                        .and_then(Code::parse)
                        .unwrap_or_else(|| panic!("{file} / {name}: unknown code {c}"))
                })
                .collect();
            let a = assess(&ctx, &policy);
            let got: BTreeSet<Code> = a.codes().into_iter().collect();
            let problem = (a.verdict != verdict || got != expected).then(|| {
                format!(
                    "expected {verdict:?} {expected:?}, got {:?} {got:?} ({})\n    {}",
                    a.verdict,
                    a.explain(),
                    a.reasons
                        .iter()
                        .map(|r| r.text.as_str())
                        .collect::<Vec<_>>()
                        .join("\n    ")
                )
            });
            Outcome {
                file: file.clone(),
                name,
                problem,
                codes: expected,
            }
        })
        .collect()
}

#[test]
fn every_scenario_gets_its_expected_verdict_and_codes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let outcomes: Vec<Outcome> = files.iter().flat_map(|f| run_file(f)).collect();
    let failures: Vec<String> = outcomes
        .iter()
        .filter_map(|o| {
            o.problem
                .as_ref()
                .map(|p| format!("{} / {}: {p}", o.file, o.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
    assert!(outcomes.len() >= 30, "only {} scenarios", outcomes.len());
    let covered: BTreeSet<Code> = outcomes
        .iter()
        .flat_map(|o| o.codes.iter().copied())
        .collect();
    let missing: Vec<_> = Code::ALL.iter().filter(|c| !covered.contains(c)).collect();
    assert!(missing.is_empty(), "codes without a scenario: {missing:?}");
    let mut names = BTreeSet::new();
    for o in &outcomes {
        assert!(
            names.insert((&o.file, &o.name)),
            "duplicate scenario name {} / {}",
            o.file,
            o.name
        );
    }
}

#[test]
fn the_example_context_file_parses_and_is_denied() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/home-with-mock-gps.json");
    let ctx: CheckInContext =
        serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse");
    let a = assess(&ctx, &Policy::default());
    assert_eq!(a.verdict, Verdict::Deny);
    assert_eq!(
        a.codes(),
        [
            Code::MockLocation,
            Code::OutsideGeofence,
            Code::RootedDevice,
            Code::NewDevice
        ]
    );
    assert_eq!(a.score, 1.0);
}
