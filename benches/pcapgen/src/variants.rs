//! Application-layer variant flows (off by default): SSH, HTTP framing
//! variants, DNS edge cases, TLS 1.2 with a certificate, and random binary
//! on well-known ports. Each script also records its application truth.

use std::io::Write;

use crate::apps::{
    body_len, client_hello_opt, dns_name, dns_query, dns_response, dns_udp_log, ext, http_date,
    pick_resource, push_dns, teardown, tls_record, u24, Ctx, Frames, Qtype, Tcp, MS, USER_AGENTS,
};
use crate::packet::{Conv, Dir};
use crate::rng::Rng;
use crate::{cert, AppTruth, CertTruth, HttpTx, SshTruth, TlsTruth};

// ---------------------------------------------------------------- HTTP

/// HTTP variant scripts; the engine picks one per flow.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum HttpKind {
    Chunked,
    Gzip,
    Pipelined,
    Expect100,
    Head,
    Close,
}

impl HttpKind {
    pub(crate) const ALL: [HttpKind; 6] = [
        HttpKind::Chunked,
        HttpKind::Gzip,
        HttpKind::Pipelined,
        HttpKind::Expect100,
        HttpKind::Head,
        HttpKind::Close,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            HttpKind::Chunked => "chunked",
            HttpKind::Gzip => "gzip",
            HttpKind::Pipelined => "pipelined",
            HttpKind::Expect100 => "expect-100",
            HttpKind::Head => "head",
            HttpKind::Close => "close",
        }
    }
}

/// How a response body is framed on the wire.
#[derive(Clone, Copy, PartialEq)]
enum Framing {
    Length,
    Chunked,
    /// No length: the body ends with the server's FIN.
    Close,
}

struct Resp {
    status: u16,
    reason: &'static str,
    ctype: &'static str,
    entity: Vec<u8>,
    gzip: bool,
    framing: Framing,
    /// Answer to HEAD: headers announce the body, none follows.
    head: bool,
    keep_alive: bool,
}

