//! Slurm host lists: `node[01-03,7],login1` -> `node01 node02 node03 node07 login1`.
//!
//! A job's `nodes` field is a compressed host list; its `gres_detail` has one entry per
//! node in the same order, so the list must be expanded to tie GPUs to nodes.

use crate::SlurmError;

/// The most node names one list may expand to (far above any real cluster; a guard
/// against hostile input such as `n[0-999999999]`).
pub const MAX_HOSTS: usize = 65_536;

/// Expands a Slurm host list (`a[1-3,5]b[01-02],c`), keeping zero padding.
///
/// ```
/// use gridflex_slurm::hostlist::expand;
/// assert_eq!(expand("gpu[08-10],login")?, ["gpu08", "gpu09", "gpu10", "login"]);
/// # Ok::<(), gridflex_slurm::SlurmError>(())
/// ```
pub fn expand(list: &str) -> Result<Vec<String>, SlurmError> {
    let mut out = Vec::new();
    for item in split_top(list, '[', ']')? {
        if item.is_empty() {
            continue;
        }
        let mut names = vec![String::new()];
        let mut rest = item;
        while !rest.is_empty() {
            match rest.find('[') {
                None => {
                    for n in &mut names {
                        n.push_str(rest);
                    }
                    rest = "";
                }
                Some(open) => {
                    let prefix = &rest[..open];
                    let close = rest[open..]
                        .find(']')
                        .map(|c| open + c)
                        .ok_or_else(|| bad(list, "unclosed '['"))?;
                    let values = ranges(&rest[open + 1..close], list)?;
                    let total = names.len().saturating_mul(values.len());
                    if out.len().saturating_add(total) > MAX_HOSTS {
                        return Err(bad(
                            list,
                            &format!("expands to more than {MAX_HOSTS} hosts"),
                        ));
                    }
                    let mut next = Vec::with_capacity(total);
                    for n in &names {
                        for v in &values {
                            next.push(format!("{n}{prefix}{v}"));
                        }
                    }
                    names = next;
                    rest = &rest[close + 1..];
                }
            }
        }
        if names.iter().any(|n| n.contains(']')) {
            return Err(bad(list, "unbalanced ']'"));
        }
        out.extend(names);
    }
    Ok(out)
}

/// Splits `s` at commas outside `open`..`close` groups.
pub(crate) fn split_top(s: &str, open: char, close: char) -> Result<Vec<&str>, SlurmError> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth = depth
                .checked_sub(1)
                .ok_or_else(|| bad(s, &format!("unbalanced '{close}'")))?;
        } else if c == ',' && depth == 0 {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if depth != 0 {
        return Err(bad(s, &format!("unclosed '{open}'")));
    }
    parts.push(&s[start..]);
    Ok(parts)
}

/// `01-03,7` -> `["01", "02", "03", "7"]`, keeping the width of the lower bound.
fn ranges(spec: &str, list: &str) -> Result<Vec<String>, SlurmError> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let width = lo.len();
        let (a, b) = (number(lo, list)?, number(hi, list)?);
        if b < a {
            return Err(bad(list, &format!("range {part} runs backwards")));
        }
        if (b - a) as usize >= MAX_HOSTS || out.len() + (b - a) as usize >= MAX_HOSTS {
            return Err(bad(
                list,
                &format!("expands to more than {MAX_HOSTS} hosts"),
            ));
        }
        for v in a..=b {
            out.push(format!("{v:0width$}"));
        }
    }
    Ok(out)
}

fn number(s: &str, list: &str) -> Result<u64, SlurmError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(list, &format!("{s:?} is not a number")));
    }
    s.parse()
        .map_err(|_| bad(list, &format!("{s:?} is out of range")))
}

fn bad(list: &str, why: &str) -> SlurmError {
    SlurmError::Field {
        job: 0,
        field: "nodes",
        detail: format!("host list {list:?}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn expands_the_forms_slurm_prints() -> Result<(), SlurmError> {
        assert_eq!(expand("localhost")?, ["localhost"]);
        assert_eq!(expand("")?, Vec::<String>::new());
        assert_eq!(expand("n[1-2]")?, ["n1", "n2"]);
        assert_eq!(expand("rack[1-2]-n[01-02]")?.len(), 4);
        assert_eq!(expand("rack[1-2]-n[01-02]")?[1], "rack1-n02");
        assert_eq!(expand("a[098-100],b")?, ["a098", "a099", "a100", "b"]);
        Ok(())
    }

    #[test]
    fn refuses_bad_lists() {
        for bad in [
            "n[1-",
            "n]1",
            "n[3-1]",
            "n[a-b]",
            "n[0-999999999]",
            "n[1-2]]",
        ] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_input_is_an_answer_not_a_panic(s in "[a-z0-9\\[\\],-]{0,40}") {
            let _ = expand(&s);
        }

        #[test]
        fn a_range_expands_to_each_number(lo in 0u32..500, len in 0u32..50) {
            let hi = lo + len;
            let names = expand(&format!("gpu[{lo}-{hi}]")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(names.len() as u32, len + 1);
            prop_assert_eq!(names[0].clone(), format!("gpu{lo}"));
            let last = names.last().cloned().unwrap_or_default();
            prop_assert_eq!(last, format!("gpu{hi}"));
        }
    }
}
