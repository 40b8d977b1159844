//! Signing keys: BIND's key file format, the DNSKEY record, key tags and DS.

use data_encoding::BASE64;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

/// The algorithms a key may use: the two that are both recommended for
/// signing (RFC 8624 §3.1) and small enough to keep answers under 1232
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (RFC 6605), number 13.
    EcdsaP256Sha256,
    /// Ed25519 (RFC 8080), number 15.
    Ed25519,
}

impl Algorithm {
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    pub fn from_number(n: u8) -> Option<Algorithm> {
        match n {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// The mnemonic BIND writes after the number.
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// Bytes of a signature (both are 64).
    pub const SIGNATURE_LEN: usize = 64;
}

/// DNSKEY flags (RFC 4034 §2.1.1): a zone key, and the Secure Entry Point
/// bit that marks a key-signing (or combined) key.
pub const FLAG_ZONE: u16 = 0x0100;
pub const FLAG_SEP: u16 = 0x0001;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no DNSKEY record in the .key file")]
    NoDnskey,
    #[error("the .key file's DNSKEY is malformed: {0}")]
    BadDnskey(String),
    #[error("algorithm {0} is not supported (use 13, ECDSAP256SHA256, or 15, ED25519)")]
    Algorithm(u8),
    #[error("the .private file has no `{0}:` line")]
    Missing(&'static str),
    #[error("the .private file's `{field}` is not valid: {why}")]
    BadPrivate { field: &'static str, why: String },
    #[error("the .key and .private files disagree ({0})")]
    Mismatch(&'static str),
    #[error("the key cannot be made: {0}")]
    Crypto(&'static str),
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A zone's signing key, as read from its files.
pub struct Key {
    pub alg: Algorithm,
    /// DNSKEY flags: 256 for a zone-signing key, 257 with SEP (KSK or CSK).
    pub flags: u16,
    /// The owner named in the .key file, in wire form (lower case).
    pub owner: Vec<u8>,
    /// The DNSKEY's public key field.
    pub public: Vec<u8>,
    pub tag: u16,
    pair: Pair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private half.
        f.debug_struct("Key")
            .field("alg", &self.alg)
            .field("flags", &self.flags)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// A key from the contents of BIND's `.key` file (the DNSKEY record)
    /// and `.private` file (`Private-key-format: v1.x`).
    pub fn from_bind(key_file: &str, private_file: &str) -> Result<Key, KeyError> {
        let (owner, flags, alg_n, public) = parse_dnskey_line(key_file)?;
        let alg = Algorithm::from_number(alg_n).ok_or(KeyError::Algorithm(alg_n))?;
        let fields = private_fields(private_file);
        let get = |k: &'static str| -> Result<&str, KeyError> {
            fields
                .iter()
                .find(|(f, _)| f.eq_ignore_ascii_case(k))
                .map(|(_, v)| *v)
                .ok_or(KeyError::Missing(k))
        };
        let palg: u8 = get("Algorithm")?
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or(KeyError::BadPrivate {
                field: "Algorithm",
                why: "not a number".into(),
            })?;
        if palg != alg_n {
            return Err(KeyError::Mismatch("algorithm"));
        }
        let private = BASE64
            .decode(get("PrivateKey")?.split_whitespace().collect::<String>().as_bytes())
            .map_err(|e| KeyError::BadPrivate {
                field: "PrivateKey",
                why: e.to_string(),
            })?;
        Key::from_parts(owner, flags, alg, &private, Some(&public))
    }

    /// A key from its private half (the P-256 scalar or the Ed25519 seed,
    /// 32 bytes each) and, to check it against, the public key.
    pub fn from_parts(
        owner: Vec<u8>,
        flags: u16,
        alg: Algorithm,
        private: &[u8],
        public: Option<&[u8]>,
    ) -> Result<Key, KeyError> {
        let bad = |why: &str| KeyError::BadPrivate {
            field: "PrivateKey",
            why: why.into(),
        };
        if private.len() != 32 {
            return Err(bad("expected 32 bytes"));
        }
        let rng = SystemRandom::new();
        let (pair, derived) = match alg {
            Algorithm::Ed25519 => {
                let p = Ed25519KeyPair::from_seed_unchecked(private).map_err(|_| bad("not an Ed25519 seed"))?;
                let pk = p.public_key().as_ref().to_vec();
                (Pair::Ed25519(p), pk)
            }
            Algorithm::EcdsaP256Sha256 => {
                // ring takes the public point with the private scalar; the
                // DNSKEY holds it without the uncompressed-point prefix.
                let public = public.ok_or(KeyError::Mismatch("an ECDSA key needs its public half"))?;
                if public.len() != 64 {
                    return Err(KeyError::BadDnskey("an ECDSA P-256 public key is 64 bytes".into()));
                }
                let mut point = [0u8; 65];
                point[0] = 4;
                point[1..].copy_from_slice(public);
                let p = EcdsaKeyPair::from_private_key_and_public_key(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    &rng,
                )
                .map_err(|_| KeyError::Mismatch("the private key does not match the public key"))?;
                (Pair::Ecdsa(p), public.to_vec())
            }
        };
        if let Some(public) = public {
            if public != derived.as_slice() {
                return Err(KeyError::Mismatch("the private key does not match the public key"));
            }
        }
        let mut k = Key {
            alg,
            flags,
            owner: petrel_dns_wire::name::to_lowercase(&owner),
            public: derived,
            tag: 0,
            pair,
            rng,
        };
        k.tag = key_tag(&k.dnskey_rdata());
        Ok(k)
    }

    /// A new key: its private half (32 bytes) and the key. Flags 257 for
    /// a KSK or CSK, 256 for a ZSK.
    pub fn generate(owner: &[u8], flags: u16, alg: Algorithm) -> Result<(Vec<u8>, Key), KeyError> {
        let rng = SystemRandom::new();
        let (private, public) = match alg {
            Algorithm::Ed25519 => {
                let mut seed = [0u8; 32];
                ring::rand::SecureRandom::fill(&rng, &mut seed).map_err(|_| KeyError::Crypto("no randomness"))?;
                (seed.to_vec(), None)
            }
            Algorithm::EcdsaP256Sha256 => {
                let doc = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Crypto("cannot generate a P-256 key"))?;
                let (d, q) = p256_from_pkcs8(doc.as_ref()).ok_or(KeyError::Crypto("unexpected PKCS#8 layout"))?;
                (d.to_vec(), Some(q.to_vec()))
            }
        };
        let key = Key::from_parts(owner.to_vec(), flags, alg, &private, public.as_deref())?;
        Ok((private, key))
    }

    /// A key-signing (or combined) key: the SEP bit is set.
    pub fn is_sep(&self) -> bool {
        self.flags & FLAG_SEP != 0
    }

    /// The DNSKEY RDATA: flags, protocol 3, algorithm, public key.
    pub fn dnskey_rdata(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.public.len());
        v.extend_from_slice(&self.flags.to_be_bytes());
        v.push(3);
        v.push(self.alg.number());
        v.extend_from_slice(&self.public);
        v
    }

    /// The CDS/DS RDATA with a SHA-256 digest (type 2), for `owner`.
    pub fn ds_rdata(&self) -> Vec<u8> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&self.owner);
        ctx.update(&self.dnskey_rdata());
        let d = ctx.finish();
        let mut v = Vec::with_capacity(4 + 32);
        v.extend_from_slice(&self.tag.to_be_bytes());
        v.push(self.alg.number());
        v.push(2);
        v.extend_from_slice(d.as_ref());
        v
    }

    /// The DS record in presentation form, as the parent wants it.
    pub fn ds_text(&self) -> String {
        let ds = self.ds_rdata();
        format!(
            "{} IN DS {} {} 2 {}",
            petrel_dns_wire::name::to_text(&self.owner),
            self.tag,
            self.alg.number(),
            data_encoding::HEXUPPER.encode(&ds[4..])
        )
    }

    /// The `.key` file's contents (BIND's format).
    pub fn key_file(&self) -> String {
        format!(
            "; This is a {}-signing key, keyid {}, for {}\n{} IN DNSKEY {} 3 {} {}\n",
            if self.is_sep() { "key" } else { "zone" },
            self.tag,
            petrel_dns_wire::name::to_text(&self.owner),
            petrel_dns_wire::name::to_text(&self.owner),
            self.flags,
            self.alg.number(),
            BASE64.encode(&self.public)
        )
    }

    /// The `.private` file's contents for the private half `private`.
    pub fn private_file(&self, private: &[u8]) -> String {
        format!(
            "Private-key-format: v1.3\nAlgorithm: {} ({})\nPrivateKey: {}\n",
            self.alg.number(),
            self.alg.mnemonic(),
            BASE64.encode(private)
        )
    }

    /// BIND's file name stem, `K<owner>+<alg>+<tag>`.
    pub fn file_stem(&self) -> String {
        format!(
            "K{}+{:03}+{:05}",
            petrel_dns_wire::name::to_text(&self.owner),
            self.alg.number(),
            self.tag
        )
    }

    /// Sign `data` into `out`. ECDSA signatures are randomised; Ed25519's
    /// are not. No allocation.
    pub fn sign(&self, data: &[u8], out: &mut [u8; Algorithm::SIGNATURE_LEN]) -> Result<(), crate::SignError> {
        match &self.pair {
            Pair::Ed25519(p) => out.copy_from_slice(p.sign(data).as_ref()),
            Pair::Ecdsa(p) => {
                let s = p.sign(&self.rng, data).map_err(|_| crate::SignError::Crypto)?;
                out.copy_from_slice(s.as_ref());
            }
        }
        Ok(())
    }

    /// Check a signature of `data` with this key's public half.
    pub fn verify(&self, data: &[u8], sig: &[u8]) -> bool {
        verify(self.alg, &self.public, data, sig)
    }
}

/// Check `sig` over `data` with a DNSKEY's public key field.
pub fn verify(alg: Algorithm, public: &[u8], data: &[u8], sig: &[u8]) -> bool {
    match alg {
        Algorithm::Ed25519 => signature::UnparsedPublicKey::new(&signature::ED25519, public)
            .verify(data, sig)
            .is_ok(),
        Algorithm::EcdsaP256Sha256 => {
            let mut point = Vec::with_capacity(65);
            point.push(4);
            point.extend_from_slice(public);
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(data, sig)
                .is_ok()
        }
    }
}

/// The DNSKEY RDATA a `.key` file holds: what a key published without its
/// private half contributes.
pub fn dnskey_rdata_of(key_file: &str) -> Result<Vec<u8>, KeyError> {
    let (_, flags, alg, public) = parse_dnskey_line(key_file)?;
    let mut v = flags.to_be_bytes().to_vec();
    v.extend_from_slice(&[3, alg]);
    v.extend_from_slice(&public);
    Ok(v)
}

/// The key tag of a DNSKEY RDATA (RFC 4034 Appendix B).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 { u32::from(*b) } else { u32::from(*b) << 8 };
    }
    ac += (ac >> 16) & 0xffff;
    (ac & 0xffff) as u16
}

