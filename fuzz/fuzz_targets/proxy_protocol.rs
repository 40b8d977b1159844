//! The PROXY protocol parser: any bytes from a connection get an answer
//! (a header, "need more", or a refusal), never a panic, and a header
//! never claims more bytes than it was given.

#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_http::proxy_protocol::{parse, Parsed};

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Done(_, n)) = parse(data) {
        assert!(n <= data.len());
        // The same header with anything after it parses the same.
        let mut more = data[..n].to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(parse(&more), parse(&data[..n]));
    }
});
