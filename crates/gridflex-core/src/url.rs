//! Text for URLs: the percent-encoding the operator and OpenADR clients put in query
//! strings, paths and form bodies.

/// Percent-encodes a query value, path segment or form value: every byte of its UTF-8
/// but the RFC 3986 unreserved characters (letters, digits, `-`, `.`, `_`, `~`) as `%XX`
/// in upper-case hex. The result is safe anywhere in a URL or an
/// `application/x-www-form-urlencoded` body.
///
/// ```
/// use gridflex_core::url::encode_component;
///
/// assert_eq!(encode_component("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
/// assert_eq!(encode_component("TH_SP15_GEN-APND.x~1"), "TH_SP15_GEN-APND.x~1");
/// ```
pub fn encode_component(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::encode_component;

    /// Reads `%XX` escapes back.
    fn decode(s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).ok()
    }

    proptest! {
        #[test]
        fn only_unreserved_characters_and_escapes_that_read_back(value in any::<String>()) {
            let encoded = encode_component(&value);
            prop_assert!(
                encoded.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~%".contains(&c)),
                "{}", encoded
            );
            prop_assert_eq!(decode(&encoded), Some(value));
        }
    }
}
