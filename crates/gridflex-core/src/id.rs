//! Identifiers: [`DeviceId`], [`JobId`], [`NodeId`] and [`PricingNodeId`].
//!
//! Each is a validated string newtype so that a device id can never be passed where a
//! job id is expected. Valid ids are 1 to 256 characters with no control characters.
//!
//! ```
//! use gridflex_core::id::{DeviceId, JobId};
//! let gpu: DeviceId = "GPU-5c3e1a2b".parse()?;
//! let job = JobId::new("train-llama-70b")?;
//! assert_eq!(gpu.as_str(), "GPU-5c3e1a2b");
//! assert_eq!(job.to_string(), "train-llama-70b");
//! assert!(JobId::new("").is_err());
//! # Ok::<(), gridflex_core::CoreError>(())
//! ```

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

const MAX_ID_LEN: usize = 256;

fn validate(kind: &'static str, id: String) -> Result<String, CoreError> {
    let reason = if id.is_empty() {
        "must not be empty"
    } else if id.len() > MAX_ID_LEN {
        "must be at most 256 bytes"
    } else if id.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(id);
    };
    Err(CoreError::InvalidId { kind, id, reason })
}

macro_rules! identifier {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        ///
        /// Cloning is cheap: the text is shared, not copied (a parsed day of prices
        /// holds one id per price point).
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an id.
            pub fn new(id: impl Into<String>) -> Result<Self, CoreError> {
                validate($kind, id.into()).map(|id| Self(Arc::from(id)))
            }

            /// The id text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                Self::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

identifier!(
    /// A power device (usually one GPU), for example its NVML UUID.
    DeviceId, "device"
);
identifier!(
    /// A job: a workload that runs on one or more devices and is curtailed as a unit.
    JobId, "job"
);
identifier!(
    /// A compute node (host) holding devices.
    NodeId, "node"
);
identifier!(
    /// A market pricing node (CAISO `NODE`, PJM `pnode_id`) whose LMP is quoted.
    PricingNodeId, "pricing node"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_ids_with_reason() {
        let err = NodeId::new("rack\n7").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid node id \"rack\\n7\": must not contain control characters"
        );
        assert!(DeviceId::new("x".repeat(257)).is_err());
        assert!(DeviceId::new("x".repeat(256)).is_ok());
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<JobId>("\"\"").is_err());
        let j: JobId = serde_json::from_str("\"batch-1\"").unwrap();
        assert_eq!(serde_json::to_string(&j).unwrap(), "\"batch-1\"");
    }
}
