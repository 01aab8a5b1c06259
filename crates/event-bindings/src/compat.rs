//! The compatibility gate: is a new schema of an event type version still readable by a
//! consumer written against the old one, and does every event written by the new code
//! still validate against the old schema?
//!
//! Breaking (needs a new version, see docs/events.md):
//! - a property removed (a rename is a removal plus an addition);
//! - a property newly required (new, or optional before);
//! - a type narrowed: a JSON type dropped, or a constraint added or tightened (`enum`,
//!   `const`, `pattern`, `format`, lengths, bounds, `additionalProperties: false`);
//! - an enum value removed.
//!
//! Compatible: a new optional property, a widened type, a relaxed constraint, changed
//! descriptions. The check reads self-contained schemas (what [`crate::schemas`]
//! generates); a `$ref` that changed is reported as a narrowing, since it cannot be judged.

use serde_json::{Map, Value};

/// One breaking difference, with the JSON pointer-like path of the schema location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakingChange {
    Removed { path: String },
    NewRequired { path: String },
    Narrowed { path: String, what: String },
    EnumValueRemoved { path: String, value: Value },
}

impl std::fmt::Display for BreakingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakingChange::Removed { path } => write!(f, "{path}: property removed"),
            BreakingChange::NewRequired { path } => write!(f, "{path}: newly required"),
            BreakingChange::Narrowed { path, what } => write!(f, "{path}: narrowed ({what})"),
            BreakingChange::EnumValueRemoved { path, value } => {
                write!(f, "{path}: enum value {value} removed")
            }
        }
    }
}

/// Every breaking change from `old` to `new`; empty means `new` may replace `old` under
/// the same version.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<BreakingChange> {
    let mut changes = Vec::new();
    compare("", old, new, &mut changes);
    changes
}

