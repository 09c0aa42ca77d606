//! Inspection buffers: what a sticky buffer keyword names, which protocol fills it and in which
//! direction of a transaction it lives.

use vigil_parsers::app::AppProto;

/// Which half of a transaction a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Request,
    Response,
    /// Either half; the rule's `flow:to_server`/`to_client` picks one, else both are inspected.
    Both,
}

/// The application protocol whose parser fills a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferProto {
    Http,
    Dns,
    Tls,
    Ssh,
}

impl BufferProto {
    pub const ALL: [BufferProto; 4] = [
        BufferProto::Http,
        BufferProto::Dns,
        BufferProto::Tls,
        BufferProto::Ssh,
    ];

    /// The parser that fills this protocol's buffers.
    pub fn app_proto(self) -> AppProto {
        match self {
            BufferProto::Http => AppProto::Http,
            BufferProto::Dns => AppProto::Dns,
            BufferProto::Tls => AppProto::Tls,
            BufferProto::Ssh => AppProto::Ssh,
        }
    }

    /// The protocol whose buffers `app`'s parser fills; `None` before or without a parser.
    pub fn of_app(app: AppProto) -> Option<BufferProto> {
        BufferProto::ALL.into_iter().find(|p| p.app_proto() == app)
    }

    pub fn name(self) -> &'static str {
        match self {
            BufferProto::Http => "http",
            BufferProto::Dns => "dns",
            BufferProto::Tls => "tls",
            BufferProto::Ssh => "ssh",
        }
    }
}

/// A buffer's filler: `Packet` for the packet's own header buffers, else a protocol's parser.
macro_rules! buffer_proto {
    (Packet) => {
        None
    };
    ($proto:ident) => {
        Some(BufferProto::$proto)
    };
}

macro_rules! buffers {
    ($( $variant:ident = $name:literal, $proto:ident, $side:ident, [$($alias:literal),*]; )*) => {
        /// A sticky buffer. `Packet` is the packet payload (`pkt_data`, the default).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Buffer {
            Packet,
            $( $variant, )*
        }

        impl Buffer {
            pub const ALL: &'static [Buffer] = &[Buffer::Packet, $( Buffer::$variant, )*];

            /// The Suricata 8 keyword naming this buffer.
            pub fn name(self) -> &'static str {
                match self {
                    Buffer::Packet => "pkt_data",
                    $( Buffer::$variant => $name, )*
                }
            }

            /// The buffer a sticky-buffer keyword (current or legacy name) selects.
            pub fn from_keyword(keyword: &str) -> Option<Buffer> {
                match keyword {
                    "pkt_data" => Some(Buffer::Packet),
                    $( $name $( | $alias )* => Some(Buffer::$variant), )*
                    _ => None,
                }
            }

            /// The parser that fills this buffer; `None` for the packet payload and the
            /// packet's header buffers.
            pub fn proto(self) -> Option<BufferProto> {
                match self {
                    Buffer::Packet => None,
                    $( Buffer::$variant => buffer_proto!($proto), )*
                }
            }

            pub fn side(self) -> Side {
                match self {
                    Buffer::Packet => Side::Both,
                    $( Buffer::$variant => Side::$side, )*
                }
            }
        }
    };
}

