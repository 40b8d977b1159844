//! One query in, one reply out (RFC 1034 §4.3.2 for authoritative data).

use crate::dnssec;
use petrel_director::{Decision, Generation};
use petrel_dns_wire::consts::{class, flags, rcode, rtype, CLASSIC_UDP_LIMIT};
use petrel_dns_wire::name::{self, MAX_NAME_LEN};
use petrel_dns_wire::{parse_query, ClientSubnet, Full, MessageWriter, Query, QueryError, Question, Section};
use petrel_dns_zone::signed::ZoneKeys;
use petrel_dns_zone::{Node, RrSet, ZoneSet};
use petrel_dnssec::rtype as sec;
use petrel_types::{Family, PopIdx, Prefix, ServiceIdx};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub addr: IpAddr,
    pub tcp: bool,
    /// Unix seconds: server cookies' timestamps.
    pub now: u32,
    /// The secret server cookies are made with when the config names none
    /// (`server.cookies.secret`): the process's own.
    pub cookie_secret: [u8; 16],
}

/// What happened, for metrics and logs. Reused across queries.
#[derive(Clone, Debug, Default)]
pub struct AnswerInfo {
    pub rcode: u16,
    pub qtype: u16,
    pub service: Option<u16>,
    pub ecs: bool,
    pub truncated: bool,
    /// The decision a mapped answer gave (its POPs, scope, fallback).
    pub decision: Decision,
    pub mapped: bool,
    /// A resolver-discovery name was asked for: the IO shell records who
    /// asked (see `petrel_measure::whoami`).
    pub whoami: Option<WhoamiAsked>,
    /// What the query's DNS cookie was worth (a valid one exempts the
    /// client from rate limiting).
    pub cookie: crate::cookie::Status,
}

/// The id of a resolver-discovery name, and the ECS subnet sent with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhoamiAsked {
    id: [u8; petrel_measure::whoami::MAX_ID],
    len: u8,
    pub ecs: Option<Prefix>,
}

impl WhoamiAsked {
    pub fn id(&self) -> &[u8] {
        &self.id[..self.len as usize]
    }
}

const MAX_CHAIN: usize = 8;

struct Ctx<'a> {
    gen: &'a Generation,
    /// The query's ECS source prefix, if it sent one (and not SOURCE 0).
    ecs: Option<Prefix>,
    client: Prefix,
    entropy: u64,
    info: &'a mut AnswerInfo,
    scope: u8,
    mapped: bool,
    /// An Extended DNS Error to send (RFC 8914), with a SERVFAIL.
    ede: Option<u16>,
    /// The query set DO: answers from signed zones carry their DNSSEC
    /// records.
    dnssec: bool,
    /// The query set DO and CO (RFC 9824 §5.1): a name that does not exist
    /// gets NXDOMAIN with its compact denial, and CO is echoed.
    compact: bool,
}

impl Ctx<'_> {
    /// The keys to sign with, for a DO query in a signed zone.
    fn keys<'z>(&self, zones: &'z ZoneSet, zone: u16) -> Option<&'z ZoneKeys> {
        if self.dnssec {
            zones.zone(zone).signing.as_deref()
        } else {
            None
        }
    }
}