fn compare(path: &str, old: &Value, new: &Value, out: &mut Vec<BreakingChange>) {
    let empty = Map::new();
    let old_obj = old.as_object().unwrap_or(&empty);
    let new_obj = new.as_object().unwrap_or(&empty);
    let narrowed = |what: &str| BreakingChange::Narrowed {
        path: display(path),
        what: what.to_owned(),
    };

    // Alternatives: every old branch must live on in a branch of the new schema.
    let branches = |obj: &Map<String, Value>| -> Option<Vec<Value>> {
        obj.get("anyOf")
            .or_else(|| obj.get("oneOf"))
            .and_then(Value::as_array)
            .cloned()
    };
    match (branches(old_obj), branches(new_obj)) {
        (None, None) => {}
        (old_branches, new_branches) => {
            let old_branches = old_branches.unwrap_or_else(|| vec![old.clone()]);
            let new_branches = new_branches.unwrap_or_else(|| vec![new.clone()]);
            for (i, branch) in old_branches.iter().enumerate() {
                if !new_branches
                    .iter()
                    .any(|candidate| breaking_changes(branch, candidate).is_empty())
                {
                    out.push(narrowed(&format!("alternative {i} no longer accepted")));
                }
            }
            return;
        }
    }

    if old_obj.get("$ref") != new_obj.get("$ref") {
        out.push(narrowed("$ref changed"));
    }

    // Types: every JSON type the old schema allowed is still allowed.
    let types = |obj: &Map<String, Value>| -> Option<Vec<String>> {
        match obj.get("type")? {
            Value::String(t) => Some(vec![t.clone()]),
            Value::Array(ts) => Some(
                ts.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            ),
            _ => None,
        }
    };
    match (types(old_obj), types(new_obj)) {
        (_, None) => {}
        (None, Some(_)) => out.push(narrowed("type constraint added")),
        (Some(old_types), Some(new_types)) => {
            for t in old_types {
                let kept = new_types.contains(&t)
                    || (t == "integer" && new_types.iter().any(|n| n == "number"));
                if !kept {
                    out.push(narrowed(&format!("type `{t}` no longer allowed")));
                }
            }
        }
    }

    // Enumerations and constants.
    match (old_obj.get("enum"), new_obj.get("enum")) {
        (_, None) => {}
        (None, Some(_)) => out.push(narrowed("enum added")),
        (Some(old_values), Some(new_values)) => {
            let new_values = new_values.as_array().cloned().unwrap_or_default();
            for value in old_values.as_array().into_iter().flatten() {
                if !new_values.contains(value) {
                    out.push(BreakingChange::EnumValueRemoved {
                        path: display(path),
                        value: value.clone(),
                    });
                }
            }
        }
    }
    if let Some(constant) = new_obj.get("const")
        && old_obj.get("const") != Some(constant)
    {
        out.push(narrowed("const added or changed"));
    }
    for keyword in ["pattern", "format"] {
        if let Some(value) = new_obj.get(keyword)
            && old_obj.get(keyword) != Some(value)
        {
            out.push(narrowed(&format!("{keyword} added or changed")));
        }
    }
    for (keyword, tighter) in [
        ("minLength", Tighter::Larger),
        ("maxLength", Tighter::Smaller),
        ("minimum", Tighter::Larger),
        ("exclusiveMinimum", Tighter::Larger),
        ("maximum", Tighter::Smaller),
        ("exclusiveMaximum", Tighter::Smaller),
        ("minItems", Tighter::Larger),
        ("maxItems", Tighter::Smaller),
    ] {
        let number = |obj: &Map<String, Value>| obj.get(keyword).and_then(Value::as_f64);
        if let Some(new_bound) = number(new_obj) {
            let tightened = match number(old_obj) {
                None => true,
                Some(old_bound) => match tighter {
                    Tighter::Larger => new_bound > old_bound,
                    Tighter::Smaller => new_bound < old_bound,
                },
            };
            if tightened {
                out.push(narrowed(&format!("{keyword} added or tightened")));
            }
        }
    }
    if new_obj.get("additionalProperties") == Some(&Value::Bool(false))
        && old_obj.get("additionalProperties") != Some(&Value::Bool(false))
    {
        out.push(narrowed("additionalProperties: false"));
    }

    // Properties: none removed, each compatible, none newly required.
    let properties =
        |obj: &Map<String, Value>| obj.get("properties").and_then(Value::as_object).cloned();
    let (old_props, new_props) = (
        properties(old_obj).unwrap_or_default(),
        properties(new_obj).unwrap_or_default(),
    );
    for (name, old_prop) in &old_props {
        let prop_path = format!("{path}/{name}");
        match new_props.get(name) {
            None => out.push(BreakingChange::Removed {
                path: display(&prop_path),
            }),
            Some(new_prop) => compare(&prop_path, old_prop, new_prop, out),
        }
    }
    let required = |obj: &Map<String, Value>| -> Vec<String> {
        obj.get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let old_required = required(old_obj);
    for name in required(new_obj) {
        if !old_required.contains(&name) {
            out.push(BreakingChange::NewRequired {
                path: display(&format!("{path}/{name}")),
            });
        }
    }
    if let (Some(old_items), Some(new_items)) = (old_obj.get("items"), new_obj.get("items")) {
        compare(&format!("{path}/[]"), old_items, new_items, out);
    }
}

#[derive(Clone, Copy)]
enum Tighter {
    Larger,
    Smaller,
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A small v1 in the shape our generator writes.
    fn v1() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "io.example.thing.created.v1",
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "name": {"type": "string", "maxLength": 100},
                "status": {"type": "string", "enum": ["active", "frozen", "closed"]},
                "count": {"type": "integer"},
                "actor": {
                    "anyOf": [
                        {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
                        {"type": "null"}
                    ]
                },
                "amount": {
                    "type": "object",
                    "properties": {"value": {"type": "string"}, "currency": {"type": "string"}},
                    "required": ["value", "currency"]
                }
            },
            "required": ["id", "name", "status", "amount"]
        })
    }

    fn changed(edit: impl FnOnce(&mut Value)) -> Vec<BreakingChange> {
        let mut new = v1();
        edit(&mut new);
        breaking_changes(&v1(), &new)
    }

    #[test]
    fn the_same_schema_and_a_new_optional_field_are_compatible() {
        assert_eq!(breaking_changes(&v1(), &v1()), []);
        assert_eq!(
            changed(|s| {
                s["properties"]["nickname"] = json!({"type": "string"});
                s["properties"]["amount"]["properties"]["note"] = json!({"type": "string"});
            }),
            []
        );
    }

    #[test]
    fn widening_is_compatible() {
        assert_eq!(
            changed(|s| {
                s["properties"]["status"]["enum"] =
                    json!(["active", "frozen", "closed", "dormant"]);
                s["properties"]["name"]["maxLength"] = json!(200);
                s["properties"]["count"]["type"] = json!("number");
                s["properties"]["id"]["type"] = json!(["string", "null"]);
                s["required"] = json!(["id", "name", "amount"]);
                s["properties"]["actor"]["anyOf"]
                    .as_array_mut()
                    .expect("array")
                    .push(json!({"type": "string"}));
            }),
            []
        );
    }

    #[test]
    fn a_removed_field_is_breaking() {
        assert_eq!(
            changed(|s| {
                s["properties"]
                    .as_object_mut()
                    .expect("object")
                    .remove("count");
            }),
            [BreakingChange::Removed {
                path: "/count".to_owned()
            }]
        );
    }

    #[test]
    fn a_renamed_field_is_breaking() {
        let changes = changed(|s| {
            let props = s["properties"].as_object_mut().expect("object");
            let name = props.remove("name").expect("has name");
            props.insert("display_name".to_owned(), name);
            s["required"] = json!(["id", "display_name", "status", "amount"]);
        });
        assert!(changes.contains(&BreakingChange::Removed {
            path: "/name".to_owned()
        }));
        assert!(changes.contains(&BreakingChange::NewRequired {
            path: "/display_name".to_owned()
        }));
    }

    #[test]
    fn a_removed_nested_field_is_breaking() {
        assert_eq!(
            changed(|s| {
                s["properties"]["amount"]["properties"]
                    .as_object_mut()
                    .expect("object")
                    .remove("currency");
            }),
            [BreakingChange::Removed {
                path: "/amount/currency".to_owned()
            }]
        );
    }

    #[test]
    fn a_new_required_field_or_an_optional_one_made_required_is_breaking() {
        assert_eq!(
            changed(|s| {
                s["properties"]["region"] = json!({"type": "string"});
                s["required"] = json!(["id", "name", "status", "amount", "region"]);
            }),
            [BreakingChange::NewRequired {
                path: "/region".to_owned()
            }]
        );
        assert_eq!(
            changed(|s| {
                s["required"] = json!(["id", "name", "status", "amount", "count"]);
            }),
            [BreakingChange::NewRequired {
                path: "/count".to_owned()
            }]
        );
    }

    #[test]
    fn a_narrowed_type_is_breaking() {
        for edit in [
            (|s: &mut Value| s["properties"]["count"]["type"] = json!("string")) as fn(&mut Value),
            |s| s["properties"]["count"]["minimum"] = json!(0),
            |s| s["properties"]["name"]["maxLength"] = json!(50),
            |s| s["properties"]["name"]["pattern"] = json!("^[a-z]+$"),
            |s| s["properties"]["name"]["format"] = json!("email"),
            |s| s["properties"]["count"]["const"] = json!(1),
            |s| s["additionalProperties"] = json!(false),
            |s| s["properties"]["actor"] = json!({"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]}),
        ] {
            let changes = changed(edit);
            assert!(
                matches!(changes.as_slice(), [BreakingChange::Narrowed { .. }]),
                "{changes:?}"
            );
        }
    }

    #[test]
    fn a_removed_enum_value_is_breaking() {
        assert_eq!(
            changed(|s| s["properties"]["status"]["enum"] = json!(["active", "closed"])),
            [BreakingChange::EnumValueRemoved {
                path: "/status".to_owned(),
                value: json!("frozen")
            }]
        );
    }
}
