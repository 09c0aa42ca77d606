//! The sticky buffers of an application-layer record, as the signature engine asks for them.

use vigil_parsers::app::{AppEvent, AppRecord};
use vigil_signatures::buffer::{Buffer, Side};
use vigil_signatures::engine::TxBuffers;

/// One record's buffers. Header lists are assembled when a rule asks for them.
pub struct RecordBuffers<'a> {
    pub record: &'a AppRecord,
    /// The raw stream of each direction (to server, to client) since the transaction began,
    /// with the stream offset of its first byte: what payload matches of transaction rules see.
    pub raw: [Option<(u64, &'a [u8])>; 2],
    /// The parser events of this record's transaction.
    pub events: &'a [AppEvent],
}

impl RecordBuffers<'_> {
    fn raw_side(&self, side: Side) -> Option<(u64, &[u8])> {
        let i = usize::from(side == Side::Response);
        self.raw[i].filter(|(_, bytes)| !bytes.is_empty())
    }
}

impl TxBuffers for RecordBuffers<'_> {
    fn has_event(&self, side: Side, event: &str) -> bool {
        self.events.iter().any(|e| {
            (side == Side::Both || super::side_of(e.direction) == side) && e.event == event
        })
    }

    fn stream_base(&self, side: Side) -> u64 {
        self.raw_side(side).map_or(0, |(base, _)| base)
    }

    fn tls_version(&self, side: Side) -> Option<u16> {
        match self.record {
            AppRecord::Tls(hs) if side == Side::Response => hs.server_version(),
            AppRecord::Tls(hs) => hs.client_version(),
            _ => None,
        }
    }

    fn has_side(&self, side: Side) -> bool {
        match self.record {
            AppRecord::Http(tx) => match side {
                Side::Request => tx.request.is_some(),
                Side::Response => tx.response.is_some(),
                Side::Both => tx.request.is_some() || tx.response.is_some(),
            },
            // A DNS request and its response are separate records; queries are request-side.
            AppRecord::Dns(msg) => match side {
                Side::Request => !msg.is_response,
                Side::Response => msg.is_response,
                Side::Both => true,
            },
            AppRecord::Tls(hs) => match side {
                Side::Request => hs.client_hello.is_some(),
                Side::Response => hs.server_hello.is_some() || !hs.server_chain.is_empty(),
                Side::Both => true,
            },
            AppRecord::Ssh(hs) => match side {
                Side::Request => hs.client.is_some(),
                Side::Response => hs.server.is_some(),
                Side::Both => true,
            },
        }
    }

    fn each(&mut self, buffer: Buffer, side: Side, f: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        if buffer == Buffer::Packet {
            return self.raw_side(side).is_some_and(|(_, bytes)| f(bytes));
        }
        let req = side != Side::Response;
        let one = |v: Option<&[u8]>, f: &mut dyn FnMut(&[u8]) -> bool| v.is_some_and(f);
        match self.record {
            AppRecord::Http(tx) => {
                let owned: Option<Vec<u8>>;
                let v: Option<&[u8]> = match buffer {
                    Buffer::HttpUri => tx.uri(),
                    Buffer::HttpUriRaw => tx.uri_raw(),
                    Buffer::HttpMethod => tx.method(),
                    Buffer::HttpHost => tx.host(),
                    Buffer::HttpHostRaw => tx.host_raw(),
                    Buffer::HttpUserAgent => tx.user_agent(),
                    Buffer::HttpHeader => {
                        owned = if req {
                            tx.request_header_buffer()
                        } else {
                            tx.response_header_buffer()
                        };
                        owned.as_deref()
                    }
                    Buffer::HttpHeaderRaw => {
                        let head = if req {
                            tx.request_start()
                        } else {
                            tx.response_start()
                        };
                        // The raw head without its first line.
                        head.map(|h| match h.iter().position(|&c| c == b'\n') {
                            Some(i) => &h[i + 1..],
                            None => &h[h.len()..],
                        })
                    }
                    Buffer::HttpHeaderNames => {
                        owned = if req {
                            tx.request_header_names_buffer()
                        } else {
                            tx.response_header_names_buffer()
                        };
                        owned.as_deref()
                    }
                    Buffer::HttpCookie => {
                        if req {
                            tx.cookie()
                        } else {
                            tx.set_cookie()
                        }
                    }
                    Buffer::HttpRequestBody => tx.request_body().filter(|b| !b.is_empty()),
                    Buffer::HttpResponseBody => tx.response_body().filter(|b| !b.is_empty()),
                    Buffer::FileData => if req {
                        tx.request_body()
                    } else {
                        tx.response_body()
                    }
                    .filter(|b| !b.is_empty()),
                    Buffer::HttpStatCode => tx.stat_code(),
                    Buffer::HttpStatMsg => tx.stat_msg(),
                    Buffer::HttpContentType => {
                        if req {
                            tx.request_content_type()
                        } else {
                            tx.response_content_type()
                        }
                    }
                    Buffer::HttpContentLen => {
                        if req {
                            tx.request_content_len()
                        } else {
                            tx.response_content_len()
                        }
                    }
                    Buffer::HttpStart => {
                        if req {
                            tx.request_start()
                        } else {
                            tx.response_start()
                        }
                    }
                    Buffer::HttpProtocol => {
                        if req {
                            tx.protocol()
                        } else {
                            tx.response_protocol()
                        }
                    }
                    Buffer::HttpRequestLine => tx.request_line(),
                    Buffer::HttpResponseLine => tx.response_line(),
                    Buffer::HttpLocation => tx.location(),
                    Buffer::HttpServer => tx.server(),
                    Buffer::HttpReferer => tx.referer(),
                    Buffer::HttpAccept => tx.accept(),
                    Buffer::HttpAcceptEnc => tx.accept_enc(),
                    Buffer::HttpAcceptLang => tx.accept_lang(),
                    Buffer::HttpConnection => {
                        if req {
                            tx.request_connection()
                        } else {
                            tx.response_connection()
                        }
                    }
                    _ => None,
                };
                one(v, f)
            }
            AppRecord::Dns(msg) => match buffer {
                Buffer::DnsQuery if !msg.is_response => msg.queries_rrnames().any(&mut *f),
                _ => false,
            },
            AppRecord::Tls(hs) => {
                let v: Option<&[u8]> = match buffer {
                    Buffer::TlsSni => hs.sni(),
                    Buffer::TlsCertSubject => hs.cert_subject().map(str::as_bytes),
                    Buffer::TlsCertIssuer => hs.cert_issuer().map(str::as_bytes),
                    Buffer::TlsCertSerial => hs.cert_serial().map(str::as_bytes),
                    Buffer::TlsCertFingerprint => hs.cert_fingerprint().map(str::as_bytes),
                    Buffer::TlsCerts => return hs.certificates().iter().any(|c| f(c)),
                    Buffer::Ja3Hash => hs.ja3_hash().map(str::as_bytes),
                    Buffer::Ja3String => hs.ja3_string().map(str::as_bytes),
                    Buffer::Ja3sHash => hs.ja3s_hash().map(str::as_bytes),
                    Buffer::Ja3sString => hs.ja3s_string().map(str::as_bytes),
                    Buffer::Ja4Hash => hs.ja4().map(str::as_bytes),
                    _ => None,
                };
                one(v, f)
            }
            AppRecord::Ssh(hs) => {
                let v: Option<&[u8]> = match (buffer, req) {
                    (Buffer::SshProto, true) => hs.client_proto(),
                    (Buffer::SshProto, false) => hs.server_proto(),
                    (Buffer::SshSoftware, true) => hs.client_software(),
                    (Buffer::SshSoftware, false) => hs.server_software(),
                    (Buffer::SshHassh, _) => hs.hassh().map(str::as_bytes),
                    (Buffer::SshHasshString, _) => hs.hassh_string(),
                    (Buffer::SshHasshServer, _) => hs.hassh_server().map(str::as_bytes),
                    (Buffer::SshHasshServerString, _) => hs.hassh_server_string(),
                    _ => None,
                };
                one(v, f)
            }
        }
    }
}
