//! The epoch log's compact range: the roots of its perfect subtrees, enough to append leaves and compute the RFC 6962 root without keeping every leaf.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_proto::transparency::heads::LogHash;
use keyward_proto::transparency::heads::log::node_hash;

/// The log of `size` leaves as the roots of its perfect subtrees, largest first (one per bit
/// set in `size`, at most 64).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `(height, root)` of each perfect subtree, left to right.
    nodes: Vec<(u32, LogHash)>,
}

impl Frontier {
    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf by its leaf hash.
    pub fn push(&mut self, leaf_hash: LogHash) {
        let mut node = (0u32, leaf_hash);
        while let Some(&(height, left)) = self.nodes.last() {
            if height != node.0 {
                break;
            }
            self.nodes.pop();
            node = (height + 1, node_hash(&left, &node.1));
        }
        self.nodes.push(node);
        self.size += 1;
    }

    /// The RFC 6962 root of the leaves so far; `None` while empty.
    pub fn root(&self) -> Option<LogHash> {
        let mut nodes = self.nodes.iter().rev();
        let mut root = nodes.next()?.1;
        for (_, left) in nodes {
            root = node_hash(left, &root);
        }
        Some(root)
    }

    /// The subtree roots, base64, for the state file.
    pub fn to_strings(&self) -> Vec<String> {
        self.nodes.iter().map(|(_, hash)| STANDARD.encode(hash)).collect()
    }

    /// The frontier of `size` leaves from its subtree roots (as [`Frontier::to_strings`] wrote them).
    pub fn from_strings(size: u64, roots: &[String]) -> Option<Self> {
        if roots.len() != size.count_ones() as usize {
            return None;
        }
        let heights = (0..64u32).rev().filter(|bit| size & (1 << bit) != 0);
        let nodes = heights
            .zip(roots)
            .map(|(height, text)| {
                let hash: LogHash = STANDARD.decode(text).ok()?.try_into().ok()?;
                Some((height, hash))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self { size, nodes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_proto::transparency::heads::EpochLog;
    use keyward_proto::transparency::heads::log::leaf_hash;

    #[test]
    fn roots_are_the_logs_at_every_size_and_survive_the_state_file() {
        let mut log = EpochLog::new();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), None);
        for i in 0..130u32 {
            let leaf = leaf_hash(&i.to_be_bytes());
            log.push(leaf);
            frontier.push(leaf);
            assert_eq!(frontier.root(), Some(log.root(log.len()).expect("root")), "size {}", log.len());
            let back = Frontier::from_strings(frontier.size(), &frontier.to_strings()).expect("parses");
            assert_eq!(back, frontier);
        }
        assert!(Frontier::from_strings(4, &frontier.to_strings()).is_none(), "one subtree per bit");
        assert!(Frontier::from_strings(1, &["AAAA".to_owned()]).is_none());
    }
}
