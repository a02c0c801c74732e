//! `cargo xtask public-api`: a crate's public API names only types it defines or re-exports
//! (reqwest's `Proxy`, rustls's external-types check in CI). A user should never need a crate
//! the API does not hand them.
//!
//! It builds the crate's rustdoc JSON (`RUSTC_BOOTSTRAP=1`, `--output-format json`, which
//! holds only public items), then walks every public item (skipping auto-trait and blanket
//! impls, which rustdoc synthesises) for references to items of other crates. A reference is
//! fine when its crate is `std`/`core`/`alloc`, is re-exported whole (`pub use ilink_proto as
//! proto`), is on the crate's allowlist below, or the item itself is re-exported. Anything
//! else is reported with the public item that names it.
//!
//! The JSON is read with a small parser of its own (xtask depends on std only).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use crate::util::Error;

/// Crates whose types a crate's API may name without re-exporting them: the traits and data
/// types of the ecosystem the API is built for.
fn allowlist(package: &str) -> &'static [&'static str] {
    match package {
        // `Updates` is a `futures_core::Stream`; `UndecodableMessage::raw` is a
        // `serde_json::Value`; stored types are `serde` (`serde_core`) types; media readers are
        // `tokio::io::AsyncRead` (the runtime the client runs on).
        "ilink-client" => &["futures_core", "serde", "serde_core", "serde_json", "tokio"],
        _ => &[],
    }
}

pub fn run(args: &[String]) -> Result<(), Error> {
    let mut packages = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-p" | "--package" => match it.next() {
                Some(p) => packages.push(p.clone()),
                None => return Err(Error::usage("-p needs a package name")),
            },
            other => return Err(Error::usage(format!("unknown option `{other}`"))),
        }
    }
    if packages.is_empty() {
        packages.push("ilink-client".to_owned());
    }
    let root = crate::util::root();
    let mut failures = 0;
    for package in &packages {
        let json = build_json(&root, package)?;
        let problems = check(&json, allowlist(package))?;
        if problems.is_empty() {
            println!("{package}: the public API names only its own or re-exported types");
        } else {
            failures += problems.len();
            eprintln!("{package}: the public API names types of crates it does not re-export:");
            for p in &problems {
                eprintln!("  {p}");
            }
        }
    }
    if failures > 0 {
        return Err(Error::new(format!(
            "{failures} foreign type(s) in the public API: re-export their crate or wrap them"
        )));
    }
    Ok(())
}

fn build_json(root: &Path, package: &str) -> Result<Json, Error> {
    let target = root.join("target").join("public-api");
    let status = Command::new(crate::util::cargo())
        .current_dir(root)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", &target)
        .args(["rustdoc", "-q", "-p", package, "--lib", "--"])
        .args(["-Z", "unstable-options", "--output-format", "json"])
        .status()
        .map_err(|e| Error::new(format!("could not run cargo rustdoc: {e}")))?;
    if !status.success() {
        return Err(Error::new(format!("cargo rustdoc -p {package} failed")));
    }
    let file = target
        .join("doc")
        .join(format!("{}.json", package.replace('-', "_")));
    let text = std::fs::read_to_string(&file)
        .map_err(|e| Error::new(format!("could not read {}: {e}", file.display())))?;
    parse(&text).map_err(|e| Error::new(format!("{}: {e}", file.display())))
}

