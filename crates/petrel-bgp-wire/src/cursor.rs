//! A bounds-checked reader over one MRT record's or BMP message's body.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What was cut short; each format turns it into its own error.
pub(crate) struct Truncated(pub String);

pub(crate) struct Cur<'a> {
    pub b: &'a [u8],
}

impl<'a> Cur<'a> {
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Truncated> {
        if self.b.len() < n {
            return Err(Truncated(format!("truncated {what}")));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn u8(&mut self, what: &str) -> Result<u8, Truncated> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16, Truncated> {
        let x = self.take(2, what)?;
        Ok(u16::from_be_bytes([x[0], x[1]]))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32, Truncated> {
        let x = self.take(4, what)?;
        Ok(u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64, Truncated> {
        let x = self.take(8, what)?;
        Ok(u64::from_be_bytes(x.try_into().expect("8 bytes")))
    }
    /// An address of its family's length.
    pub fn ip(&mut self, v6: bool, what: &str) -> Result<IpAddr, Truncated> {
        Ok(if v6 {
            IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(self.take(16, what)?).expect("16 bytes"),
            ))
        } else {
            let x = self.take(4, what)?;
            IpAddr::V4(Ipv4Addr::new(x[0], x[1], x[2], x[3]))
        })
    }
    /// A 16-octet address field in which IPv4 sits in the last four.
    pub fn addr16(&mut self, v6: bool, what: &str) -> Result<IpAddr, Truncated> {
        let x = self.take(16, what)?;
        Ok(if v6 {
            IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(x).expect("16 bytes")))
        } else {
            IpAddr::V4(Ipv4Addr::new(x[12], x[13], x[14], x[15]))
        })
    }
}
