//! Numbers from the IANA DNS parameter registries that petrel uses.

pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const HINFO: u16 = 13;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
    pub const CAA: u16 = 257;

    /// Mnemonic for logs, metrics and explain output.
    pub fn name(t: u16) -> &'static str {
        match t {
            A => "A",
            NS => "NS",
            CNAME => "CNAME",
            SOA => "SOA",
            PTR => "PTR",
            HINFO => "HINFO",
            MX => "MX",
            TXT => "TXT",
            AAAA => "AAAA",
            SRV => "SRV",
            OPT => "OPT",
            IXFR => "IXFR",
            AXFR => "AXFR",
            ANY => "ANY",
            CAA => "CAA",
            _ => "other",
        }
    }
}

pub mod class {
    pub const IN: u16 = 1;
}

pub mod opcode {
    pub const QUERY: u8 = 0;
}

/// Response codes, including the EDNS extended BADVERS (RFC 6891).
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
    /// RFC 7873 §8: a server cookie is required or was not valid.
    pub const BADCOOKIE: u16 = 23;

    pub fn name(r: u16) -> &'static str {
        match r {
            NOERROR => "NOERROR",
            FORMERR => "FORMERR",
            SERVFAIL => "SERVFAIL",
            NXDOMAIN => "NXDOMAIN",
            NOTIMP => "NOTIMP",
            REFUSED => "REFUSED",
            BADVERS => "BADVERS",
            BADCOOKIE => "BADCOOKIE",
            _ => "other",
        }
    }
}

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 for AD/CD).
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
    pub const OPCODE_MASK: u16 = 0x7800;
}

/// EDNS option codes.
pub mod edns_option {
    pub const CLIENT_SUBNET: u16 = 8;
    /// RFC 7873.
    pub const COOKIE: u16 = 10;
    /// Extended DNS Errors (RFC 8914).
    pub const EDE: u16 = 15;
}

/// Extended DNS Error info-codes (RFC 8914 §4).
pub mod ede {
    /// "The server is unable to answer the query, as it was not fully
    /// functional when the query was received" (§4.15).
    pub const NOT_READY: u16 = 14;
}

pub const HEADER_LEN: usize = 12;
/// Largest UDP payload a client without EDNS accepts (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_LIMIT: usize = 512;