/// The problems found in a rustdoc JSON document.
fn check(doc: &Json, allowed_crates: &[&str]) -> Result<Vec<String>, Error> {
    let bad = |what: &str| Error::new(format!("unexpected rustdoc JSON: no {what}"));
    let index = doc
        .get("index")
        .and_then(Json::as_obj)
        .ok_or_else(|| bad("index"))?;
    let paths = doc
        .get("paths")
        .and_then(Json::as_obj)
        .ok_or_else(|| bad("paths"))?;
    let crates = doc
        .get("external_crates")
        .and_then(Json::as_obj)
        .ok_or_else(|| bad("external_crates"))?;
    let crate_name = |crate_id: &str| -> String {
        crates
            .get(crate_id)
            .and_then(|c| c.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_owned()
    };
    let mut ok_crates: BTreeSet<String> = ["std", "core", "alloc"]
        .iter()
        .chain(allowed_crates)
        .map(|s| (*s).to_owned())
        .collect();
    let mut ok_items: BTreeSet<String> = BTreeSet::new();
    // Re-exports: a whole crate (`pub use x as y`), or single items.
    for item in index.values() {
        let Some(u) = item.get("inner").and_then(|i| i.get("use")) else {
            continue;
        };
        let Some(id) = u.get("id").map(Json::key) else {
            continue;
        };
        match paths.get(&id) {
            Some(p)
                if p.get("kind").and_then(Json::as_str) == Some("module")
                    && p.get("path")
                        .and_then(Json::as_arr)
                        .is_some_and(|a| a.len() == 1) =>
            {
                if let Some(c) = p.get("crate_id") {
                    ok_crates.insert(crate_name(&c.key()));
                }
            }
            _ => {
                ok_items.insert(id);
            }
        }
    }
    let mut problems = BTreeSet::new();
    for item in index.values() {
        if item.get("crate_id").map(Json::key).as_deref() != Some("0") {
            continue;
        }
        let inner = item.get("inner");
        if inner.is_some_and(|i| i.get("use").is_some()) {
            continue;
        }
        if let Some(imp) = inner.and_then(|i| i.get("impl")) {
            let synthetic = imp.get("is_synthetic").and_then(Json::as_bool) == Some(true);
            let blanket = imp.get("blanket_impl").is_some_and(|b| !b.is_null());
            if synthetic || blanket {
                continue;
            }
        }
        let owner = item
            .get("name")
            .and_then(Json::as_str)
            .map_or_else(|| describe_impl(item), str::to_owned);
        let mut refs = Vec::new();
        collect_paths(item, &mut refs);
        for (name, id) in refs {
            if ok_items.contains(&id) {
                continue;
            }
            let Some(p) = paths.get(&id) else {
                continue;
            };
            let Some(crate_id) = p.get("crate_id").map(Json::key) else {
                continue;
            };
            if crate_id == "0" {
                continue;
            }
            let krate = crate_name(&crate_id);
            if !ok_crates.contains(&krate) {
                problems.insert(format!("{owner}: {krate}::{name}"));
            }
        }
    }
    Ok(problems.into_iter().collect())
}

fn describe_impl(item: &Json) -> String {
    let mut refs = Vec::new();
    if let Some(f) = item
        .get("inner")
        .and_then(|i| i.get("impl"))
        .and_then(|i| i.get("for"))
    {
        collect_paths(f, &mut refs);
    }
    match refs.first() {
        Some((name, _)) => format!("impl for {name}"),
        None => "an impl".to_owned(),
    }
}

/// Every rustdoc `Path` (an object with a string `path` and an `id`) inside `v`.
fn collect_paths(v: &Json, out: &mut Vec<(String, String)>) {
    match v {
        Json::Obj(m) => {
            if let (Some(Json::Str(p)), Some(id)) = (m.get("path"), m.get("id")) {
                out.push((p.clone(), id.key()));
            }
            for x in m.values() {
                collect_paths(x, out);
            }
        }
        Json::Arr(a) => {
            for x in a {
                collect_paths(x, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// A small JSON parser (numbers are kept as their text).
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Obj(m) => m.get(key),
            _ => None,
        }
    }
    fn as_obj(&self) -> Option<&BTreeMap<String, Json>> {
        match self {
            Self::Obj(m) => Some(m),
            _ => None,
        }
    }
    fn as_arr(&self) -> Option<&[Json]> {
        match self {
            Self::Arr(a) => Some(a),
            _ => None,
        }
    }
    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
    fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
    /// An id as the map keys spell it (ids are numbers in newer formats, strings before).
    fn key(&self) -> String {
        match self {
            Self::Num(n) | Self::Str(n) => n.clone(),
            other => format!("{other:?}"),
        }
    }
}

fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing data at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Result<(), String> {
        if self.s.get(self.i..self.i + lit.len()) == Some(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            Err(format!("expected `{lit}` at byte {}", self.i))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 512 {
            return Err("nested too deeply".to_owned());
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'n') => self.eat("null").map(|()| Json::Null),
            Some(b't') => self.eat("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.eat("false").map(|()| Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return Err(format!("expected `,` or `]` at byte {}", self.i)),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(format!("expected `,` or `}}` at byte {}", self.i)),
                    }
                }
            }
            Some(c) if *c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(c))
                {
                    self.i += 1;
                }
                let n = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
                Ok(Json::Num(n.to_owned()))
            }
            _ => Err(format!("unexpected input at byte {}", self.i)),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| format!("bad \\u escape at byte {}", self.i))?;
        self.i += 4;
        Ok(h)
    }

    fn string(&mut self) -> Result<String, String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".to_owned());
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated escape".to_owned());
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.eat("\\u").is_ok() {
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_json() {
        let v =
            parse(r#" {"a": [1, -2.5e3, "x\"\u00e9\ud83d\ude00", true, null], "b": {}} "#).unwrap();
        let a = v.get("a").and_then(Json::as_arr).unwrap();
        assert_eq!(a[0], Json::Num("1".into()));
        assert_eq!(a[2].as_str(), Some("x\"é😀"));
        assert!(a[4].is_null());
        assert!(parse("{").is_err());
        assert!(parse("[1,]").is_err());
    }

    fn doc(extra_use: &str) -> Json {
        // A crate with `pub fn f(p: other::Proxy)` and maybe a re-export.
        parse(&format!(
            r#"{{
            "index": {{
                "1": {{"crate_id": 0, "name": "f", "inner": {{"function": {{"sig": {{"inputs":
                    [["p", {{"resolved_path": {{"path": "other::Proxy", "id": 9, "args": null}}}}]]}}}}}}}},
                "2": {{"crate_id": 0, "name": "g", "inner": {{"function": {{"sig": {{"inputs":
                    [["s", {{"resolved_path": {{"path": "String", "id": 8, "args": null}}}}]]}}}}}}}},
                "3": {{"crate_id": 0, "name": null, "inner": {{"impl": {{"is_synthetic": false,
                    "blanket_impl": {{"generic": "T"}}, "trait": {{"path": "Other", "id": 9}}}}}}}}
                {extra_use}
            }},
            "paths": {{
                "9": {{"crate_id": 5, "path": ["other", "Proxy"], "kind": "struct"}},
                "8": {{"crate_id": 1, "path": ["alloc", "string", "String"], "kind": "struct"}},
                "7": {{"crate_id": 5, "path": ["other"], "kind": "module"}}
            }},
            "external_crates": {{"1": {{"name": "alloc"}}, "5": {{"name": "other"}}}}
        }}"#
        ))
        .unwrap()
    }

    #[test]
    fn reports_a_foreign_type_unless_re_exported() {
        let problems = check(&doc(""), &[]).unwrap();
        assert_eq!(problems, vec!["f: other::other::Proxy".to_owned()]);
        let whole = r#", "4": {"crate_id": 0, "name": "other", "inner": {"use": {"source": "other", "name": "other", "id": 7, "is_glob": false}}}"#;
        assert!(check(&doc(whole), &[]).unwrap().is_empty());
        let item = r#", "4": {"crate_id": 0, "name": "Proxy", "inner": {"use": {"source": "other::Proxy", "name": "Proxy", "id": 9, "is_glob": false}}}"#;
        assert!(check(&doc(item), &[]).unwrap().is_empty());
        assert!(check(&doc(""), &["other"]).unwrap().is_empty());
    }
}