/// Answer one query packet into `out`; returns the reply length, 0 to drop.
pub fn answer(
    gen: &Generation,
    pkt: &[u8],
    client: &Client,
    entropy: u64,
    out: &mut [u8],
    info: &mut AnswerInfo,
) -> usize {
    info.rcode = rcode::NOERROR;
    info.qtype = 0;
    info.service = None;
    info.ecs = false;
    info.truncated = false;
    info.mapped = false;
    info.whoami = None;
    info.cookie = crate::cookie::Status::None;
    // Largest UDP reply we send, whatever the client offers (RFC 6891
    // §6.2.5; 1232 by default avoids fragmentation, per DNS flag day 2020).
    let max_udp = gen.config().server.max_udp_payload;
    let q = match parse_query(pkt) {
        Ok(q) => q,
        Err(QueryError::Drop) => return 0,
        Err(QueryError::FormErr {
            id,
            flags: f,
            question,
            edns,
        }) => {
            let opt = edns.then_some(max_udp);
            return error_reply(out, id, f, question, rcode::FORMERR, opt, info);
        }
        Err(QueryError::NotImp { id, flags: f, question }) => {
            return error_reply(out, id, f, question, rcode::NOTIMP, None, info);
        }
    };
    info.qtype = q.question.qtype;
    let limit = if client.tcp {
        u16::MAX as usize
    } else {
        match q.edns {
            Some(e) => (e.udp_size as usize).clamp(CLASSIC_UDP_LIMIT, max_udp.max(512) as usize),
            None => CLASSIC_UDP_LIMIT,
        }
    };
    let ecs = q.edns.and_then(|e| e.client_subnet);
    info.ecs = ecs.is_some();
    // RFC 7871 §7.1.2: SOURCE 0 means "do not use my address": decide on the
    // resolver's address and answer with SCOPE 0.
    let client_prefix = match ecs {
        Some(cs) if cs.source_len() > 0 => cs.prefix,
        _ => Prefix::host(client.addr),
    };
    // RFC 7873 §5.2: the reply carries the client cookie and a fresh
    // server cookie, whatever the one sent was worth.
    let cookies = &gen.config().server.cookies;
    let mut reply_cookie = [0u8; 24];
    let sent_cookie = q.edns.and_then(|e| e.cookie).filter(|_| cookies.enabled);
    if let Some(c) = &sent_cookie {
        let secrets = crate::cookie::Secrets {
            current: cookies.secret.unwrap_or(client.cookie_secret),
            previous: cookies.previous_secret,
        };
        info.cookie = crate::cookie::check(&secrets, c, client.addr, client.now);
        reply_cookie[..8].copy_from_slice(&c.client);
        reply_cookie[8..].copy_from_slice(&crate::cookie::server_cookie(
            &secrets.current,
            &c.client,
            client.now,
            client.addr,
        ));
    }
    let cookie = sent_cookie.map(|_| &reply_cookie[..]);
    let mut w = MessageWriter::new(out, limit);
    let opt_len = q.edns.map_or(0, |_| {
        MessageWriter::opt_size(ecs.map(|c| addr_len(&c))) + cookie.map_or(0, |c| 4 + c.len())
    });
    w.set_limit(limit.saturating_sub(opt_len));
    if w.question(q.question.name, q.question.qtype, q.question.qclass)
        .is_err()
    {
        return 0; // cannot happen: the query itself fit in the same size
    }
    let base_flags = flags::QR | (q.flags & (flags::OPCODE_MASK | flags::RD | flags::CD));

    if let Some(e) = q.edns {
        if e.version > 0 {
            // RFC 6891 §6.1.3: BADVERS, no processing.
            info.rcode = rcode::BADVERS;
            w.set_limit(limit);
            let _ = w.opt(max_udp, (rcode::BADVERS >> 4) as u8, None);
            return w.finish(q.id, base_flags);
        }
    }
    // RFC 7873 §5.2.3-4: where cookies are required, a UDP query with a
    // client cookie but no valid server cookie gets BADCOOKIE and a fresh
    // one to retry with. Queries without any cookie are answered: most
    // resolvers send none.
    if let Some(c) = cookie {
        let s = info.cookie;
        if cookies.require && !client.tcp && s != crate::cookie::Status::Valid {
            info.rcode = rcode::BADCOOKIE;
            w.set_limit(limit);
            let _ = w.opt(max_udp, (rcode::BADCOOKIE >> 4) as u8, None);
            let _ = w.opt_option(petrel_dns_wire::consts::edns_option::COOKIE, c);
            return w.finish(q.id, base_flags | (rcode::BADCOOKIE & 0xf));
        }
    }
    let mut ctx = Ctx {
        gen,
        ecs: ecs.filter(|c| c.source_len() > 0).map(|c| c.prefix),
        client: client_prefix,
        entropy,
        info,
        scope: 0,
        mapped: false,
        ede: None,
        dnssec: q.edns.is_some_and(|e| e.dnssec_ok),
        compact: q.edns.is_some_and(|e| e.dnssec_ok && e.compact_ok),
    };
    let (rc, aa) = if q.question.qclass != class::IN {
        (rcode::REFUSED, false)
    } else if matches!(q.question.qtype, rtype::AXFR | rtype::IXFR) {
        // Zone transfers go over TCP, where `crate::xfr` answers them
        // ahead of this path; asked over UDP, they are refused.
        (rcode::REFUSED, false)
    } else if q.question.qtype == sec::NXNAME {
        // A meta-type only denials carry (RFC 9824 §3.5).
        (rcode::FORMERR, false)
    } else {
        let mark = w.mark();
        match resolve(&mut ctx, &q, &mut w) {
            Ok((rcode::SERVFAIL, aa)) => {
                // Nothing of a chain followed so far goes with it.
                w.rollback(mark);
                (rcode::SERVFAIL, aa)
            }
            Ok(r) => r,
            Err(Full) => {
                // RFC 2181 §9 / RFC 7766: answer does not fit; signal TC and
                // let the client retry over TCP.
                w.rollback(mark);
                ctx.info.truncated = true;
                ctx.info.rcode = rcode::NOERROR;
                let f = base_flags | flags::TC | flags::AA;
                let opt = (None, opt_flags(&ctx));
                return finish(w, &q, ecs, cookie, (ctx.scope, ctx.mapped), limit, max_udp, f, opt);
            }
        }
    };
    ctx.info.rcode = rc;
    let (scope, mapped) = (ctx.scope, ctx.mapped);
    ctx.info.mapped = mapped;
    let f = base_flags | if aa { flags::AA } else { 0 } | rc;
    let opt = (ctx.ede, opt_flags(&ctx));
    finish(w, &q, ecs, cookie, (scope, mapped), limit, max_udp, f, opt)
}

