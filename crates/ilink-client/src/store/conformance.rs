//! The conformance suite of the [`StateStore`](super::StateStore) contract (work in progress).
