//! The committed event schemas (`schemas/` at the repository root) against the code.
//!
//! - Each current event type's generated schema must equal its committed file
//!   (`UPDATE_SCHEMAS=1 cargo test -p event-bindings --test schemas` rewrites them).
//! - The compatibility gate: a generated schema may differ from the committed one of the
//!   same type version only compatibly; a breaking change needs a new version, and
//!   `UPDATE_SCHEMAS=1` refuses to write it over the old one.
//! - Every committed schema file belongs to a type the code still writes or reads: the
//!   old version of a type is kept (with its Rust type) for its deprecation window.

use std::path::PathBuf;

use domain::EventType;
use event_bindings::compat::breaking_changes;
use event_bindings::schemas::{schema, schema_file, schema_text};

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1")
}

fn committed(event_type: EventType) -> Option<serde_json::Value> {
    let path = schemas_dir().join(schema_file(event_type));
    let text = std::fs::read_to_string(&path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn no_generated_schema_breaks_the_committed_one_of_its_version() {
    let mut broken = Vec::new();
    for event_type in EventType::ALL {
        let Some(old) = committed(event_type) else {
            continue; // A new type or version: nothing to break yet.
        };
        for change in breaking_changes(&old, &schema(event_type)) {
            broken.push(format!("{}: {change}", schema_file(event_type)));
        }
    }
    assert!(
        broken.is_empty(),
        "breaking changes to published event versions (make a new version instead, see \
         docs/events.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn committed_schemas_are_what_the_code_generates() {
    let gate_passes = EventType::ALL
        .into_iter()
        .all(|t| committed(t).is_none_or(|old| breaking_changes(&old, &schema(t)).is_empty()));
    let mut stale = Vec::new();
    for event_type in EventType::ALL {
        let path = schemas_dir().join(schema_file(event_type));
        let generated = schema_text(event_type);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(generated.as_str()) {
            continue;
        }
        if updating() && gate_passes {
            std::fs::write(&path, generated).expect("schema written");
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "schemas differ from the code: {stale:?}; regenerate with \
         `UPDATE_SCHEMAS=1 cargo test -p event-bindings --test schemas` (refused while the \
         change is breaking)"
    );
}

#[test]
fn every_committed_schema_file_is_of_a_type_the_code_knows() {
    let known: Vec<String> = EventType::ALL.into_iter().map(schema_file).collect();
    let mut unknown = Vec::new();
    for entry in std::fs::read_dir(schemas_dir()).expect("schemas/ exists") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !known.contains(&name) {
            unknown.push(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "schemas the code does not know: {unknown:?}"
    );
}

/// The gate on a real committed schema: what a code change would generate.
#[test]
fn the_gate_refuses_breaking_edits_of_a_real_schema_and_accepts_an_optional_field() {
    let committed = committed(EventType::FundsAdded).expect("committed funds.added schema");
    let edited = |edit: fn(&mut serde_json::Value)| {
        let mut new = committed.clone();
        edit(&mut new);
        breaking_changes(&committed, &new)
    };
    assert_eq!(
        edited(|s| {
            s["properties"]["memo"] = serde_json::json!({"type": "string"});
        }),
        [],
        "a new optional field is compatible"
    );
    for (what, edit) in [
        (
            "field removed",
            (|s: &mut serde_json::Value| {
                s["properties"]
                    .as_object_mut()
                    .expect("properties")
                    .remove("balance_after");
            }) as fn(&mut serde_json::Value),
        ),
        ("new required field", |s| {
            s["properties"]["memo"] = serde_json::json!({"type": "string"});
            s["required"]
                .as_array_mut()
                .expect("required")
                .push("memo".into());
        }),
        ("type narrowed", |s| {
            s["properties"]["correlation_id"]["maxLength"] = serde_json::json!(16);
        }),
        ("nested field renamed", |s| {
            let amount = s["properties"]["amount"]["properties"]
                .as_object_mut()
                .expect("amount properties");
            let value = amount.remove("value").expect("value");
            amount.insert("amount".to_owned(), value);
        }),
    ] {
        assert!(!edited(edit).is_empty(), "{what} must be breaking");
    }
}