/// The OPT flags of the reply: DO copied from the query (RFC 3225 §3), CO
/// when compact answers were asked for and given (RFC 9824 §5.1).
fn opt_flags(ctx: &Ctx<'_>) -> u16 {
    (if ctx.dnssec { 0x8000 } else { 0 }) | if ctx.compact { 0x4000 } else { 0 }
}

fn addr_len(c: &ClientSubnet) -> usize {
    (c.source_len() as usize).div_ceil(8)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    mut w: MessageWriter<'_>,
    q: &Query<'_>,
    ecs: Option<ClientSubnet>,
    cookie: Option<&[u8]>,
    (scope, mapped): (u8, bool),
    limit: usize,
    max_udp: u16,
    f: u16,
    (ede, opt_flags): (Option<u16>, u16),
) -> usize {
    if q.edns.is_some() {
        w.set_limit(limit);
        let mut addr = [0u8; 16];
        let ecs_opt = ecs.map(|c| {
            let n = addr_len(&c);
            match c.prefix.addr() {
                IpAddr::V4(a) => addr[..4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) => addr.copy_from_slice(&a.octets()),
            }
            // Scope 0 for answers that do not depend on the client, and when
            // the client asked us not to use its address (SOURCE 0).
            let sc = if mapped && c.source_len() > 0 { scope } else { 0 };
            (c.family, c.source_len(), sc, n)
        });
        let r = match ecs_opt {
            Some((fam, src, sc, n)) => w.opt(max_udp, 0, Some((fam, src, sc, &addr[..n]))),
            None => w.opt(max_udp, 0, None),
        };
        debug_assert!(r.is_ok(), "room for OPT was reserved");
        w.opt_flags(opt_flags);
        if let Some(c) = cookie {
            let r = w.opt_option(petrel_dns_wire::consts::edns_option::COOKIE, c);
            debug_assert!(r.is_ok(), "room for the cookie was reserved");
        }
        if let Some(code) = ede {
            // Only with an empty SERVFAIL, which leaves room.
            let _ = w.opt_option(petrel_dns_wire::consts::edns_option::EDE, &code.to_be_bytes());
        }
    }
    w.finish(q.id, f)
}

fn error_reply(
    out: &mut [u8],
    id: u16,
    f: u16,
    question: Option<Question<'_>>,
    rc: u16,
    opt: Option<u16>,
    info: &mut AnswerInfo,
) -> usize {
    info.rcode = rc;
    let mut w = MessageWriter::new(out, CLASSIC_UDP_LIMIT);
    if let Some(q) = question {
        info.qtype = q.qtype;
        let _ = w.question(q.name, q.qtype, q.qclass);
    }
    if let Some(udp_size) = opt {
        // An OPT without options: the query's own ECS was what was wrong
        // with it, so none is echoed.
        let _ = w.opt(udp_size, 0, None);
    }
    w.finish(id, flags::QR | (f & (flags::OPCODE_MASK | flags::RD | flags::CD)) | rc)
}

