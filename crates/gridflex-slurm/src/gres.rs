//! GPU indices from Slurm's per-node GRES detail: `gpu:a100:4(IDX:0-1,6-7)`.

use crate::SlurmError;
use crate::hostlist::split_top;

/// The GPU indices (as in gres.conf order on the node) named by one node's GRES detail.
///
/// Items of other GRES (for example `mps`) are skipped. `IDX:N/A` (GPUs without device
/// files) is an error: such GPUs cannot be tied to devices.
///
/// ```
/// use gridflex_slurm::gres::gpu_indices;
/// assert_eq!(gpu_indices("gpu:a100:4(IDX:0-1,6-7)")?, [0, 1, 6, 7]);
/// assert_eq!(gpu_indices("gpu:2(IDX:3,5)")?, [3, 5]);
/// # Ok::<(), gridflex_slurm::SlurmError>(())
/// ```
pub fn gpu_indices(detail: &str) -> Result<Vec<u32>, SlurmError> {
    let mut out = Vec::new();
    for item in split_top(detail, '(', ')').map_err(|_| bad(detail, "unbalanced parentheses"))? {
        let item = item.trim();
        let name = item.split([':', '(']).next().unwrap_or("");
        if name != "gpu" {
            continue;
        }
        let Some(open) = item.find("(IDX:") else {
            return Err(bad(detail, "a GPU item without IDX"));
        };
        let inner = item[open + 5..]
            .strip_suffix(')')
            .ok_or_else(|| bad(detail, "IDX list not closed"))?;
        if inner == "N/A" {
            return Err(bad(detail, "IDX:N/A (GPUs without device files)"));
        }
        for part in inner.split(',') {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            let lo: u32 = lo
                .parse()
                .map_err(|_| bad(detail, "an index is not a number"))?;
            let hi: u32 = hi
                .parse()
                .map_err(|_| bad(detail, "an index is not a number"))?;
            // gres.conf indexes the devices of one node; no node has anywhere near 1,024.
            if hi < lo || hi >= 1024 {
                return Err(bad(detail, &format!("index range {part} is invalid")));
            }
            out.extend(lo..=hi);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn bad(detail: &str, why: &str) -> SlurmError {
    SlurmError::Field {
        job: 0,
        field: "gres_detail",
        detail: format!("{detail:?}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_slurm_22_05_prints() -> Result<(), SlurmError> {
        assert_eq!(gpu_indices("gpu:2(IDX:0-1)")?, [0, 1]);
        assert_eq!(gpu_indices("gpu:1(IDX:2)")?, [2]);
        assert_eq!(gpu_indices("gpu:h100:2(IDX:0,7),mps:50(0/100)")?, [0, 7]);
        assert_eq!(gpu_indices("")?, Vec::<u32>::new());
        Ok(())
    }

    #[test]
    fn refuses_what_cannot_be_mapped() {
        for bad in [
            "gpu:2(IDX:N/A)",
            "gpu:2",
            "gpu:2(IDX:1-0)",
            "gpu:2(IDX:x)",
            "gpu:2(IDX:0-1",
            "gpu:1(IDX:5000)",
        ] {
            assert!(gpu_indices(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn any_input_is_an_answer_not_a_panic(s in "[a-z0-9:(),/A-Z-]{0,40}") {
            let _ = gpu_indices(&s);
        }

        #[test]
        fn indices_round_trip(set in proptest::collection::btree_set(0u32..64, 1..8)) {
            let list: Vec<String> = set.iter().map(u32::to_string).collect();
            let detail = format!("gpu:{}(IDX:{})", set.len(), list.join(","));
            let got = gpu_indices(&detail).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, set.into_iter().collect::<Vec<_>>());
        }
    }
}