/// gzip with flate2 (miniz_oxide backend). The bytes depend on the locked
/// flate2/miniz_oxide versions; default output never uses it.
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// Serialises `r`; returns the wire bytes and the truth's (body, entity) lengths.
fn response(rng: &mut Rng, date: u64, server: &str, r: &Resp) -> (Vec<u8>, u64, u64) {
    let body = if r.gzip {
        gzip(&r.entity)
    } else {
        r.entity.clone()
    };
    let mut h = format!(
        "HTTP/1.1 {} {}\r\nDate: {}\r\nServer: {server}\r\nContent-Type: {}\r\n",
        r.status,
        r.reason,
        http_date(date),
        r.ctype
    );
    if r.gzip {
        h.push_str("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n");
    }
    match r.framing {
        Framing::Length => h.push_str(&format!("Content-Length: {}\r\n", body.len())),
        Framing::Chunked => h.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Close => {}
    }
    h.push_str(if r.keep_alive && r.framing != Framing::Close {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut w = h.into_bytes();
    if r.head {
        return (w, 0, 0);
    }
    if r.framing == Framing::Chunked {
        let mut rest = &body[..];
        while !rest.is_empty() {
            let n = rng.usize(1, 4096).min(rest.len());
            // Chunk extensions appear now and then; parsers must skip them.
            let ext = if rng.chance(0.1) { ";name=value" } else { "" };
            w.extend_from_slice(format!("{n:x}{ext}\r\n").as_bytes());
            w.extend_from_slice(&rest[..n]);
            w.extend_from_slice(b"\r\n");
            rest = &rest[n..];
        }
        w.extend_from_slice(b"0\r\n\r\n");
    } else {
        w.extend_from_slice(&body);
    }
    (w, body.len() as u64, r.entity.len() as u64)
}

fn entity(ctx: &Ctx, rng: &mut Rng, text: bool) -> Vec<u8> {
    let n = body_len(rng, ctx.body_cap);
    if text {
        ctx.pools.text(rng, n).to_vec()
    } else {
        ctx.pools.bin(rng, n).to_vec()
    }
}

fn get_request(method: &str, uri: &str, host: &str, ua: &str, gzip_ok: bool) -> Vec<u8> {
    format!(
        "{method} {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
         Accept-Encoding: {}\r\nConnection: keep-alive\r\n\r\n",
        if gzip_ok { "gzip, deflate" } else { "identity" }
    )
    .into_bytes()
}

#[allow(clippy::too_many_arguments)]
fn tx(
    method: &str,
    host: &str,
    uri: &str,
    ua: &str,
    req_body: usize,
    r: &Resp,
    lens: (u64, u64),
    expect: bool,
) -> HttpTx {
    HttpTx {
        method: method.into(),
        host: host.into(),
        uri: uri.into(),
        user_agent: ua.into(),
        request_body_len: req_body as u64,
        status: r.status,
        content_type: Some(r.ctype.into()),
        response_body_len: lens.0,
        response_entity_len: lens.1,
        chunked: r.framing == Framing::Chunked && !r.head,
        content_encoding: r.gzip.then(|| "gzip".to_string()),
        close_delimited: r.framing == Framing::Close,
        expect_continue: expect,
    }
}

pub(crate) fn http(
    ctx: &Ctx,
    c: &mut Conv,
    out: &mut Frames,
    rng: &mut Rng,
    t0: u64,
    kind: HttpKind,
) {
    let mut tcp = Tcp::new(rng, c);
    let mut t = tcp.handshake(c, out, t0);
    let ua = *rng.pick(USER_AGENTS);
    let host = if c.sport == 80 {
        ctx.host.to_string()
    } else {
        format!("{}:{}", ctx.host, c.sport)
    };
    let server = *rng.pick(&["nginx/1.24.0", "Apache/2.4.58 (Ubuntu)", "cloudflare"]);
    let mut txs = Vec::new();
    let mut server_closes = false;
    match kind {
        HttpKind::Chunked | HttpKind::Gzip | HttpKind::Head | HttpKind::Close => {
            let n = rng.usize(1, 3);
            for i in 0..n {
                if i > 0 {
                    t += (rng.log_uniform(5.0, 800.0) * MS as f64) as u64;
                }
                let last = i + 1 == n;
                let res = pick_resource(rng);
                let head = kind == HttpKind::Head && (i == 0 || rng.chance(0.5));
                let method = if head { "HEAD" } else { "GET" };
                let gzip = match kind {
                    HttpKind::Gzip => true,
                    HttpKind::Chunked => res.text && rng.chance(0.4),
                    _ => false,
                };
                let framing = match kind {
                    HttpKind::Chunked => Framing::Chunked,
                    HttpKind::Close if last => Framing::Close,
                    _ => Framing::Length,
                };
                let req = get_request(method, &res.path, &host, ua, true);
                let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &req);
                let t_resp = req_end + tcp.far() + rng.range(MS / 2, 30 * MS);
                let text = res.text || gzip;
                let r = Resp {
                    status: 200,
                    reason: "OK",
                    ctype: if text && !res.text {
                        "text/html; charset=utf-8"
                    } else {
                        res.ctype
                    },
                    entity: entity(ctx, rng, text),
                    gzip,
                    framing,
                    head,
                    keep_alive: !last || framing != Framing::Close,
                };
                let (wire, bl, el) = response(rng, t_resp, server, &r);
                txs.push(tx(method, &host, &res.path, ua, 0, &r, (bl, el), false));
                let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &wire);
                t = acked;
                server_closes = framing == Framing::Close;
            }
        }
        HttpKind::Pipelined => {
            // All requests in one flight, then all responses in one.
            let n = rng.usize(2, 4);
            let mut reqs = Vec::new();
            let mut resps = Vec::new();
            let mut wire = Vec::new();
            for _ in 0..n {
                let res = pick_resource(rng);
                reqs.extend_from_slice(&get_request("GET", &res.path, &host, ua, false));
                resps.push(res);
            }
            let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &reqs);
            let t_resp = req_end + tcp.far() + rng.range(MS / 2, 30 * MS);
            for res in &resps {
                let r = Resp {
                    status: 200,
                    reason: "OK",
                    ctype: res.ctype,
                    entity: entity(ctx, rng, res.text),
                    gzip: false,
                    framing: Framing::Length,
                    head: false,
                    keep_alive: true,
                };
                let (w, bl, el) = response(rng, t_resp, server, &r);
                wire.extend_from_slice(&w);
                txs.push(tx("GET", &host, &res.path, ua, 0, &r, (bl, el), false));
            }
            let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &wire);
            t = acked;
        }
        HttpKind::Expect100 => {
            let uri = format!("/upload/{}", rng.below(100_000));
            let n = rng.usize(1_500, 20_000).min(ctx.body_cap);
            let body = ctx.pools.bin(rng, n).to_vec();
            let hdr = format!(
                "POST {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\nAccept: */*\r\n\
                 Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\
                 Expect: 100-continue\r\n\r\n",
                body.len()
            );
            let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, hdr.as_bytes());
            let t_cont = req_end + tcp.far() + rng.range(MS / 4, 5 * MS);
            let (_, acked) = tcp.send(
                c,
                out,
                t_cont,
                Dir::ToClient,
                b"HTTP/1.1 100 Continue\r\n\r\n",
            );
            let (body_end, _) = tcp.send(c, out, acked, Dir::ToServer, &body);
            let t_resp = body_end + tcp.far() + rng.range(MS, 40 * MS);
            let mut ent = format!(
                "{{\"stored\":true,\"bytes\":{},\"id\":\"{:016x}\"}}",
                body.len(),
                rng.u64()
            )
            .into_bytes();
            ent.push(b'\n');
            let r = Resp {
                status: 201,
                reason: "Created",
                ctype: "application/json",
                entity: ent,
                gzip: false,
                framing: Framing::Length,
                head: false,
                keep_alive: true,
            };
            let (wire, bl, el) = response(rng, t_resp, server, &r);
            txs.push(tx("POST", &host, &uri, ua, body.len(), &r, (bl, el), true));
            let (_, acked) = tcp.send(c, out, t_resp, Dir::ToClient, &wire);
            t = acked;
        }
    }
    c.truth.app_layer = Some(AppTruth::Http { transactions: txs });
    let t_close = t + rng.range(MS, 100 * MS);
    if server_closes {
        // The FIN is what ends a close-delimited body.
        tcp.close(c, out, t, Dir::ToClient);
    } else {
        teardown(&mut tcp, c, out, rng, t_close);
    }
}