/// Resolve the question into the writer. Returns (rcode, authoritative).
fn resolve(ctx: &mut Ctx<'_>, q: &Query<'_>, w: &mut MessageWriter<'_>) -> Result<(u16, bool), Full> {
    let zones = ctx.gen.zones();
    let mut lbuf = [0u8; MAX_NAME_LEN];
    let n = name::lowercase_into(q.question.name, &mut lbuf);
    let Some(zone) = zones.zone_of(&lbuf[..n]) else {
        // Never an open resolver: names outside our zones are refused.
        return Ok((rcode::REFUSED, false));
    };
    let qtype = q.question.qtype;
    if let Some(who) = ctx.gen.config().measure.as_ref().and_then(|m| m.whoami.as_ref()) {
        if let Some(r) = whoami(ctx, who, &lbuf[..n], q, (zones, zone), w) {
            return r;
        }
    }
    // `cur` is the lower-case name being resolved; `owner` is what to write as
    // owner (the query's own spelling for the first hop).
    let mut cur = [0u8; MAX_NAME_LEN];
    cur[..n].copy_from_slice(&lbuf[..n]);
    let mut cur_len = n;
    let mut owner_is_qname = true;
    let mut zone = zone;
    // Nodes already answered in this chain: a CNAME loop ends the chain.
    let mut visited = [u32::MAX; MAX_CHAIN];
    for hop in 0..MAX_CHAIN {
        let lname = &cur[..cur_len];
        let owner: &[u8] = if owner_is_qname { q.question.name } else { lname };
        let found = zones.node(lname);
        if let Some((id, _)) = found {
            if visited[..hop].contains(&id) {
                return Ok((rcode::NOERROR, true));
            }
            visited[hop] = id;
        }
        let keys = ctx.keys(zones, zone);
        // Matched through a wildcard: its RRsets are signed now, owned by
        // the name asked (RFC 9824 §3.3).
        let mut wild = false;
        let node = match found {
            Some((id, node)) => {
                if let Some(cut) = node.cut {
                    if qtype == sec::DS && cut == id && owner_is_qname {
                        // The parent side answers DS (RFC 4035 §3.1.4.1).
                        return ds_at_cut(zones, zone, keys, node, owner, w);
                    }
                    if owner_is_qname {
                        return referral(zones, cut, w, keys).map(|_| (rcode::NOERROR, false));
                    }
                    return Ok((rcode::NOERROR, true));
                }
                node
            }
            None => match closest(zones, lname) {
                Lookup::Cut(cut) => {
                    if owner_is_qname {
                        return referral(zones, cut, w, keys).map(|_| (rcode::NOERROR, false));
                    }
                    return Ok((rcode::NOERROR, true));
                }
                Lookup::Wildcard(node) => {
                    wild = true;
                    node
                }
                Lookup::NxDomain => return nxdomain(ctx.compact, zones, zone, keys, (owner, lname), w),
            },
        };
        // A CNAME to follow: a mapped service in CNAME mode, or static data
        // (unless the CNAME itself was asked for).
        let mut cname: Option<Cname<'_>> = None;
        if let Some(si) = node.service {
            ctx.info.service = Some(si);
            let si = ServiceIdx(si);
            let svc = ctx.gen.service(si);
            let mapped_here = svc.cname_targets.is_some() || matches!(qtype, rtype::A | rtype::AAAA | rtype::ANY);
            if mapped_here && ctx.gen.withheld(si) {
                // Warming up without routing views: resolvers retry (another
                // server of the set, or later) instead of caching a wrong POP.
                ctx.ede = Some(petrel_dns_wire::consts::ede::NOT_READY);
                return Ok((rcode::SERVFAIL, false));
            }
            match &svc.cname_targets {
                None => {
                    let fam = match qtype {
                        rtype::A | rtype::ANY => Some(Family::V4),
                        rtype::AAAA => Some(Family::V6),
                        _ => None,
                    };
                    if let Some(fam) = fam {
                        let rtype_out = if fam == Family::V4 { rtype::A } else { rtype::AAAA };
                        mapped_addresses(ctx, si, fam, (owner, lname), rtype_out, keys, w)?;
                        if w.count(Section::Answer) == 0 {
                            no_pop(zones, zone, keys, (node, svc.ttl), (owner, lname), w)?;
                        }
                        return Ok((rcode::NOERROR, true));
                    }
                    // Other types at a service name: static data if any.
                }
                Some(targets) => {
                    ctx.mapped = true;
                    let d = &mut ctx.info.decision;
                    ctx.gen.decide(si, &ctx.client, None, ctx.entropy, d);
                    ctx.scope = ctx.scope.max(d.scope());
                    let Some(&pop) = d.pops().first() else {
                        no_pop(zones, zone, keys, (node, svc.ttl), (owner, lname), w)?;
                        return Ok((rcode::NOERROR, true));
                    };
                    // The answer names one POP: its TTL is that POP's.
                    let sigs = svc
                        .sigs
                        .as_ref()
                        .and_then(|s| s.cname.get(pop.index()))
                        .map(Vec::as_slice);
                    cname = Some((&targets[pop.index()], ctx.gen.ttl_for(svc, &[pop]), sigs));
                }
            }
        }
        if cname.is_none() && qtype != rtype::CNAME {
            cname = node
                .rrset(rtype::CNAME)
                .map(|cn| (&*cn.rdata[0], cn.ttl, (!wild).then_some(&cn.sigs[..])));
        }
        if let Some((target, ttl, sigs)) = cname {
            let at = w.begin_record(owner, rtype::CNAME, class::IN, ttl)?;
            w.rdata_name(target)?;
            w.end_record(Section::Answer, at);
            if let Some(k) = keys {
                match sigs {
                    Some(s) => dnssec::rrsigs(w, Section::Answer, owner, ttl, s)?,
                    None => dnssec::sign_now(w, Section::Answer, k, (owner, lname), rtype::CNAME, ttl, &[target])?,
                }
            }
            if qtype == rtype::CNAME {
                return Ok((rcode::NOERROR, true));
            }
            match next_hop(zones, target, &mut cur) {
                Some((len, z)) => {
                    cur_len = len;
                    zone = z;
                    owner_is_qname = false;
                    continue;
                }
                None => return Ok((rcode::NOERROR, true)),
            }
        }
        let sign = match keys {
            None => Sign::No,
            Some(k) if wild => Sign::Now(k, lname),
            Some(_) => Sign::Ahead,
        };
        if qtype == rtype::ANY {
            // RFC 8482 §4.1: answer with one RRset rather than all of them.
            match node.rrsets.first() {
                Some(set) => write_rrset(w, owner, set, sign)?,
                None => nodata(zones, zone, keys, node, wild, (owner, lname), w)?,
            }
            return Ok((rcode::NOERROR, true));
        }
        match node.rrset(qtype) {
            Some(set) => {
                write_rrset(w, owner, set, sign)?;
                if qtype == rtype::NS {
                    glue(zones, set, w);
                }
            }
            None => nodata(zones, zone, keys, node, wild, (owner, lname), w)?,
        }
        return Ok((rcode::NOERROR, true));
    }
    // Chain too long: what we have is what the resolver gets.
    Ok((rcode::NOERROR, true))
}

