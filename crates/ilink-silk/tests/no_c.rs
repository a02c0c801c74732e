//! No C in the default build (issue 16): `cargo tree -p ilink-cli -e normal,build` with default
//! features lists neither `bindgen` nor a SILK C crate (`silk-sys` or any other `*silk*` crate
//! than ilink-silk). The SILK SDK is reachable only through ilink-silk's non-default
//! `c-reference` feature. Runs the same cargo as the test (`env!("CARGO")`), offline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

/// Whether a crate name is one the default build must not contain.
fn banned(name: &str) -> bool {
    name == "bindgen" || (name.contains("silk") && name != "ilink-silk")
}

/// Every dependency path of `tree` (cargo tree `--prefix depth` output) that ends in a banned
/// crate, as `a -> b -> c`.
fn banned_paths(tree: &str) -> Vec<String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for line in tree.lines() {
        let digits = line.chars().take_while(char::is_ascii_digit).count();
        let Ok(depth) = line[..digits].parse::<usize>() else {
            continue;
        };
        let Some(name) = line[digits..].split_whitespace().next() else {
            continue;
        };
        stack.truncate(depth);
        stack.push(name);
        if banned(name) {
            found.push(stack.join(" -> "));
        }
    }
    found
}

#[test]
fn finds_the_path_to_a_banned_crate() {
    let tree = "0ilink-cli v0.1.0\n1ilink-silk v0.1.0\n2silk-sys v0.1.0\n3bindgen v0.69.0 (*)\n1tokio v1\n";
    assert_eq!(
        banned_paths(tree),
        [
            "ilink-cli -> ilink-silk -> silk-sys",
            "ilink-cli -> ilink-silk -> silk-sys -> bindgen"
        ]
    );
    assert!(banned_paths("0ilink-cli v0.1.0\n1ilink-silk v0.1.0\n1cc v1\n").is_empty());
}

/// `cargo tree` in the workspace root with these selection arguments (offline, depth
/// prefixes).
fn tree(selection: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .arg("tree")
        .args(selection)
        .args(["--prefix", "depth", "--charset", "ascii", "--offline"])
        .output()
        .expect("run cargo tree");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree failed: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn default_cli_build_has_no_bindgen_and_no_silk_c_crate() {
    let tree = tree(&["-p", "ilink-cli", "-e", "normal,build"]);
    assert!(
        tree.lines().any(|l| l.starts_with("0ilink-cli ")),
        "unexpected cargo tree output:\n{tree}"
    );
    assert!(
        tree.contains("ilink-silk "),
        "ilink-silk missing from the tree"
    );
    let paths = banned_paths(&tree);
    assert!(
        paths.is_empty(),
        "the default build of ilink-cli pulls C/bindgen for SILK:\n{}",
        paths.join("\n")
    );
}

/// `cargo test --workspace` (the README's test command) builds no SILK C either: no member
/// enables `c-reference` by default, not even through a dev-dependency (feature unification
/// would turn it on for everyone).
#[test]
fn workspace_tests_build_no_silk_c() {
    let tree = tree(&["--workspace", "-e", "normal,build,dev"]);
    assert!(
        tree.contains("ilink-silk "),
        "ilink-silk missing from the tree"
    );
    let paths = banned_paths(&tree);
    assert!(
        paths.is_empty(),
        "`cargo test --workspace` would build C/bindgen for SILK:\n{}",
        paths.join("\n")
    );
}