// ---------------------------------------------------------------- TLS 1.2

fn handshake_msg(out: &mut Vec<u8>, typ: u8, body: &[u8]) {
    out.push(typ);
    out.extend_from_slice(&u24(body.len()));
    out.extend_from_slice(body);
}

/// TLS 1.2 (ECDHE-ECDSA-AES128-GCM-SHA256): the server's Certificate is
/// in clear, unlike TLS 1.3.
pub(crate) fn tls12(ctx: &Ctx, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let mut tcp = Tcp::new(rng, c);
    let t = tcp.handshake(c, out, t0);
    let sni = (!rng.chance(0.15)).then(|| ctx.host.to_string());
    c.truth.app_layer = Some(AppTruth::Tls(TlsTruth {
        sni: sni.clone(),
        version: "TLS 1.2".into(),
        cert: Some(CertTruth {
            subject: cert::SUBJECT.into(),
            issuer: cert::SUBJECT.into(),
            serial: cert::SERIAL.into(),
            fingerprint: cert::SHA1.into(),
            not_before: cert::NOT_BEFORE.into(),
            not_after: cert::NOT_AFTER.into(),
        }),
    }));
    let ch = client_hello_opt(rng, sni.as_deref(), &["http/1.1"]);
    let (t_ch, _) = tcp.send(c, out, t, Dir::ToServer, &ch);

    // ServerHello, Certificate, ServerKeyExchange, ServerHelloDone in one record.
    let mut hs = Vec::new();
    let mut sh = vec![0x03, 0x03];
    let mut random = [0u8; 32];
    rng.fill(&mut random);
    sh.extend_from_slice(&random);
    sh.push(32);
    let mut sid = [0u8; 32];
    rng.fill(&mut sid);
    sh.extend_from_slice(&sid);
    sh.extend_from_slice(&0xc02bu16.to_be_bytes());
    sh.push(0);
    let mut exts = Vec::new();
    ext(&mut exts, 0xff01, &[0]);
    ext(&mut exts, 0x0017, &[]);
    ext(&mut exts, 0x000b, &[1, 0]);
    ext(
        &mut exts,
        0x0010,
        &[0, 9, 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'],
    );
    sh.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    sh.extend_from_slice(&exts);
    handshake_msg(&mut hs, 2, &sh);
    let der = cert::CERT_DER;
    let mut cm = u24(der.len() + 3).to_vec();
    cm.extend_from_slice(&u24(der.len()));
    cm.extend_from_slice(der);
    handshake_msg(&mut hs, 11, &cm);
    let mut ske = vec![3, 0, 0x1d, 32];
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    ske.extend_from_slice(&key);
    ske.extend_from_slice(&0x0403u16.to_be_bytes());
    let mut sig = vec![0u8; 70];
    rng.fill(&mut sig);
    // An ECDSA signature is a DER SEQUENCE of two INTEGERs.
    sig[..4].copy_from_slice(&[0x30, 68, 0x02, 32]);
    sig[4] &= 0x7f;
    sig[36..38].copy_from_slice(&[0x02, 32]);
    sig[38] &= 0x7f;
    ske.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    ske.extend_from_slice(&sig);
    handshake_msg(&mut hs, 12, &ske);
    handshake_msg(&mut hs, 14, &[]);
    let mut flight = Vec::new();
    tls_record(&mut flight, 22, 0x0303, &hs);
    let (sf, _) = tcp.send(
        c,
        out,
        t_ch + tcp.far() + rng.range(MS, 10 * MS),
        Dir::ToClient,
        &flight,
    );

    // ClientKeyExchange, ChangeCipherSpec, encrypted Finished.
    let mut cke = vec![32];
    rng.fill(&mut key);
    cke.extend_from_slice(&key);
    let mut m = Vec::new();
    handshake_msg(&mut m, 16, &cke);
    let mut cf = Vec::new();
    tls_record(&mut cf, 22, 0x0303, &m);
    tls_record(&mut cf, 20, 0x0303, &[1]);
    let mut fin = [0u8; 40];
    rng.fill(&mut fin);
    tls_record(&mut cf, 22, 0x0303, &fin);
    let (cf_end, _) = tcp.send(c, out, sf + tcp.near(), Dir::ToServer, &cf);
    let mut sfin = Vec::new();
    tls_record(&mut sfin, 20, 0x0303, &[1]);
    rng.fill(&mut fin);
    tls_record(&mut sfin, 22, 0x0303, &fin);
    let (_, mut t) = tcp.send(
        c,
        out,
        cf_end + tcp.far() + rng.range(MS / 2, 5 * MS),
        Dir::ToClient,
        &sfin,
    );
    let mut buf = Vec::new();
    for _ in 0..rng.range(1, 3) {
        buf.clear();
        let n = rng.usize(200, 1_500);
        app_data12(&mut buf, ctx, rng, n);
        let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
        buf.clear();
        let n = body_len(rng, ctx.body_cap).max(60);
        app_data12(&mut buf, ctx, rng, n);
        let (_, acked) = tcp.send(
            c,
            out,
            req_end + tcp.far() + rng.range(MS / 2, 20 * MS),
            Dir::ToClient,
            &buf,
        );
        t = acked + rng.range(MS, 300 * MS);
    }
    // Encrypted close_notify alert.
    buf.clear();
    let mut alert = [0u8; 26];
    rng.fill(&mut alert);
    tls_record(&mut buf, 21, 0x0303, &alert);
    let (_, acked) = tcp.send(c, out, t, Dir::ToServer, &buf);
    let t_close = acked + rng.range(0, MS);
    teardown(&mut tcp, c, out, rng, t_close);
}

/// TLS 1.2 AES-GCM application records: 8-byte explicit nonce, ciphertext, 16-byte tag.
fn app_data12(out: &mut Vec<u8>, ctx: &Ctx, rng: &mut Rng, mut len: usize) {
    while len > 0 {
        let n = len.min(16_384);
        tls_record(out, 23, 0x0303, ctx.pools.bin(rng, n + 24));
        len -= n;
    }
}

// ---------------------------------------------------------------- SSH

const CLIENT_BANNERS: &[&str] = &[
    "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13",
    "SSH-2.0-OpenSSH_9.7",
    "SSH-2.0-PuTTY_Release_0.80",
    "SSH-2.0-libssh2_1.11.0",
    "SSH-2.0-Go",
];
const SERVER_BANNERS: &[&str] = &[
    "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6",
    "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2",
    "SSH-2.0-dropbear_2022.83",
    "SSH-2.0-OpenSSH_7.4",
];

/// RFC 4253 name-lists of a KEXINIT, in protocol order.
fn kexinit(rng: &mut Rng, server: bool) -> Vec<u8> {
    let kex = if server {
        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,\
         ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,\
         diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,kex-strict-s-v00@openssh.com"
    } else {
        "curve25519-sha256,curve25519-sha256@libssh.org,ecdh-sha2-nistp256,ecdh-sha2-nistp384,\
         ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,diffie-hellman-group16-sha512,\
         diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,ext-info-c,\
         kex-strict-c-v00@openssh.com"
    };
    let hostkey = if server {
        "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519"
    } else {
        "ssh-ed25519-cert-v01@openssh.com,ecdsa-sha2-nistp256-cert-v01@openssh.com,ssh-ed25519,\
         ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,rsa-sha2-512,rsa-sha2-256"
    };
    let enc = "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,\
               aes128-gcm@openssh.com,aes256-gcm@openssh.com";
    let mac = "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,\
               hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,\
               umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1";
    let comp = if server {
        "none,zlib@openssh.com"
    } else {
        "none,zlib@openssh.com,zlib"
    };
    let mut p = vec![20u8]; // SSH_MSG_KEXINIT
    let mut cookie = [0u8; 16];
    rng.fill(&mut cookie);
    p.extend_from_slice(&cookie);
    for list in [kex, hostkey, enc, enc, mac, mac, comp, comp, "", ""] {
        ssh_string(&mut p, list.as_bytes());
    }
    p.push(0); // first_kex_packet_follows
    p.extend_from_slice(&[0; 4]); // reserved
    p
}

fn ssh_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// Unencrypted binary packet (block size 8, no MAC before NEWKEYS).
fn ssh_packet(out: &mut Vec<u8>, rng: &mut Rng, payload: &[u8]) {
    let mut pad = 8 - (5 + payload.len()) % 8;
    if pad < 4 {
        pad += 8;
    }
    out.extend_from_slice(&((1 + payload.len() + pad) as u32).to_be_bytes());
    out.push(pad as u8);
    out.extend_from_slice(payload);
    let mut p = [0u8; 16];
    rng.fill(&mut p[..pad]);
    out.extend_from_slice(&p[..pad]);
}

/// After NEWKEYS: chacha20-poly1305 packets (encrypted length, payload
/// in 8-byte blocks, 16-byte tag): nothing but random bytes.
fn ssh_encrypted(out: &mut Vec<u8>, ctx: &Ctx, rng: &mut Rng, payload: usize) {
    let n = 4 + (payload + 5).div_ceil(8) * 8 + 16;
    out.extend_from_slice(ctx.pools.bin(rng, n));
}

pub(crate) fn ssh(ctx: &Ctx, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let mut tcp = Tcp::new(rng, c);
    let t = tcp.handshake(c, out, t0);
    let cb = *rng.pick(CLIENT_BANNERS);
    let sb = *rng.pick(SERVER_BANNERS);
    c.truth.app_layer = Some(AppTruth::Ssh(SshTruth {
        client_banner: cb.into(),
        server_banner: sb.into(),
    }));
    // The server speaks first; the client answers with its banner and KEXINIT.
    let (_, t) = tcp.send(
        c,
        out,
        t + rng.range(MS, 5 * MS),
        Dir::ToClient,
        format!("{sb}\r\n").as_bytes(),
    );
    let (_, t) = tcp.send(c, out, t, Dir::ToServer, format!("{cb}\r\n").as_bytes());
    let mut buf = Vec::new();
    let k = kexinit(rng, false);
    ssh_packet(&mut buf, rng, &k);
    let (t_ck, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
    buf.clear();
    let k = kexinit(rng, true);
    ssh_packet(&mut buf, rng, &k);
    let (_, t) = tcp.send(c, out, t_ck + tcp.far(), Dir::ToClient, &buf);
    // SSH_MSG_KEX_ECDH_INIT with the client's curve25519 key.
    buf.clear();
    let mut p = vec![30u8];
    let mut key = [0u8; 32];
    rng.fill(&mut key);
    ssh_string(&mut p, &key);
    ssh_packet(&mut buf, rng, &p);
    let (t_init, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
    // SSH_MSG_KEX_ECDH_REPLY (host key, server key, signature) + NEWKEYS.
    buf.clear();
    let mut p = vec![31u8];
    let mut hk = Vec::new();
    ssh_string(&mut hk, b"ssh-ed25519");
    rng.fill(&mut key);
    ssh_string(&mut hk, &key);
    ssh_string(&mut p, &hk);
    rng.fill(&mut key);
    ssh_string(&mut p, &key);
    let mut sig = Vec::new();
    ssh_string(&mut sig, b"ssh-ed25519");
    let mut s = [0u8; 64];
    rng.fill(&mut s);
    ssh_string(&mut sig, &s);
    ssh_string(&mut p, &sig);
    ssh_packet(&mut buf, rng, &p);
    ssh_packet(&mut buf, rng, &[21]);
    let (_, t) = tcp.send(
        c,
        out,
        t_init + tcp.far() + rng.range(MS, 8 * MS),
        Dir::ToClient,
        &buf,
    );
    // Client NEWKEYS, then encrypted service request / auth / session.
    buf.clear();
    ssh_packet(&mut buf, rng, &[21]);
    ssh_encrypted(&mut buf, ctx, rng, 17);
    let (mut t, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
    for _ in 0..rng.range(3, 12) {
        buf.clear();
        let n = rng.usize(16, 400);
        ssh_encrypted(&mut buf, ctx, rng, n);
        let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &buf);
        buf.clear();
        let n = rng.usize(16, 1_400);
        ssh_encrypted(&mut buf, ctx, rng, n);
        let (_, acked) = tcp.send(c, out, req_end + tcp.far(), Dir::ToClient, &buf);
        t = acked + rng.range(MS, 400 * MS);
    }
    teardown(&mut tcp, c, out, rng, t);
}

// ---------------------------------------------------------------- binary

/// Random bytes both ways on TCP 80/443: no protocol to detect.
pub(crate) fn binary(ctx: &Ctx, c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64) {
    let mut tcp = Tcp::new(rng, c);
    let mut t = tcp.handshake(c, out, t0);
    c.truth.app_layer = Some(AppTruth::Unknown);
    for _ in 0..rng.range(1, 4) {
        let n = rng.usize(40, 1_200);
        let mut b = ctx.pools.bin(rng, n).to_vec();
        // High bit set: not ASCII (HTTP, SSH) nor a TLS record type.
        b[0] |= 0x80;
        let (req_end, _) = tcp.send(c, out, t, Dir::ToServer, &b);
        let n = rng.usize(40, 4_000);
        let mut b = ctx.pools.bin(rng, n).to_vec();
        b[0] |= 0x80;
        let (_, acked) = tcp.send(c, out, req_end + tcp.far(), Dir::ToClient, &b);
        t = acked + rng.range(MS, 100 * MS);
    }
    teardown(&mut tcp, c, out, rng, t);
}

// ---------------------------------------------------------------- DNS

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum DnsKind {
    NxDomain,
    Truncated,
    TcpTwo,
    Cname,
    Txt,
    Mx,
}

impl DnsKind {
    pub(crate) const ALL: [DnsKind; 6] = [
        DnsKind::NxDomain,
        DnsKind::Truncated,
        DnsKind::TcpTwo,
        DnsKind::Cname,
        DnsKind::Txt,
        DnsKind::Mx,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            DnsKind::NxDomain => "nxdomain",
            DnsKind::Truncated => "tc",
            DnsKind::TcpTwo => "tcp-2q",
            DnsKind::Cname => "cname",
            DnsKind::Txt => "txt",
            DnsKind::Mx => "mx",
        }
    }
}

/// Answer to an A query through a CNAME chain (`www` -> edge host -> A).
fn cname_response(rng: &mut Rng, q: &[u8], name: &str) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] = 0x81;
    r[3] = 0x80;
    let ttl = (rng.range(30, 3_600) as u32).to_be_bytes();
    r.extend_from_slice(&[0xc0, 0x0c, 0, 5, 0, 1]);
    r.extend_from_slice(&ttl);
    let target = format!(
        "{}.edge{}.cdn-provider.net",
        name.split('.').next().unwrap_or("www"),
        rng.below(100)
    );
    let mut rd = Vec::new();
    dns_name(&mut rd, &target);
    r.extend_from_slice(&(rd.len() as u16).to_be_bytes());
    let target_off = r.len();
    r.extend_from_slice(&rd);
    let n = rng.range(1, 3) as u16;
    for _ in 0..n {
        // Name: pointer to the CNAME target inside the first answer.
        r.extend_from_slice(&(0xc000u16 | target_off as u16).to_be_bytes());
        r.extend_from_slice(&[0, 1, 0, 1]);
        r.extend_from_slice(&ttl);
        r.extend_from_slice(&[0, 4, rng.u8() | 1, rng.u8(), rng.u8(), rng.u8() | 1]);
    }
    r[6..8].copy_from_slice(&(1 + n).to_be_bytes());
    r
}

