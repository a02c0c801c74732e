//! The reliability and security suite of ilink lives in `tests/`: each test runs real bots against
//! `ilink-sim` over loopback HTTP and proves that nothing is lost or handled twice.
#![forbid(unsafe_code)]
