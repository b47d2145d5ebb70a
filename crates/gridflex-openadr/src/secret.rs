//! [`Secret`] and [`Credentials`]: the OAuth client credentials, read from the
//! environment or a file, never printed.

use std::fmt;
use std::path::Path;

use crate::OpenAdrError;

/// A secret string whose `Debug` and `Display` print `***`, so it cannot reach a log, an
/// error or the audit log by accident. The value is readable only inside this crate.
///
/// ```
/// use gridflex_openadr::Secret;
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file, trimming one trailing newline (as written by `echo`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, OpenAdrError> {
        let path = path.as_ref();
        let mut s = std::fs::read_to_string(path).map_err(|e| OpenAdrError::Secret {
            name: path.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        if s.ends_with('\n') {
            s.pop();
            if s.ends_with('\r') {
                s.pop();
            }
        }
        if s.is_empty() {
            return Err(OpenAdrError::Secret {
                name: path.display().to_string(),
                reason: "empty".into(),
            });
        }
        Ok(Self(s))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// OAuth2 client credentials of the VEN (the client id is not secret; the secret is a
/// [`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret,
}

impl Credentials {
    /// Credentials from values.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
        }
    }

    /// Reads `{prefix}_CLIENT_ID` and the secret from `{prefix}_CLIENT_SECRET_FILE` (a
    /// file path, preferred) or `{prefix}_CLIENT_SECRET`; for example with prefix
    /// `GRIDFLEX_OPENADR`. Errors name the variable, never its value.
    pub fn from_env(prefix: &str) -> Result<Self, OpenAdrError> {
        let var = |name: String| -> Result<Option<String>, OpenAdrError> {
            match std::env::var(&name) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(OpenAdrError::Secret {
                    name,
                    reason: "not UTF-8".into(),
                }),
            }
        };
        let id_name = format!("{prefix}_CLIENT_ID");
        let client_id = var(id_name.clone())?.ok_or_else(|| OpenAdrError::Secret {
            name: id_name,
            reason: "not set".into(),
        })?;
        let file_name = format!("{prefix}_CLIENT_SECRET_FILE");
        let secret_name = format!("{prefix}_CLIENT_SECRET");
        let client_secret = match var(file_name)? {
            Some(path) => Secret::from_file(path)?,
            None => Secret::new(
                var(secret_name.clone())?.ok_or_else(|| OpenAdrError::Secret {
                    name: format!("{secret_name} (or {secret_name}_FILE)"),
                    reason: "not set".into(),
                })?,
            ),
        };
        Ok(Self {
            client_id,
            client_secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_credentials_hides_the_secret() {
        let c = Credentials::new("ven-1", Secret::new("s3cr3t-value"));
        let shown = format!("{c:?} {:#?}", c);
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("ven-1"));
    }

    #[test]
    fn secret_file_trims_one_newline_and_rejects_empty() {
        let dir = std::env::temp_dir().join(format!("gridflex-openadr-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("secret");
        std::fs::write(&f, "abc\n").unwrap();
        assert_eq!(Secret::from_file(&f).unwrap().expose(), "abc");
        std::fs::write(&f, "\n").unwrap();
        let e = Secret::from_file(&f).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let missing = Secret::from_file(dir.join("nope")).unwrap_err().to_string();
        assert!(missing.contains("nope"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