buffers! {
    // The packet's own headers (Suricata's `*.hdr`): inspected per packet, never the stream.
    Ipv4Hdr = "ipv4.hdr", Packet, Both, [];
    Ipv6Hdr = "ipv6.hdr", Packet, Both, [];
    TcpHdr = "tcp.hdr", Packet, Both, [];
    UdpHdr = "udp.hdr", Packet, Both, [];
    Icmpv4Hdr = "icmpv4.hdr", Packet, Both, [];
    Icmpv6Hdr = "icmpv6.hdr", Packet, Both, [];
    HttpUri = "http.uri", Http, Request, [];
    HttpUriRaw = "http.uri.raw", Http, Request, [];
    HttpMethod = "http.method", Http, Request, [];
    HttpHost = "http.host", Http, Request, [];
    HttpHostRaw = "http.host.raw", Http, Request, [];
    HttpUserAgent = "http.user_agent", Http, Request, [];
    HttpHeader = "http.header", Http, Both, [];
    HttpHeaderRaw = "http.header.raw", Http, Both, [];
    HttpHeaderNames = "http.header_names", Http, Both, ["http_header_names"];
    HttpCookie = "http.cookie", Http, Both, [];
    HttpRequestBody = "http.request_body", Http, Request, [];
    HttpResponseBody = "http.response_body", Http, Response, [];
    HttpStatCode = "http.stat_code", Http, Response, [];
    HttpStatMsg = "http.stat_msg", Http, Response, [];
    HttpContentType = "http.content_type", Http, Both, ["http_content_type"];
    HttpContentLen = "http.content_len", Http, Both, ["http_content_len"];
    HttpStart = "http.start", Http, Both, ["http_start"];
    HttpProtocol = "http.protocol", Http, Both, ["http_protocol"];
    HttpRequestLine = "http.request_line", Http, Request, ["http_request_line"];
    HttpResponseLine = "http.response_line", Http, Response, ["http_response_line"];
    HttpLocation = "http.location", Http, Response, ["http_location"];
    HttpServer = "http.server", Http, Response, ["http_server"];
    HttpReferer = "http.referer", Http, Request, ["http_referer"];
    HttpAccept = "http.accept", Http, Request, ["http_accept"];
    HttpAcceptEnc = "http.accept_enc", Http, Request, ["http_accept_enc"];
    HttpAcceptLang = "http.accept_lang", Http, Request, ["http_accept_lang"];
    HttpConnection = "http.connection", Http, Both, ["http_connection"];
    // `file.data` on HTTP: the response body, or the request body on `to_server` rules.
    FileData = "file.data", Http, Both, ["file_data"];
    DnsQuery = "dns.query", Dns, Request, ["dns_query"];
    TlsSni = "tls.sni", Tls, Request, ["tls_sni"];
    TlsCertSubject = "tls.cert_subject", Tls, Response, ["tls_cert_subject"];
    TlsCertIssuer = "tls.cert_issuer", Tls, Response, ["tls_cert_issuer"];
    TlsCertSerial = "tls.cert_serial", Tls, Response, ["tls_cert_serial"];
    TlsCertFingerprint = "tls.cert_fingerprint", Tls, Response, ["tls_cert_fingerprint"];
    TlsCerts = "tls.certs", Tls, Response, [];
    Ja3Hash = "ja3.hash", Tls, Request, ["ja3_hash"];
    Ja3String = "ja3.string", Tls, Request, ["ja3_string"];
    Ja3sHash = "ja3s.hash", Tls, Response, [];
    Ja3sString = "ja3s.string", Tls, Response, [];
    Ja4Hash = "ja4.hash", Tls, Request, [];
    SshProto = "ssh.proto", Ssh, Both, ["ssh_proto"];
    SshSoftware = "ssh.software", Ssh, Both, ["ssh_software"];
    SshHassh = "ssh.hassh", Ssh, Request, [];
    SshHasshString = "ssh.hassh.string", Ssh, Request, [];
    SshHasshServer = "ssh.hassh.server", Ssh, Response, [];
    SshHasshServerString = "ssh.hassh.server.string", Ssh, Response, [];
}

impl Buffer {
    /// One of the packet's header buffers (`ipv4.hdr` … `icmpv6.hdr`).
    pub fn is_header(self) -> bool {
        matches!(
            self,
            Buffer::Ipv4Hdr
                | Buffer::Ipv6Hdr
                | Buffer::TcpHdr
                | Buffer::UdpHdr
                | Buffer::Icmpv4Hdr
                | Buffer::Icmpv6Hdr
        )
    }

    /// The IP protocol whose header a header buffer holds (`None` for the IP headers and for
    /// other buffers).
    pub fn header_transport(self) -> Option<u8> {
        match self {
            Buffer::TcpHdr => Some(6),
            Buffer::UdpHdr => Some(17),
            Buffer::Icmpv4Hdr => Some(1),
            Buffer::Icmpv6Hdr => Some(58),
            _ => None,
        }
    }
}

/// Legacy content modifiers (`content:"x"; http_uri;`) and the buffer they move the content to.
pub fn legacy_modifier(keyword: &str) -> Option<Buffer> {
    Some(match keyword {
        "http_uri" => Buffer::HttpUri,
        "http_raw_uri" => Buffer::HttpUriRaw,
        "http_method" => Buffer::HttpMethod,
        "http_host" => Buffer::HttpHost,
        "http_raw_host" => Buffer::HttpHostRaw,
        "http_user_agent" => Buffer::HttpUserAgent,
        "http_header" => Buffer::HttpHeader,
        "http_raw_header" => Buffer::HttpHeaderRaw,
        "http_cookie" => Buffer::HttpCookie,
        "http_client_body" => Buffer::HttpRequestBody,
        "http_server_body" => Buffer::HttpResponseBody,
        "http_stat_code" => Buffer::HttpStatCode,
        "http_stat_msg" => Buffer::HttpStatMsg,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &b in Buffer::ALL {
            assert_eq!(Buffer::from_keyword(b.name()), Some(b));
        }
        assert_eq!(Buffer::from_keyword("file_data"), Some(Buffer::FileData));
        assert_eq!(Buffer::from_keyword("dns_query"), Some(Buffer::DnsQuery));
        assert_eq!(Buffer::from_keyword("nope"), None);
    }
}
