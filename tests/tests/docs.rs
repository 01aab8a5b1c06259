//! The README's lists that name things in the code (the workspace's crates, the HTTP
//! routes) are checked against the code, so they cannot drift. No services needed.

use std::collections::BTreeSet;

use figment::Figment;
use figment::providers::{Format, Toml};
use wallet_hub_tests::binary::root;

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The backticked items of the first column of the first table under the heading `heading`.
fn first_column(readme: &str, heading: &str) -> Vec<String> {
    column(readme, heading, 1)
}

/// The backticked items of column `n` (from 1) of the first table under `heading`.
fn column(readme: &str, heading: &str, n: usize) -> Vec<String> {
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README has no `{heading}`"))
        .1;
    section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // the header and the separator
        .flat_map(|row| {
            let cell = row.split('|').nth(n).unwrap_or_default();
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Differences between two sets, for a readable failure.
fn assert_same(documented: &BTreeSet<String>, actual: &BTreeSet<String>, what: &str) {
    let missing: Vec<_> = actual.difference(documented).collect();
    let extra: Vec<_> = documented.difference(actual).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README's {what}: missing {missing:?}, not in the code {extra:?}"
    );
}

/// The workspace members of the root `Cargo.toml`, `dir/*` patterns expanded.
fn workspace_members() -> BTreeSet<String> {
    let root = root();
    let patterns: Vec<String> = Figment::from(Toml::file_exact(root.join("Cargo.toml")))
        .extract_inner("workspace.members")
        .expect("workspace.members");
    let mut members = BTreeSet::new();
    for pattern in patterns {
        let Some(dir) = pattern.strip_suffix("/*") else {
            members.insert(pattern);
            continue;
        };
        for entry in std::fs::read_dir(root.join(dir)).expect("member directory") {
            let path = entry.expect("directory entry").path();
            if path.join("Cargo.toml").is_file() {
                let name = path.file_name().expect("a name").to_string_lossy();
                members.insert(format!("{dir}/{name}"));
            }
        }
    }
    members
}

#[test]
fn the_readme_layout_names_every_workspace_crate_and_no_other_and_its_paths_exist() {
    let root = root();
    let paths: Vec<String> = first_column(&readme(), "## Layout")
        .into_iter()
        .map(|path| path.trim_end_matches('/').to_owned())
        .collect();
    for path in &paths {
        assert!(
            root.join(path).exists(),
            "README's layout names `{path}`, which does not exist"
        );
    }
    let crates: BTreeSet<String> = paths
        .into_iter()
        .filter(|path| path.starts_with("crates/") || root.join(path).join("Cargo.toml").is_file())
        .collect();
    assert_same(&crates, &workspace_members(), "layout table");
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[test]
fn the_readme_endpoint_table_names_every_route_of_the_openapi_document_and_no_other() {
    let document = serde_json::to_value(api::openapi::document(24)).expect("JSON");
    let paths = document["paths"].as_object().expect("paths");
    let routes: BTreeSet<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    assert!(
        routes.len() > 10,
        "the document has the API's routes: {routes:?}"
    );
    let documented: BTreeSet<String> = first_column(&readme(), "## HTTP API")
        .into_iter()
        .map(|route| {
            let (method, path) = route
                .split_once(' ')
                .unwrap_or_else(|| panic!("`{route}` is not `METHOD /path`"));
            let path = path.split_once('?').map_or(path, |(path, _query)| path);
            format!("{method} {path}")
        })
        .collect();
    assert_same(&documented, &routes, "endpoint table");
}

#[test]
fn the_readme_error_table_lists_every_problem_type_and_no_other() {
    let documented: BTreeSet<String> = column(&readme(), "### Errors", 2).into_iter().collect();
    let actual: BTreeSet<String> = api::problem_types::ALL
        .iter()
        .map(|kind| kind.slug.to_owned())
        .collect();
    assert_same(&documented, &actual, "error table (### Errors)");
}

/// The modules `lib.rs` (or `main.rs`) declares, and the names its `//!` map mentions in
/// backticks.
fn declared_and_mapped(source: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let declared = source
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            let line = line.strip_prefix("pub ").unwrap_or(line);
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            line.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_owned)
        })
        .collect();
    let mapped = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .flat_map(|line| {
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(|name| {
                    let name = name.trim_start_matches("crate::");
                    name.strip_suffix(".rs").unwrap_or(name).to_owned()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    (declared, mapped)
}

#[test]
fn every_crate_root_maps_every_module_it_declares() {
    let mut unmapped = Vec::new();
    for member in workspace_members() {
        let src = root().join(&member).join("src");
        for file in ["lib.rs", "main.rs"] {
            let Ok(source) = std::fs::read_to_string(src.join(file)) else {
                continue;
            };
            let (declared, mapped) = declared_and_mapped(&source);
            unmapped.extend(
                declared
                    .difference(&mapped)
                    .map(|module| format!("{member}/src/{file}: `{module}`")),
            );
        }
    }
    assert!(
        unmapped.is_empty(),
        "modules a crate root declares but its //! map does not name: {unmapped:#?}"
    );
}