/// Resolver discovery (`measure.rum.whoami_url`): `<id>.<domain>` answers
/// the configured addresses with TTL 0 (every name is asked once; nothing
/// is worth caching) and tells the IO shell who asked. The domain itself is
/// an empty non-terminal (NODATA, never NXDOMAIN: a resolver that trusts
/// NXDOMAIN cuts, RFC 8020, would not ask for the names below it). A name
/// below it that is not an id gets NXDOMAIN. None: not a whoami name.
fn whoami(
    ctx: &mut Ctx<'_>,
    conf: &petrel_config::Whoami,
    lname: &[u8],
    q: &Query<'_>,
    (zones, zone): (&ZoneSet, u16),
    w: &mut MessageWriter<'_>,
) -> Option<Result<(u16, bool), Full>> {
    let domain = &conf.domain_wire;
    let keys = ctx.keys(zones, zone);
    let owner = q.question.name;
    if lname == domain.as_slice() {
        let r = (|| {
            negative(zones, zone, w, keys.is_some())?;
            if let Some(k) = keys {
                dnssec::nsec_now(w, k, (owner, lname), &[], zones.zone(zone).neg_ttl)?;
            }
            Ok((rcode::NOERROR, true))
        })();
        return Some(r);
    }
    let l = *lname.first()? as usize;
    if lname.len() != 1 + l + domain.len() || &lname[1 + l..] != domain.as_slice() {
        return None;
    }
    let id = &lname[1..1 + l];
    if !petrel_measure::whoami::valid_id(id) {
        return Some(nxdomain(ctx.compact, zones, zone, keys, (owner, lname), w));
    }
    let mut asked = WhoamiAsked {
        id: [0; petrel_measure::whoami::MAX_ID],
        len: l as u8,
        ecs: ctx.ecs,
    };
    asked.id[..l].copy_from_slice(id);
    ctx.info.whoami = Some(asked);
    let r = (|| {
        // Every name is new: signed now (its records are few).
        let mut refs: [&[u8]; 16] = [&[]; 16];
        let mut v4 = [[0u8; 4]; 16];
        let mut v6 = [[0u8; 16]; 16];
        let mut n = 0;
        let t = q.question.qtype;
        match t {
            rtype::A => {
                for a in conf.v4.iter().take(16) {
                    v4[n] = a.octets();
                    n += 1;
                }
            }
            rtype::AAAA => {
                for a in conf.v6.iter().take(16) {
                    v6[n] = a.octets();
                    n += 1;
                }
            }
            _ => {}
        }
        for (i, r) in refs.iter_mut().enumerate().take(n) {
            *r = if t == rtype::A { &v4[i] } else { &v6[i] };
        }
        for rd in &refs[..n] {
            w.record(Section::Answer, owner, t, class::IN, 0, rd)?;
        }
        if n == 0 {
            negative_with_ttl(zones, zone, w, 0, keys.is_some())?;
            if let Some(k) = keys {
                let mut types = [0u16; 2];
                let mut k_n = 0;
                if !conf.v4.is_empty() {
                    types[k_n] = rtype::A;
                    k_n += 1;
                }
                if !conf.v6.is_empty() {
                    types[k_n] = rtype::AAAA;
                    k_n += 1;
                }
                dnssec::nsec_now(w, k, (owner, lname), &types[..k_n], 0)?;
            }
        } else if let Some(k) = keys {
            dnssec::sign_now(w, Section::Answer, k, (owner, lname), t, 0, &refs[..n])?;
        }
        Ok((rcode::NOERROR, true))
    })();
    Some(r)
}

