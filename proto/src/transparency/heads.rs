//! Signed epoch heads: the append-only log of epoch roots, C2SP checkpoints and auditor cosignatures.
