//! Values read from files: Kafka's config-provider references.
//!
//! A value may hold `${directory:<dir>:<name>}` (the contents of the file
//! `<dir>/<name>`: Kafka's `DirectoryConfigProvider`, made for Kubernetes
//! Secrets mounted as a volume, one file per key) or `${file:<path>:<key>}`
//! (the value of `<key>` in the Java properties file `<path>`: Kafka's
//! `FileConfigProvider`), alone or inside a longer text. This is what a
//! Kafka user already writes in a Java client's properties, and it works
//! the same in the TOML file, in `RIVULET__*` variables and in Helm values.
//!
//! References are checked when the config is loaded (the file must be
//! readable and hold the key), but the config keeps the reference, not the
//! secret: printing the config, or an error quoting a value, shows the
//! reference. The file is read again each time a Kafka client is created
//! (and by `Config::app`), so a rotated Secret is picked up when the
//! clients are next made.

use std::path::Path;

use super::ConfigError;

/// The providers rivulet resolves, as Kafka names them.
const PROVIDERS: [&str; 2] = ["directory", "file"];

/// Whether `value` holds a reference rivulet resolves.
pub(crate) fn has_reference(value: &str) -> bool {
    references(value).next().is_some()
}

/// `value` with every reference replaced by what it names. `key` and
/// `origin` are for the error.
pub(crate) fn resolve(key: &str, origin: &str, value: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = 0;
    for r in references(value) {
        out.push_str(&value[rest..r.start]);
        let found = read(&r).map_err(|reason| ConfigError::Reference {
            key: key.to_string(),
            reference: value[r.start..r.end].to_string(),
            origin: origin.to_string(),
            reason,
        })?;
        out.push_str(&found);
        rest = r.end;
    }
    out.push_str(&value[rest..]);
    Ok(out)
}

/// One `${provider:path:key}` in a value, by byte positions.
struct Reference<'a> {
    start: usize,
    end: usize,
    provider: &'a str,
    path: &'a str,
    key: &'a str,
}

/// The references in `value`, in order. As Kafka's `ConfigTransformer`
/// pattern: the provider ends at the first `:`, the path at the next, the
/// key at the closing `}`. Other `${...}` text is left alone.
fn references(value: &str) -> impl Iterator<Item = Reference<'_>> {
    let mut from = 0;
    std::iter::from_fn(move || loop {
        let start = from + value.get(from..)?.find("${")?;
        let close = start + value[start..].find('}')?;
        from = close + 1;
        let inner = &value[start + 2..close];
        let Some((provider, rest)) = inner.split_once(':') else { continue };
        if !PROVIDERS.contains(&provider) {
            continue;
        }
        let (path, key) = rest.split_once(':').unwrap_or((rest, ""));
        return Some(Reference { start, end: close + 1, provider, path, key });
    })
}

fn read(r: &Reference<'_>) -> Result<String, String> {
    if r.path.is_empty() || r.key.is_empty() {
        return Err(format!("it needs a path and a key: ${{{}:<path>:<key>}}", r.provider));
    }
    match r.provider {
        "directory" => {
            // As DirectoryConfigProvider: only files directly in the folder.
            if r.key.contains('/') || r.key == ".." || r.key == "." {
                return Err(format!("`{}` is not a file name in the folder {}", r.key, r.path));
            }
            let path = Path::new(r.path).join(r.key);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            // A file written by an editor or `echo` ends in a newline no
            // password has.
            let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text.as_str());
            Ok(text.to_string())
        }
        _ => {
            let text = std::fs::read_to_string(r.path).map_err(|e| format!("reading {}: {e}", r.path))?;
            properties_value(&text, r.key)
                .ok_or_else(|| format!("the properties file {} has no key `{}`", r.path, r.key))
        }
    }
}

/// The value of `key` in a Java properties file: `key=value`, `key: value`
/// or `key value` lines, `#` and `!` comments. (Line continuations and
/// escapes are not read.)
fn properties_value(text: &str, key: &str) -> Option<String> {
    text.lines().map(str::trim_start).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!')).find_map(
        |line| {
            let end = line.find(|c: char| c == '=' || c == ':' || c.is_whitespace()).unwrap_or(line.len());
            if &line[..end] != key {
                return None;
            }
            let rest = line[end..].trim_start();
            let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest).trim_start();
            Some(rest.trim_end().to_string())
        },
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn directory_references_read_one_file_without_its_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), "s3cret\n").unwrap();
        let d = dir.path().display();
        assert_eq!(resolve("k", "o", &format!("${{directory:{d}:password}}")).unwrap(), "s3cret");
        let jaas = format!("user=\"bob\" password=\"${{directory:{d}:password}}\";");
        assert_eq!(resolve("k", "o", &jaas).unwrap(), "user=\"bob\" password=\"s3cret\";");
        assert_eq!(resolve("k", "o", "no ${reference} here").unwrap(), "no ${reference} here");
        assert!(!has_reference("${env:HOME} and ${unclosed"));
        let err = resolve("sasl.password", "file app.toml", &format!("${{directory:{d}:missing}}")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sasl.password") && text.contains("missing") && text.contains("app.toml"), "{text}");
        let err = resolve("k", "o", &format!("${{directory:{d}:../etc}}")).unwrap_err();
        assert!(err.to_string().contains("not a file name"), "{err}");
    }

    #[test]
    fn file_references_read_a_key_of_a_properties_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kafka.properties");
        std::fs::write(&path, "# comment\nsasl.username = bob\nsasl.password: pa:ss=word \n! other\nempty=\n").unwrap();
        let p = path.display();
        assert_eq!(resolve("k", "o", &format!("${{file:{p}:sasl.password}}")).unwrap(), "pa:ss=word");
        assert_eq!(resolve("k", "o", &format!("${{file:{p}:sasl.username}}")).unwrap(), "bob");
        assert_eq!(resolve("k", "o", &format!("${{file:{p}:empty}}")).unwrap(), "");
        let err = resolve("k", "o", &format!("${{file:{p}:sasl.mechanism}}")).unwrap_err();
        assert!(err.to_string().contains("no key `sasl.mechanism`"), "{err}");
        assert!(resolve("k", "o", "${file:/no/such/file:x}").is_err());
        assert!(resolve("k", "o", "${file:/only/a/path}").is_err());
    }
}