enum Lookup<'a> {
    Cut(u32),
    Wildcard(&'a Node),
    NxDomain,
}

/// For a name with no node: find the closest encloser; a delegation above
/// it means referral, a `*` child of it means wildcard (RFC 4592).
fn closest<'a>(zones: &'a ZoneSet, lname: &[u8]) -> Lookup<'a> {
    let mut n = lname;
    while let Some(p) = name::parent(n) {
        if let Some((_, node)) = zones.node(p) {
            if let Some(cut) = node.cut {
                return Lookup::Cut(cut);
            }
            let mut wbuf = [0u8; MAX_NAME_LEN + 2];
            if p.len() + 2 <= MAX_NAME_LEN {
                wbuf[0] = 1;
                wbuf[1] = b'*';
                wbuf[2..2 + p.len()].copy_from_slice(p);
                if let Some((_, wnode)) = zones.node(&wbuf[..2 + p.len()]) {
                    return Lookup::Wildcard(wnode);
                }
            }
            return Lookup::NxDomain;
        }
        n = p;
    }
    Lookup::NxDomain
}

/// Prepare the next name of a CNAME chain, if it is in our zones.
fn next_hop(zones: &ZoneSet, target: &[u8], cur: &mut [u8; MAX_NAME_LEN]) -> Option<(usize, u16)> {
    let len = name::wire_len(target)?;
    let n = name::lowercase_into(&target[..len], cur);
    let z = zones.zone_of(&cur[..n])?;
    Some((n, z))
}

/// A CNAME to write: its target, TTL and signatures made ahead (None: a
/// wildcard's, signed now).
type Cname<'a> = (&'a [u8], u32, Option<&'a [Box<[u8]>]>);

/// How an RRset written is signed: not (no DO, or an unsigned zone), by
/// the signatures made ahead, or now for the lower-case owner given (a
/// wildcard's expansion).
#[derive(Clone, Copy)]
enum Sign<'a> {
    No,
    Ahead,
    Now(&'a ZoneKeys, &'a [u8]),
}

fn write_rrset(w: &mut MessageWriter<'_>, owner: &[u8], set: &RrSet, sign: Sign<'_>) -> Result<(), Full> {
    for rd in &set.rdata {
        if has_compressible_name(set.rtype) {
            let at = w.begin_record(owner, set.rtype, class::IN, set.ttl)?;
            write_rdata_compressed(w, set.rtype, rd)?;
            w.end_record(Section::Answer, at);
        } else {
            w.record(Section::Answer, owner, set.rtype, class::IN, set.ttl, rd)?;
        }
    }
    match sign {
        Sign::No => Ok(()),
        Sign::Ahead => dnssec::rrsigs(w, Section::Answer, owner, set.ttl, &set.sigs),
        Sign::Now(k, lname) => dnssec::sign_set_now(w, Section::Answer, k, (owner, lname), set),
    }
}

/// NODATA: the SOA and, signed, the name's NSEC (made ahead, or now for a
/// wildcard's expansion, with the wildcard's types).
fn nodata(
    zones: &ZoneSet,
    zone: u16,
    keys: Option<&ZoneKeys>,
    node: &Node,
    wild: bool,
    (owner, lname): (&[u8], &[u8]),
    w: &mut MessageWriter<'_>,
) -> Result<(), Full> {
    negative(zones, zone, w, keys.is_some())?;
    let Some(k) = keys else { return Ok(()) };
    let ttl = zones.zone(zone).neg_ttl;
    match (&node.nsec, wild) {
        (Some(n), false) => dnssec::nsec_ahead(w, owner, ttl, n),
        _ => {
            let mut t = [0u16; 32];
            let n = dnssec::types_of(&node.rrsets, &mut t);
            dnssec::nsec_now(w, k, (owner, lname), &t[..n], ttl)
        }
    }
}

/// A mapped name with no POP to answer with: NODATA cached no longer than
/// the service's TTL, and, signed, this moment's denial (the name's static
/// types, without the mapped ones).
fn no_pop(
    zones: &ZoneSet,
    zone: u16,
    keys: Option<&ZoneKeys>,
    (node, ttl): (&Node, u32),
    names: (&[u8], &[u8]),
    w: &mut MessageWriter<'_>,
) -> Result<(), Full> {
    negative_with_ttl(zones, zone, w, ttl, keys.is_some())?;
    let Some(k) = keys else { return Ok(()) };
    let mut t = [0u16; 32];
    let n = dnssec::types_of(&node.rrsets, &mut t);
    dnssec::nsec_now(w, k, names, &t[..n], zones.zone(zone).neg_ttl.min(ttl))
}

