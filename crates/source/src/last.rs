//! The order of a folder's last listing, so that a listing source (`watch = false`) can tell
//! the names it knew already by comparing bytes in order, rather than looking each name up
//! in the seen set. At 100,000 files those lookups (a cache miss or two each) cost a listing
//! 20–30 ms on top of the kernel's 43 ms, and every file dropped into the folder costs one
//! listing before it is picked up (W10).
//!
//! File systems list a folder in an order that stays put from one listing to the next
//! (ext4's indexed folders by a hash of the name, others by where the entry lies), so an
//! entry of the next listing is most often the next name here. The answer is exact whatever
//! the order: a name is known only if the last listing found it in the seen set and it has
//! not been forgotten since, and the seen set loses names only by forgetting them. Every
//! other name is looked up as before.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// How far past the expected entry a name is looked for: entries removed from the folder
/// since the last listing leave that many behind without losing the walk's place.
const LOOK_AHEAD: usize = 4;

/// Forgotten names kept for the walk; past this many (a large `max_file_age` sweep) the
/// last listing is dropped instead, and the next listing looks every name up.
const FORGOTTEN_MAX: usize = 4096;

/// The names the last listing found already seen, in the folder's order.
#[derive(Debug, Default)]
pub(crate) struct LastListing {
    /// Each name as its length (one byte: names are at most 255 bytes) and its bytes.
    names: Vec<u8>,
    /// Where the walk of the listing being made is in `names`.
    at: usize,
    /// The listing being made, which becomes `names` when it completes.
    next: Vec<u8>,
    /// Names forgotten from the seen set since `names` was made: listed there, no longer
    /// seen.
    forgotten: HashSet<Arc<OsStr>, ahash::RandomState>,
}

impl LastListing {
    /// Starts the walk of a new listing.
    pub(crate) fn start(&mut self) {
        self.at = 0;
        self.next = Vec::with_capacity(self.names.len());
    }

    /// Whether `name`, the listing's next entry, was seen at the last listing and is not
    /// forgotten since, so that it is seen now. `false` means "look it up", not "new".
    pub(crate) fn known(&mut self, name: &[u8]) -> bool {
        let mut at = self.at;
        for _ in 0..LOOK_AHEAD {
            let Some((&len, rest)) = self.names.get(at..).and_then(|rest| rest.split_first())
            else {
                return false;
            };
            let len = usize::from(len);
            if rest.get(..len) == Some(name) {
                self.at = at + 1 + len;
                return !self.forgotten.contains(OsStr::from_bytes(name));
            }
            at += 1 + len;
        }
        false
    }

    /// Records `name`, the listing's next entry, as seen.
    pub(crate) fn seen(&mut self, name: &[u8]) {
        // A longer name is not a Linux file name; it is simply looked up every time.
        if let Ok(len) = u8::try_from(name.len()) {
            self.next.push(len);
            self.next.extend_from_slice(name);
        }
    }

    /// The listing completed: it becomes the last one, and nothing is forgotten since.
    pub(crate) fn finish(&mut self) {
        self.names = std::mem::take(&mut self.next);
        self.at = 0;
        self.forgotten.clear();
    }

    /// Names the seen set has forgotten.
    pub(crate) fn forget(&mut self, names: &[Arc<OsStr>]) {
        if self.names.is_empty() || names.is_empty() {
            return;
        }
        if self.forgotten.len() + names.len() > FORGOTTEN_MAX {
            *self = LastListing::default();
            return;
        }
        self.forgotten.extend(names.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(last: &mut LastListing, names: &[&str]) {
        last.start();
        for name in names {
            last.seen(name.as_bytes());
        }
        last.finish();
    }

    #[test]
    fn names_are_known_in_order_past_removed_ones_and_never_once_forgotten() {
        let mut last = LastListing::default();
        assert!(!last.known(b"a"), "nothing is known before a listing");
        listed(&mut last, &["a", "b", "c", "d", "e", "f", "g", "h"]);
        last.start();
        assert!(last.known(b"a"));
        assert!(!last.known(b"new"), "a name inserted here is looked up...");
        assert!(last.known(b"b"), "... and the walk keeps its place");
        // c, d, e removed from the folder: f is LOOK_AHEAD - 1 entries on.
        assert!(last.known(b"f"));
        assert!(!last.known(b"a"), "the walk does not go back");
        assert!(last.known(b"g"));
        last.finish();
        // The walk recorded nothing as seen: the next listing knows nothing.
        last.start();
        assert!(!last.known(b"a"));

        listed(&mut last, &["a", "b", "c"]);
        last.forget(&[Arc::from(OsStr::new("b"))]);
        last.start();
        assert!(last.known(b"a"));
        assert!(!last.known(b"b"), "forgotten since the listing");
        assert!(last.known(b"c"));
    }

    #[test]
    fn a_name_too_far_ahead_or_a_prefix_is_not_known() {
        let mut last = LastListing::default();
        listed(&mut last, &["a", "b", "c", "d", "e", "f"]);
        last.start();
        assert!(!last.known(b"e"), "more than LOOK_AHEAD entries on");
        assert!(!last.known(b""));
        assert!(last.known(b"a"));
        assert!(!last.known(b"bb"));
        assert!(!last.known(&b"b"[..0]));
    }

    #[test]
    fn too_many_forgotten_names_drop_the_last_listing() {
        let mut last = LastListing::default();
        listed(&mut last, &["a"]);
        let many: Vec<Arc<OsStr>> = (0..=FORGOTTEN_MAX)
            .map(|i| Arc::from(OsStr::new(&i.to_string())))
            .collect();
        last.forget(&many);
        last.start();
        assert!(!last.known(b"a"));
    }
}