/// `owner flags alg public` from the DNSKEY line of a .key file (comments
/// and other lines skipped; an optional TTL and class before the type).
fn parse_dnskey_line(text: &str) -> Result<(Vec<u8>, u16, u8, Vec<u8>), KeyError> {
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("");
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = tokens.iter().position(|t| t.eq_ignore_ascii_case("DNSKEY")) else {
            continue;
        };
        if at == 0 {
            return Err(KeyError::BadDnskey("no owner name".into()));
        }
        let owner = petrel_dns_wire::name::from_text(tokens[0]).map_err(|e| KeyError::BadDnskey(e.to_string()))?;
        let rest = &tokens[at + 1..];
        if rest.len() < 4 {
            return Err(KeyError::BadDnskey(
                "expected flags, protocol, algorithm and key".into(),
            ));
        }
        let flags: u16 = rest[0].parse().map_err(|_| KeyError::BadDnskey("flags".into()))?;
        if rest[1] != "3" {
            return Err(KeyError::BadDnskey("protocol must be 3".into()));
        }
        let alg: u8 = rest[2].parse().map_err(|_| KeyError::BadDnskey("algorithm".into()))?;
        let public = BASE64
            .decode(rest[3..].concat().as_bytes())
            .map_err(|e| KeyError::BadDnskey(e.to_string()))?;
        if flags & FLAG_ZONE == 0 {
            return Err(KeyError::BadDnskey("not a zone key (flags lack 256)".into()));
        }
        return Ok((owner, flags, alg, public));
    }
    Err(KeyError::NoDnskey)
}

fn private_fields(text: &str) -> Vec<(&str, &str)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// The private scalar and public point (without its 0x04 prefix) of the
/// PKCS#8 document ring writes for a new P-256 key (RFC 5915 inside RFC
/// 5208): the 32-byte OCTET STRING after the version 1, and the 65-byte
/// uncompressed point in the BIT STRING.
fn p256_from_pkcs8(doc: &[u8]) -> Option<(&[u8], &[u8])> {
    let d_at = doc.windows(5).position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])? + 5;
    let q_at = doc.windows(4).position(|w| w == [0x03, 0x42, 0x00, 0x04])? + 4;
    Some((doc.get(d_at..d_at + 32)?, doc.get(q_at..q_at + 64)?))
}