/// A name that does not exist. Signed: compact denial (RFC 9824 §3.1),
/// NOERROR with an NSEC whose bitmap holds NXNAME, or NXDOMAIN when the
/// query said Compact Answers OK.
fn nxdomain(
    compact: bool,
    zones: &ZoneSet,
    zone: u16,
    keys: Option<&ZoneKeys>,
    names: (&[u8], &[u8]),
    w: &mut MessageWriter<'_>,
) -> Result<(u16, bool), Full> {
    negative(zones, zone, w, keys.is_some())?;
    let Some(k) = keys else {
        return Ok((rcode::NXDOMAIN, true));
    };
    let ttl = zones.zone(zone).neg_ttl;
    dnssec::nsec_now(w, k, names, &[sec::NXNAME], ttl)?;
    Ok((if compact { rcode::NXDOMAIN } else { rcode::NOERROR }, true))
}

/// DS at a delegation point, from the parent's side: the DS RRset, or
/// NODATA with the NSEC that proves the child unsigned.
fn ds_at_cut(
    zones: &ZoneSet,
    zone: u16,
    keys: Option<&ZoneKeys>,
    node: &Node,
    owner: &[u8],
    w: &mut MessageWriter<'_>,
) -> Result<(u16, bool), Full> {
    match node.rrset(sec::DS) {
        Some(set) => write_rrset(w, owner, set, if keys.is_some() { Sign::Ahead } else { Sign::No })?,
        None => {
            negative(zones, zone, w, keys.is_some())?;
            if let (Some(_), Some(n)) = (keys, &node.nsec) {
                dnssec::nsec_ahead(w, owner, zones.zone(zone).neg_ttl, n)?;
            }
        }
    }
    Ok((rcode::NOERROR, true))
}

/// RFC 3597 §4: only the RFC 1035 types may have their rdata names compressed.
fn has_compressible_name(t: u16) -> bool {
    matches!(t, rtype::NS | rtype::CNAME | rtype::PTR | rtype::MX | rtype::SOA)
}

fn write_rdata_compressed(w: &mut MessageWriter<'_>, t: u16, rd: &[u8]) -> Result<(), Full> {
    match t {
        rtype::MX => {
            w.rdata_bytes(&rd[..2])?;
            w.rdata_name(&rd[2..])
        }
        rtype::SOA => {
            let m = name::wire_len(rd).unwrap_or(rd.len());
            let r = name::wire_len(&rd[m..]).unwrap_or(0);
            w.rdata_name(&rd[..m])?;
            w.rdata_name(&rd[m..m + r])?;
            w.rdata_bytes(&rd[m + r..])
        }
        _ => w.rdata_name(rd),
    }
}

fn soa_record(zones: &ZoneSet, zone: u16, w: &mut MessageWriter<'_>, ttl: u32, signed: bool) -> Result<(), Full> {
    let z = zones.zone(zone);
    let apex = zones.node_at(z.apex_node);
    if let Some(soa) = apex.rrset(rtype::SOA) {
        let at = w.begin_record(&z.apex, rtype::SOA, class::IN, ttl)?;
        write_rdata_compressed(w, rtype::SOA, &soa.rdata[0])?;
        w.end_record(Section::Authority, at);
        if signed {
            // The TTL may be below the signature's original TTL.
            dnssec::rrsigs(w, Section::Authority, &z.apex, ttl, &soa.sigs)?;
        }
    }
    Ok(())
}

/// NXDOMAIN/NODATA authority: the SOA with the negative TTL (RFC 2308 §3),
/// and its signature for a DO query in a signed zone.
fn negative(zones: &ZoneSet, zone: u16, w: &mut MessageWriter<'_>, signed: bool) -> Result<(), Full> {
    let ttl = zones.zone(zone).neg_ttl;
    soa_record(zones, zone, w, ttl, signed)
}

/// An empty mapped answer: cache it no longer than the service TTL.
fn negative_with_ttl(
    zones: &ZoneSet,
    zone: u16,
    w: &mut MessageWriter<'_>,
    ttl: u32,
    signed: bool,
) -> Result<(), Full> {
    let ttl = zones.zone(zone).neg_ttl.min(ttl);
    soa_record(zones, zone, w, ttl, signed)
}

