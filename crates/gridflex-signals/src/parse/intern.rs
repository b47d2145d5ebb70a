//! Interning the node names of a price file: each name gets a dense index, in the order
//! first seen.
//!
//! Operator files repeat their node names in the same order on every interval (all
//! nodes of one interval, then all nodes of the next), so the [`Interner`] first tries
//! the name that followed the previous one last time: one comparison of a few bytes
//! instead of hashing the name and comparing it in the map. Any other name goes through
//! the map, so the answer never depends on the order.

use std::collections::HashMap;

use foldhash::fast::RandomState;

use super::scalar::same_bytes;

/// Names to dense indexes (`0, 1, 2, ...` in first-seen order).
pub(crate) struct Interner {
    // foldhash: several times faster than SipHash on these short keys, and seeded per
    // map, so a hostile file cannot aim at collisions it cannot predict.
    index: HashMap<Box<[u8]>, u32, RandomState>,
    /// Each name's text, by index.
    texts: Vec<Box<[u8]>>,
    /// For each index, the index interned right after it the last time it was seen
    /// (`u32::MAX` for none yet).
    next: Vec<u32>,
    /// The index interned last (`u32::MAX` before the first).
    last: u32,
}

impl Default for Interner {
    fn default() -> Self {
        Self {
            index: HashMap::default(),
            texts: Vec::new(),
            next: Vec::new(),
            last: u32::MAX,
        }
    }
}

impl Interner {
    /// The index of `text`. A name not seen before is first given to `first`, which may
    /// refuse it (the error is returned and nothing is interned); the name is then given
    /// the next index.
    #[inline(always)]
    pub(crate) fn intern(
        &mut self,
        text: &[u8],
        first: impl FnOnce(&[u8]) -> Result<(), String>,
    ) -> Result<u32, String> {
        let guess = self
            .next
            .get(self.last as usize)
            .copied()
            .unwrap_or(u32::MAX);
        if let Some(t) = self.texts.get(guess as usize)
            && same_bytes(t, text)
        {
            self.last = guess;
            return Ok(guess);
        }
        self.look_up(text, first)
    }

    /// [`Interner::intern`] through the map, for a name other than the one guessed.
    #[inline(never)]
    fn look_up(
        &mut self,
        text: &[u8],
        first: impl FnOnce(&[u8]) -> Result<(), String>,
    ) -> Result<u32, String> {
        let i = match self.index.get(text) {
            Some(&i) => i,
            None => {
                let i = u32::try_from(self.texts.len())
                    .ok()
                    .filter(|&i| i != u32::MAX)
                    .ok_or_else(|| "too many nodes".to_owned())?;
                first(text)?;
                self.texts.push(text.into());
                self.next.push(u32::MAX);
                self.index.insert(text.into(), i);
                i
            }
        };
        if let Some(n) = self.next.get_mut(self.last as usize) {
            *n = i;
        }
        self.last = i;
        Ok(i)
    }

    /// The text interned as `i`.
    pub(crate) fn text(&self, i: u32) -> Option<&[u8]> {
        self.texts.get(i as usize).map(|t| &**t)
    }

    /// How many names are interned.
    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(_: &[u8]) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn a_refused_name_is_not_interned_and_does_not_take_an_index() {
        let mut names = Interner::default();
        assert_eq!(names.intern(b"A", accept), Ok(0));
        let refused = names.intern(b"bad", |_| Err("no".to_owned()));
        assert_eq!(refused, Err("no".to_owned()));
        assert_eq!(names.intern(b"B", accept), Ok(1));
        assert_eq!(names.len(), 2);
        assert_eq!(names.text(1), Some(&b"B"[..]));
    }

    proptest::proptest! {
        /// Whatever the order names come in (runs, repeats, cycles that change), each
        /// name gets the index of its first sight among the distinct names, as a plain
        /// map would give it.
        #[test]
        fn indexes_are_first_sight_order_whatever_the_order(
            cycle in proptest::collection::vec(0u8..12, 1..20),
            noise in proptest::collection::vec((0usize..200, 0u8..16), 0..20),
            rounds in 1usize..6,
        ) {
            let name = |k: u8| format!("NODE_{k:02}_{}", "X".repeat(usize::from(k % 5) * 3));
            let mut order: Vec<u8> = (0..rounds).flat_map(|_| cycle.iter().copied()).collect();
            for (at, k) in noise {
                order.insert(at.min(order.len()), k);
            }
            let mut names = Interner::default();
            let mut expected: Vec<u8> = Vec::new();
            for &k in &order {
                let want = match expected.iter().position(|&e| e == k) {
                    Some(i) => i,
                    None => {
                        expected.push(k);
                        expected.len() - 1
                    }
                };
                let text = name(k);
                let got = names.intern(text.as_bytes(), accept);
                proptest::prop_assert_eq!(got, Ok(want as u32));
                proptest::prop_assert_eq!(names.text(want as u32), Some(text.as_bytes()));
            }
        }
    }
}
