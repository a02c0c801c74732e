//! Runnable examples of ilink bots live in `src/bin/`; each names its command in its header.
#![forbid(unsafe_code)]