/// Truncated answer: TC set, empty answer section (the client should retry over TCP).
fn truncated_response(q: &[u8]) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] = 0x83; // QR, RD, TC
    r[3] = 0x80;
    r
}

pub(crate) fn dns(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64, host: &str, k: DnsKind) {
    let domain = host.split_once('.').map_or(host, |x| x.1);
    let rtt = rng.range(MS / 2, 40 * MS);
    match k {
        DnsKind::TcpTwo => {
            let mut tcp = Tcp::new(rng, c);
            let mut t = tcp.handshake(c, out, t0);
            // Two queries on one connection (RFC 7766), answered in order.
            for qt in [Qtype::A, Qtype::Aaaa] {
                let q = dns_query(rng.u16(), host, qt, false);
                push_dns(c, &q);
                let mut m = (q.len() as u16).to_be_bytes().to_vec();
                m.extend_from_slice(&q);
                let (qe, _) = tcp.send(c, out, t, Dir::ToServer, &m);
                let r = dns_response(rng, &q, qt, false, false);
                push_dns(c, &r);
                let mut m = (r.len() as u16).to_be_bytes().to_vec();
                m.extend_from_slice(&r);
                let (_, acked) = tcp.send(
                    c,
                    out,
                    qe + tcp.far() + rng.range(0, 3 * MS),
                    Dir::ToClient,
                    &m,
                );
                t = acked + rng.range(0, MS);
            }
            tcp.close(c, out, t, Dir::ToServer);
        }
        _ => {
            let (name, qt) = match k {
                DnsKind::NxDomain => (format!("nx{:08x}.{domain}", rng.u32()), Qtype::A),
                DnsKind::Txt => (domain.to_string(), Qtype::Txt),
                DnsKind::Mx => (domain.to_string(), Qtype::Mx),
                _ => (host.to_string(), Qtype::A),
            };
            // The CNAME builder appends to the question, so no OPT record there.
            let edns = k != DnsKind::Cname && rng.chance(0.3);
            let q = dns_query(rng.u16(), &name, qt, edns);
            dns_udp_log(c, out, t0, Dir::ToServer, &q);
            let r = match k {
                DnsKind::Truncated => truncated_response(&q),
                DnsKind::Cname => cname_response(rng, &q, &name),
                _ => dns_response(rng, &q, qt, k == DnsKind::NxDomain, false),
            };
            dns_udp_log(c, out, t0 + rtt, Dir::ToClient, &r);
        }
    }
}

/// Plain A lookup, used for DNS on an unusual port.
pub(crate) fn dns_plain(c: &mut Conv, out: &mut Frames, rng: &mut Rng, t0: u64, host: &str) {
    let q = dns_query(rng.u16(), host, Qtype::A, false);
    dns_udp_log(c, out, t0, Dir::ToServer, &q);
    let r = dns_response(rng, &q, Qtype::A, false, false);
    dns_udp_log(c, out, t0 + rng.range(MS / 2, 20 * MS), Dir::ToClient, &r);
}