fn referral(zones: &ZoneSet, cut: u32, w: &mut MessageWriter<'_>, keys: Option<&ZoneKeys>) -> Result<(), Full> {
    let owner = zones.name_at(cut);
    let node = zones.node_at(cut);
    if let Some(ns) = node.rrset(rtype::NS) {
        for rd in &ns.rdata {
            let at = w.begin_record(owner, rtype::NS, class::IN, ns.ttl)?;
            w.rdata_name(rd)?;
            w.end_record(Section::Authority, at);
        }
        // Signed: the DS that vouches for the child, or the NSEC that
        // proves it unsigned (RFC 4035 §3.1.4).
        if keys.is_some() {
            match node.rrset(sec::DS) {
                Some(ds) => {
                    for rd in &ds.rdata {
                        w.record(Section::Authority, owner, sec::DS, class::IN, ds.ttl, rd)?;
                    }
                    dnssec::rrsigs(w, Section::Authority, owner, ds.ttl, &ds.sigs)?;
                }
                None => {
                    if let Some(n) = &node.nsec {
                        let z = zones.zone(node.zone);
                        dnssec::nsec_ahead(w, owner, z.neg_ttl, n)?;
                    }
                }
            }
        }
        glue(zones, ns, w);
    }
    Ok(())
}

/// Address records for NS targets we hold (glue or in-zone), in additional;
/// what does not fit is left out without truncation (RFC 2181 §9).
fn glue(zones: &ZoneSet, ns: &RrSet, w: &mut MessageWriter<'_>) {
    for target in &ns.rdata {
        let mut l = [0u8; MAX_NAME_LEN];
        let n = name::lowercase_into(target, &mut l);
        if let Some((_, node)) = zones.node(&l[..n]) {
            for t in [rtype::A, rtype::AAAA] {
                if let Some(set) = node.rrset(t) {
                    for rd in &set.rdata {
                        if w.record(Section::Additional, target, t, class::IN, set.ttl, rd)
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    }
}

fn mapped_addresses(
    ctx: &mut Ctx<'_>,
    si: ServiceIdx,
    fam: Family,
    (owner, lname): (&[u8], &[u8]),
    rtype_out: u16,
    keys: Option<&ZoneKeys>,
    w: &mut MessageWriter<'_>,
) -> Result<(), Full> {
    ctx.mapped = true;
    let d = &mut ctx.info.decision;
    ctx.gen.decide(si, &ctx.client, Some(fam), ctx.entropy, d);
    ctx.scope = ctx.scope.max(d.scope());
    for &pop in d.pops() {
        write_pop(ctx.gen, pop, fam, owner, rtype_out, d.ttl, w)?;
    }
    let (Some(k), false) = (keys, d.pops().is_empty()) else {
        return Ok(());
    };
    // Signed when the generation was built; a set past that bound now.
    let svc = ctx.gen.service(si);
    if let Some(sigs) = svc.sigs.as_ref().and_then(|s| s.for_set(fam, d.pops())) {
        return dnssec::rrsigs(w, Section::Answer, owner, d.ttl, sigs);
    }
    let mut v4 = [[0u8; 4]; 64];
    let mut v6 = [[0u8; 16]; 64];
    let mut refs: [&[u8]; 64] = [&[]; 64];
    let mut n = 0;
    for &pop in d.pops() {
        let p = ctx.gen.pop(pop);
        match fam {
            Family::V4 => {
                for a in &p.ipv4 {
                    if n < v4.len() {
                        v4[n] = a.octets();
                        n += 1;
                    }
                }
            }
            Family::V6 => {
                for a in &p.ipv6 {
                    if n < v6.len() {
                        v6[n] = a.octets();
                        n += 1;
                    }
                }
            }
        }
    }
    for (i, r) in refs.iter_mut().enumerate().take(n) {
        *r = if fam == Family::V4 { &v4[i] } else { &v6[i] };
    }
    // Signed with the service's own TTL as the original one.
    dnssec::sign_now(w, Section::Answer, k, (owner, lname), rtype_out, svc.ttl, &refs[..n])
}

fn write_pop(
    gen: &Generation,
    pop: PopIdx,
    fam: Family,
    owner: &[u8],
    t: u16,
    ttl: u32,
    w: &mut MessageWriter<'_>,
) -> Result<(), Full> {
    let p = gen.pop(pop);
    match fam {
        Family::V4 => {
            for a in &p.ipv4 {
                w.record(Section::Answer, owner, t, class::IN, ttl, &a.octets())?;
            }
        }
        Family::V6 => {
            for a in &p.ipv6 {
                w.record(Section::Answer, owner, t, class::IN, ttl, &a.octets())?;
            }
        }
    }
    Ok(())
}
