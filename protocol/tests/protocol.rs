//! Integration tests of `pinhouse-protocol` (one test binary; the cases live in `protocol/`).

mod protocol {
    mod arbitrary;
    mod client;
    mod fixture;
    mod roundtrip;
    mod strategies;
}
