//! [`DeviceMap`]: which gridflex [`DeviceId`] a Slurm GPU (node, index) is.
//!
//! The device backends name GPUs their own way (the simulator and NVML by UUID, a node
//! agent perhaps by `node/gpuN`), so the mapping is the integrator's choice: a template,
//! a table, or a function.

use std::collections::HashMap;
use std::sync::Arc;

use gridflex_core::DeviceId;

use crate::SlurmError;
use crate::job::GpuRef;

type MapFn = dyn Fn(&GpuRef) -> Option<DeviceId> + Send + Sync;

/// Maps a Slurm GPU to a gridflex device id.
///
/// ```
/// use gridflex_slurm::devices::DeviceMap;
/// use gridflex_slurm::job::GpuRef;
/// let map = DeviceMap::template("{node}/gpu{index}")?;
/// let id = map.device(&GpuRef { node: "gpu07".into(), index: 3 })?;
/// assert_eq!(id.as_str(), "gpu07/gpu3");
/// # Ok::<(), gridflex_slurm::SlurmError>(())
/// ```
#[derive(Clone)]
pub enum DeviceMap {
    /// A template with `{node}` and `{index}` placeholders ([`DeviceMap::template`]).
    Template(Template),
    /// A table: for each node, its devices in index order.
    Table(HashMap<String, Vec<DeviceId>>),
    /// A function; `None` means the GPU has no device (the job is then pinned).
    Custom(Arc<MapFn>),
}

/// A parsed device-id template: literal text, `{node}` and `{index}`, in order (parsed
/// once, so naming a GPU is one allocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Node,
    Index,
}

impl Template {
    fn parse(source: &str) -> Self {
        let mut pieces = Vec::new();
        let mut rest = source;
        while !rest.is_empty() {
            let node = rest.find("{node}");
            let index = rest.find("{index}");
            let next = match (node, index) {
                (Some(n), Some(i)) if n < i => Some((n, Piece::Node, 6)),
                (Some(_) | None, Some(i)) => Some((i, Piece::Index, 7)),
                (Some(n), None) => Some((n, Piece::Node, 6)),
                (None, None) => None,
            };
            match next {
                Some((at, piece, len)) => {
                    if at > 0 {
                        pieces.push(Piece::Text(rest[..at].to_owned()));
                    }
                    pieces.push(piece);
                    rest = &rest[at + len..];
                }
                None => {
                    pieces.push(Piece::Text(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Self {
            source: source.to_owned(),
            pieces,
        }
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    fn render(&self, gpu: &GpuRef) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(self.source.len() + gpu.node.len());
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Node => out.push_str(&gpu.node),
                // Writing to a String cannot fail.
                Piece::Index => {
                    let _ = write!(out, "{}", gpu.index);
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for DeviceMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Template(t) => f.debug_tuple("Template").field(&t.source).finish(),
            Self::Table(t) => f.debug_tuple("Table").field(&t.len()).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Default for DeviceMap {
    /// `{node}/gpu{index}`.
    fn default() -> Self {
        Self::Template(Template::parse("{node}/gpu{index}"))
    }
}

impl DeviceMap {
    /// A template; it must contain `{index}` (else every GPU of a node would be one
    /// device) and `{node}` (else GPUs of different nodes would collide).
    pub fn template(template: impl Into<String>) -> Result<Self, SlurmError> {
        let t = template.into();
        if !t.contains("{index}") || !t.contains("{node}") {
            return Err(SlurmError::InvalidConfig {
                field: "device template",
                reason: format!("{t:?} must contain both {{node}} and {{index}}"),
            });
        }
        Ok(Self::Template(Template::parse(&t)))
    }

    /// A function from GPU to device id.
    pub fn custom(f: impl Fn(&GpuRef) -> Option<DeviceId> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// The device of `gpu`.
    pub fn device(&self, gpu: &GpuRef) -> Result<DeviceId, SlurmError> {
        let found = match self {
            Self::Template(t) => Some(DeviceId::new(t.render(gpu))?),
            Self::Table(t) => t
                .get(&gpu.node)
                .and_then(|devices| devices.get(gpu.index as usize))
                .cloned(),
            Self::Custom(f) => f(gpu),
        };
        found.ok_or_else(|| SlurmError::InvalidConfig {
            field: "device map",
            reason: format!("no device for GPU {} of node {}", gpu.index, gpu.node),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_custom_and_bad_templates() -> Result<(), SlurmError> {
        let gpu = |node: &str, index| GpuRef {
            node: node.into(),
            index,
        };
        let mut t = HashMap::new();
        t.insert(
            "n1".to_owned(),
            vec![DeviceId::new("GPU-a")?, DeviceId::new("GPU-b")?],
        );
        let map = DeviceMap::Table(t);
        assert_eq!(map.device(&gpu("n1", 1))?.as_str(), "GPU-b");
        assert!(map.device(&gpu("n1", 2)).is_err());
        assert!(map.device(&gpu("n2", 0)).is_err());
        let map = DeviceMap::custom(|g| DeviceId::new(format!("{}-{}", g.node, g.index)).ok());
        assert_eq!(map.device(&gpu("n", 4))?.as_str(), "n-4");
        assert!(DeviceMap::template("gpu{index}").is_err());
        assert_eq!(
            DeviceMap::default().device(&gpu("a", 0))?.as_str(),
            "a/gpu0"
        );
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn a_template_renders_as_text_substitution(
            parts in proptest::collection::vec(proptest::prop_oneof![
                proptest::strategy::Just("{node}"), proptest::strategy::Just("{index}"),
                proptest::strategy::Just("gpu"), proptest::strategy::Just("/"),
                proptest::strategy::Just("{"), proptest::strategy::Just("}"),
                proptest::strategy::Just("node"), proptest::strategy::Just("index")], 0..10),
            node in "[a-z0-9-]{1,8}", index in 0u32..2000)
        {
            let source = parts.concat();
            let want = source.replace("{node}", &node).replace("{index}", &index.to_string());
            let got = Template::parse(&source).render(&GpuRef { node, index });
            proptest::prop_assert_eq!(got, want);
        }
    }
}
