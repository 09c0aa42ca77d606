//! HTTP/1.0 and 1.1: a streaming, per-direction parser producing one record per transaction
//! (request/response pair) with Suricata 8's EVE `http` object and the buffers its HTTP sticky
//! buffers inspect.
//!
//! Heads are parsed by a lenient hand-written parser modelled on libhtp (Suricata's HTTP library)
//! rather than `httparse`: libhtp accepts request lines that `httparse` rejects (spaces inside the
//! URI, a missing protocol, bare LF line ends, header lines without a colon), and an IDS must see
//! what the server sees. A head is parsed in place when it is whole in the fed slice and is
//! buffered (capped) only when it straddles pieces.

use super::{eve_bytes_to_string, AppOutput, AppParser, AppProto, AppRecord, Direction, Probe};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::collections::VecDeque;
use std::io::Write;

/// The protocol events this parser raises (Suricata's names), the ones a rule can name with
/// `app-layer-event:http.<name in lower case>`.
pub const EVENTS: &[&str] = &[
    "UNKNOWN_ERROR",
    "REQUEST_LINE_INCOMPLETE",
    "REQUEST_LINE_LEADING_WHITESPACE",
    "REQUEST_LINE_MISSING_PROTOCOL",
    "METHOD_DELIM_NON_COMPLIANT",
    "URI_DELIM_NON_COMPLIANT",
    "REQUEST_FIELD_MISSING_COLON",
    "RESPONSE_FIELD_MISSING_COLON",
    "REQUEST_FIELD_TOO_LONG",
    "RESPONSE_FIELD_TOO_LONG",
    "REQUEST_TOO_MANY_HEADERS",
    "RESPONSE_TOO_MANY_HEADERS",
    "DUPLICATE_CONTENT_LENGTH_FIELD_IN_REQUEST",
    "DUPLICATE_CONTENT_LENGTH_FIELD_IN_RESPONSE",
    "INVALID_CONTENT_LENGTH_FIELD_IN_REQUEST",
    "INVALID_CONTENT_LENGTH_FIELD_IN_RESPONSE",
    "INVALID_TRANSFER_ENCODING_VALUE_IN_REQUEST",
    "INVALID_TRANSFER_ENCODING_VALUE_IN_RESPONSE",
    "INVALID_REQUEST_CHUNK_LEN",
    "INVALID_RESPONSE_CHUNK_LEN",
    "REQUEST_CHUNK_EXTENSION",
    "RESPONSE_CHUNK_EXTENSION",
    "RESPONSE_CHUNKED_OLD_PROTO",
    "RESPONSE_INVALID_PROTOCOL",
    "RESPONSE_INVALID_STATUS",
    "MISSING_HOST_HEADER",
    "HOST_HEADER_AMBIGUOUS",
    "INVALID_AUTHORITY_PORT",
    "ABNORMAL_CE_HEADER",
    "TOO_MANY_ENCODING_LAYERS",
    "GZIP_DECOMPRESSION_FAILED",
    "COMPRESSION_BOMB",
    "UNABLE_TO_MATCH_RESPONSE_TO_REQUEST",
];

/// Request methods the probe accepts (libhtp's known methods plus WebDAV, SSDP and MS-RPC ones).
#[rustfmt::skip]
const METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"PATCH",
    b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
    b"REPORT", b"CHECKOUT", b"CHECKIN", b"UNCHECKOUT", b"MERGE", b"MKACTIVITY", b"MKWORKSPACE",
    b"VERSION-CONTROL", b"BASELINE-CONTROL", b"UPDATE", b"LABEL", b"MKCALENDAR", b"ACL",
    b"BIND", b"UNBIND", b"REBIND", b"ORDERPATCH", b"NOTIFY", b"SUBSCRIBE", b"UNSUBSCRIBE",
    b"M-SEARCH", b"POLL", b"BMOVE", b"BDELETE", b"BCOPY", b"BPROPFIND", b"BPROPPATCH",
    b"X-MS-ENUMATTS", b"RPC_IN_DATA", b"RPC_OUT_DATA", b"PURGE", b"LINK", b"UNLINK",
];

/// Raw bytes kept before a decoder produces output, so a body mislabelled as compressed can
/// still be stored as sent (libhtp passes such bodies through).
const PREFIX_CAP: usize = 64;

/// Recognises HTTP from the first bytes of a direction.
pub fn probe(dir: Direction, data: &[u8]) -> Probe {
    match dir {
        Direction::ToServer => probe_request(data),
        Direction::ToClient => probe_prefix(data, b"HTTP/"),
    }
}

fn probe_prefix(data: &[u8], want: &[u8]) -> Probe {
    let n = data.len().min(want.len());
    match (data.get(..n), want.get(..n)) {
        (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => {
            if n == want.len() {
                Probe::Match
            } else {
                Probe::NeedMore
            }
        }
        _ => Probe::NoMatch,
    }
}

fn probe_request(data: &[u8]) -> Probe {
    if data.is_empty() {
        return Probe::NeedMore;
    }
    let mut need_more = false;
    for m in METHODS {
        match data.get(m.len()) {
            Some(&sep) => {
                if (sep == b' ' || sep == b'\t')
                    && data
                        .get(..m.len())
                        .is_some_and(|d| d.eq_ignore_ascii_case(m))
                {
                    return Probe::Match;
                }
            }
            None => {
                if m.get(..data.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(data))
                {
                    need_more = true;
                }
            }
        }
    }
    if need_more {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

/// Which sides' headers the EVE record lists in full (`dump-all-headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DumpHeaders {
    #[default]
    None,
    Request,
    Response,
    Both,
}

impl DumpHeaders {
    fn request(self) -> bool {
        matches!(self, DumpHeaders::Request | DumpHeaders::Both)
    }
    fn response(self) -> bool {
        matches!(self, DumpHeaders::Response | DumpHeaders::Both)
    }
}

/// Limits and options; `Default` follows Suricata's libhtp defaults.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Decoded request body bytes kept per transaction (`request-body-limit`).
    pub request_body_limit: usize,
    /// Decoded response body bytes kept per transaction (`response-body-limit`).
    pub response_body_limit: usize,
    /// Largest request/status line or header line (libhtp's hard field limit).
    pub max_line_len: usize,
    /// Largest head (start line plus headers) buffered per message.
    pub max_head_size: usize,
    /// Most distinct headers kept per message (more raise *_TOO_MANY_HEADERS).
    pub max_headers: usize,
    /// Most decompressed bytes produced per body (guards against compression bombs).
    pub decompress_limit: u64,
    /// Most Content-Encoding layers decoded in a response (libhtp's
    /// `response-body-decompress-layer-limit`; 0: no limit). Past it the rest are not decoded
    /// and `TOO_MANY_ENCODING_LAYERS` is raised.
    pub decompress_layer_limit: usize,
    /// Transactions waiting for their response before the oldest is handed out unfinished.
    pub max_pending_txs: usize,
    pub dump_all_headers: DumpHeaders,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_body_limit: 100 * 1024,
            response_body_limit: 100 * 1024,
            max_line_len: 18_000,
            max_head_size: 64 * 1024,
            max_headers: 1024,
            decompress_limit: 1024 * 1024,
            decompress_layer_limit: 2,
            max_pending_txs: 256,
            dump_all_headers: DumpHeaders::None,
        }
    }
}

/// Headers in order of first appearance; repeats are merged into one entry with ", " as libhtp
/// does, so this is the table Suricata's buffers and header dumps are built from.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

fn find_header<'a>(headers: &'a Headers, name: &[u8]) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The request half of a transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpRequest {
    pub method: Vec<u8>,
    /// The URI exactly as sent.
    pub uri_raw: Vec<u8>,
    /// Path (percent-decoded, separators compressed, dot segments removed) plus query/fragment.
    pub uri_normalized: Vec<u8>,
    /// `None` when the request line has no protocol (HTTP/0.9 style).
    pub protocol: Option<Vec<u8>>,
    pub line: Vec<u8>,
    /// The raw head: request line, header lines and the terminating empty line.
    pub head: Vec<u8>,
    pub headers: Headers,
    /// From an absolute URI, else the Host header: lowercased, port and trailing dots stripped.
    pub hostname: Option<Vec<u8>>,
    pub port: Option<u16>,
    /// Decoded (dechunked, decompressed) body, up to the body limit.
    pub body: Vec<u8>,
    /// Body bytes seen after dechunking, before decompression (counted past the limit).
    pub body_len: u64,
    pub body_file: BodyFile,
    pub complete: bool,
}

/// The response half of a transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpResponse {
    pub protocol: Vec<u8>,
    /// The status token as sent.
    pub status_raw: Vec<u8>,
    /// The status code when the token is a valid number (100-999).
    pub status: Option<u16>,
    pub message: Vec<u8>,
    pub line: Vec<u8>,
    pub head: Vec<u8>,
    pub headers: Headers,
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_file: BodyFile,
    pub complete: bool,
}

/// What file tracking needs of a body beyond its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BodyFile {
    /// Bytes of the body lost in stream gaps.
    pub gap_bytes: u64,
    /// The decoded body ran past the body limit: the file holds only its start.
    pub truncated: bool,
    /// The body ended as its framing said (not cut off by a gap or the flow's end).
    pub closed: bool,
}

/// A file's state when it is logged, as Suricata names it in `fileinfo.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Closed,
    Truncated,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Closed => "CLOSED",
            FileState::Truncated => "TRUNCATED",
        }
    }
}

/// A file carried by an HTTP body, as Suricata tracks it: a response body, or a POST (not
/// multipart) or PUT request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFile {
    /// `ToClient` for a download, `ToServer` for an upload.
    pub direction: Direction,
    pub filename: Vec<u8>,
    /// Decoded bytes tracked (at most the body limit), plus bytes lost in gaps.
    pub size: u64,
    pub gaps: bool,
    pub state: FileState,
}

/// The `filename=` parameter of a Content-Disposition value, quotes removed (Suricata's
/// `HTTPParseContentDispositionHeader`: parameters split on unquoted `;`).
pub fn content_disposition_filename(v: &[u8]) -> Option<&[u8]> {
    let mut quoted = false;
    let mut start = 0;
    let mut params = Vec::new();
    for (i, &b) in v.iter().enumerate() {
        if b == b'"' && (i == 0 || v.get(i - 1) != Some(&b'\\')) {
            quoted = !quoted;
        } else if b == b';' && !quoted {
            params.push(v.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    params.push(v.get(start..).unwrap_or_default());
    params.into_iter().find_map(|p| {
        let p = trim(p);
        let name = p.get(..9)?;
        if !name.eq_ignore_ascii_case(b"filename=") {
            return None;
        }
        let value = trim(p.get(9..)?);
        let value = value
            .strip_prefix(b"\"")
            .and_then(|x| x.strip_suffix(b"\""))
            .unwrap_or(value);
        (!value.is_empty()).then_some(value)
    })
}

/// The normalized URI path without query or fragment: what Suricata names a file after when
/// no Content-Disposition names it (libhtp's `parsed_uri->path`).
fn uri_path(normalized: &[u8]) -> &[u8] {
    let end = normalized
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(normalized.len());
    normalized.get(..end).unwrap_or_default()
}

/// The files of a multipart/form-data body (what the body limit kept of it): each part whose
/// Content-Disposition names a `filename=`, its data up to the CRLF before the next boundary.
/// A part the kept body does not close is TRUNCATED.
fn multipart_files(content_type: &[u8], body: &[u8], f: BodyFile, files: &mut Vec<HttpFile>) {
    let Some(at) = content_type
        .windows(9)
        .position(|w| w.eq_ignore_ascii_case(b"boundary="))
    else {
        return;
    };
    let value = content_type.get(at + 9..).unwrap_or_default();
    let value = value.split(|&b| b == b';').next().unwrap_or_default();
    let boundary = trim(value);
    let boundary = boundary
        .strip_prefix(b"\"")
        .and_then(|b| b.strip_suffix(b"\""))
        .unwrap_or(boundary);
    if boundary.is_empty() {
        return;
    }
    let delim = [b"--", boundary].concat();
    let finder = memchr::memmem::Finder::new(&delim);
    let Some(first) = finder.find(body) else {
        return;
    };
    let mut pos = first + delim.len();
    loop {
        let rest = body.get(pos..).unwrap_or_default();
        if rest.starts_with(b"--") {
            return;
        }
        let Some(head_end) = memchr::memmem::find(rest, b"\r\n\r\n") else {
            return;
        };
        let head = rest.get(..head_end).unwrap_or_default();
        let start = pos + head_end + 4;
        let next = finder
            .find(body.get(start..).unwrap_or_default())
            .map(|p| start + p);
        let end = match next {
            Some(n) if n >= start + 2 && body.get(n - 2..n) == Some(b"\r\n") => n - 2,
            Some(n) => n,
            None => body.len(),
        };
        let name = head.split(|&b| b == b'\n').find_map(|line| {
            let line = strip_cr(line);
            let colon = line.iter().position(|&b| b == b':')?;
            let (n, v) = (line.get(..colon)?, line.get(colon + 1..)?);
            if trim(n).eq_ignore_ascii_case(b"content-disposition") {
                content_disposition_filename(v)
            } else {
                None
            }
        });
        if let Some(name) = name {
            let gaps = f.gap_bytes > 0;
            files.push(HttpFile {
                direction: Direction::ToServer,
                filename: name.to_vec(),
                size: end.saturating_sub(start) as u64,
                gaps,
                state: if next.is_some() && !gaps {
                    FileState::Closed
                } else {
                    FileState::Truncated
                },
            });
        }
        match next {
            Some(n) => pos = n + delim.len(),
            None => return,
        }
    }
}

fn body_file(
    direction: Direction,
    filename: &[u8],
    body: &[u8],
    body_len: u64,
    f: BodyFile,
) -> Option<HttpFile> {
    if body_len == 0 || filename.is_empty() {
        return None;
    }
    let gaps = f.gap_bytes > 0;
    Some(HttpFile {
        direction,
        filename: filename.to_vec(),
        size: (body.len() as u64).saturating_add(f.gap_bytes),
        gaps,
        state: if gaps || f.truncated || !f.closed {
            FileState::Truncated
        } else {
            FileState::Closed
        },
    })
}

/// One request/response exchange: the EVE `http` record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpTransaction {
    pub tx_id: u64,
    pub request: Option<HttpRequest>,
    pub response: Option<HttpResponse>,
    dump: DumpHeaders,
}

fn header_buffer(headers: &Headers, skip: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(skip) {
            continue;
        }
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn header_names_buffer(headers: &Headers) -> Vec<u8> {
    let mut out = b"\r\n".to_vec();
    for (n, _) in headers {
        out.extend_from_slice(n);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

impl HttpTransaction {
    /// The files this transaction carried (uploads first), as Suricata's HTTP file tracking
    /// opens them: the parts of a multipart/form-data POST that name a `filename=`; the body
    /// of another POST or of a PUT, named after the URI path; a response body, named by
    /// Content-Disposition's filename or else the URI path. No request, no name, no file.
    pub fn files(&self) -> Vec<HttpFile> {
        let mut files = Vec::new();
        let req = self.req();
        let path = req.map(|r| uri_path(&r.uri_normalized)).unwrap_or_default();
        if let Some(r) = req {
            let put = r.method.eq_ignore_ascii_case(b"PUT");
            let post = r.method.eq_ignore_ascii_case(b"POST");
            let multipart = find_header(&r.headers, b"content-type")
                .filter(|ct| contains_ci(ct, b"multipart/form-data"));
            match multipart {
                Some(ct) if post => multipart_files(ct, &r.body, r.body_file, &mut files),
                _ if put || post => files.extend(body_file(
                    Direction::ToServer,
                    path,
                    &r.body,
                    r.body_len,
                    r.body_file,
                )),
                _ => {}
            }
        }
        if let Some(r) = self.resp() {
            let name = find_header(&r.headers, b"content-disposition")
                .and_then(content_disposition_filename)
                .unwrap_or(path);
            files.extend(body_file(
                Direction::ToClient,
                name,
                &r.body,
                r.body_len,
                r.body_file,
            ));
        }
        files
    }

    fn req(&self) -> Option<&HttpRequest> {
        self.request.as_ref()
    }
    fn resp(&self) -> Option<&HttpResponse> {
        self.response.as_ref()
    }
    fn req_header(&self, name: &[u8]) -> Option<&[u8]> {
        self.req().and_then(|r| find_header(&r.headers, name))
    }

    pub fn method(&self) -> Option<&[u8]> {
        self.req().map(|r| r.method.as_slice())
    }
    /// `http.uri.raw`.
    pub fn uri_raw(&self) -> Option<&[u8]> {
        self.req().map(|r| r.uri_raw.as_slice())
    }
    /// `http.uri` (normalized).
    pub fn uri(&self) -> Option<&[u8]> {
        self.req().map(|r| r.uri_normalized.as_slice())
    }
    /// Request protocol (`http.protocol`).
    pub fn protocol(&self) -> Option<&[u8]> {
        self.req().and_then(|r| r.protocol.as_deref())
    }
    pub fn response_protocol(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.protocol.as_slice())
    }
    /// Normalized host (`http.host`).
    pub fn host(&self) -> Option<&[u8]> {
        self.req().and_then(|r| r.hostname.as_deref())
    }
    /// The Host header as sent (`http.host.raw`).
    pub fn host_raw(&self) -> Option<&[u8]> {
        self.req_header(b"host")
    }
    pub fn http_port(&self) -> Option<u16> {
        self.req().and_then(|r| r.port)
    }
    pub fn user_agent(&self) -> Option<&[u8]> {
        self.req_header(b"user-agent")
    }
    pub fn referer(&self) -> Option<&[u8]> {
        self.req_header(b"referer")
    }
    /// Request Cookie (`http.cookie` to server).
    pub fn cookie(&self) -> Option<&[u8]> {
        self.req_header(b"cookie")
    }
    /// Response Set-Cookie (`http.cookie` to client).
    pub fn set_cookie(&self) -> Option<&[u8]> {
        self.response_header(b"set-cookie")
    }
    /// A request header by name, case-insensitive.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.req_header(name)
    }
    pub fn response_header(&self, name: &[u8]) -> Option<&[u8]> {
        self.resp().and_then(|r| find_header(&r.headers, name))
    }
    /// `http.header` to server: "Name: value\r\n" lines, Cookie excluded.
    pub fn request_header_buffer(&self) -> Option<Vec<u8>> {
        self.req().map(|r| header_buffer(&r.headers, b"cookie"))
    }
    /// `http.header` to client: Set-Cookie excluded.
    pub fn response_header_buffer(&self) -> Option<Vec<u8>> {
        self.resp()
            .map(|r| header_buffer(&r.headers, b"set-cookie"))
    }
    /// `http.header_names` to server: "\r\nName1\r\nName2\r\n\r\n".
    pub fn request_header_names_buffer(&self) -> Option<Vec<u8>> {
        self.req().map(|r| header_names_buffer(&r.headers))
    }
    pub fn response_header_names_buffer(&self) -> Option<Vec<u8>> {
        self.resp().map(|r| header_names_buffer(&r.headers))
    }
    pub fn request_line(&self) -> Option<&[u8]> {
        self.req().map(|r| r.line.as_slice())
    }
    pub fn response_line(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.line.as_slice())
    }
    /// `http.stat_code`: the status token as sent.
    pub fn stat_code(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.status_raw.as_slice())
    }
    pub fn status(&self) -> Option<u16> {
        self.resp().and_then(|r| r.status)
    }
    pub fn stat_msg(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.message.as_slice())
    }
    /// `http.start` to server: request line and headers as sent.
    pub fn request_start(&self) -> Option<&[u8]> {
        self.req().map(|r| r.head.as_slice())
    }
    pub fn response_start(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.head.as_slice())
    }
    pub fn request_body(&self) -> Option<&[u8]> {
        self.req().map(|r| r.body.as_slice())
    }
    pub fn response_body(&self) -> Option<&[u8]> {
        self.resp().map(|r| r.body.as_slice())
    }
    pub fn request_body_len(&self) -> u64 {
        self.req().map_or(0, |r| r.body_len)
    }
    pub fn response_body_len(&self) -> u64 {
        self.resp().map_or(0, |r| r.body_len)
    }
    pub fn request_content_type(&self) -> Option<&[u8]> {
        self.req_header(b"content-type")
    }
    pub fn response_content_type(&self) -> Option<&[u8]> {
        self.response_header(b"content-type")
    }
    pub fn request_content_len(&self) -> Option<&[u8]> {
        self.req_header(b"content-length")
    }
    pub fn response_content_len(&self) -> Option<&[u8]> {
        self.response_header(b"content-length")
    }
    pub fn location(&self) -> Option<&[u8]> {
        self.response_header(b"location")
    }
    pub fn server(&self) -> Option<&[u8]> {
        self.response_header(b"server")
    }
    pub fn accept(&self) -> Option<&[u8]> {
        self.req_header(b"accept")
    }
    pub fn accept_enc(&self) -> Option<&[u8]> {
        self.req_header(b"accept-encoding")
    }
    pub fn accept_lang(&self) -> Option<&[u8]> {
        self.req_header(b"accept-language")
    }
    pub fn request_connection(&self) -> Option<&[u8]> {
        self.req_header(b"connection")
    }
    pub fn response_connection(&self) -> Option<&[u8]> {
        self.response_header(b"connection")
    }
}

struct HeaderList<'a>(&'a Headers);

impl Serialize for HeaderList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (n, v) in self.0 {
            seq.serialize_element(&NameValue(n, v))?;
        }
        seq.end()
    }
}

struct NameValue<'a>(&'a [u8], &'a [u8]);

impl Serialize for NameValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &eve_bytes_to_string(self.0))?;
        m.serialize_entry("value", &eve_bytes_to_string(self.1))?;
        m.end()
    }
}

/// Suricata's Content-Range parse: "bytes START-END/SIZE", `*` for unknown parts.
fn content_range(v: &[u8]) -> (Option<u64>, Option<u64>, Option<u64>) {
    let v = trim(v);
    let v = match v.iter().position(|&b| b == b' ') {
        Some(p) => trim(v.get(p..).unwrap_or_default()),
        None => v,
    };
    let (range, size) = match v.iter().position(|&b| b == b'/') {
        Some(p) => (
            v.get(..p).unwrap_or_default(),
            v.get(p + 1..).unwrap_or_default(),
        ),
        None => (v, &b""[..]),
    };
    let (start, end) = match range.iter().position(|&b| b == b'-') {
        Some(p) => (
            parse_u64(range.get(..p).unwrap_or_default()),
            parse_u64(range.get(p + 1..).unwrap_or_default()),
        ),
        None => (None, None),
    };
    (start, end, parse_u64(size))
}

impl Serialize for HttpTransaction {
    /// Suricata 8's EVE `http` object, fields in its order.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize_object(s, self.dump)
    }
}

/// The `http` object without header dumps (`request_headers`/`response_headers`): what
/// Suricata shows beside a file (`fileinfo`).
pub struct HttpMetadata<'a>(pub &'a HttpTransaction);

impl Serialize for HttpMetadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_object(s, DumpHeaders::None)
    }
}

impl HttpTransaction {
    fn serialize_object<S: Serializer>(&self, s: S, dump: DumpHeaders) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let str_of = eve_bytes_to_string;
        if let Some(req) = self.req() {
            if let Some(h) = &req.hostname {
                m.serialize_entry("hostname", &str_of(h))?;
            }
            if let Some(p) = req.port {
                m.serialize_entry("http_port", &p)?;
            }
            m.serialize_entry("url", &str_of(&req.uri_raw))?;
            if let Some(ua) = self.user_agent() {
                m.serialize_entry("http_user_agent", &str_of(ua))?;
            }
            if let Some(x) = self.req_header(b"x-forwarded-for") {
                m.serialize_entry("xff", &str_of(x))?;
            }
        }
        if let Some(ct) = self.response_content_type() {
            let ct = ct.split(|&b| b == b';').next().unwrap_or_default();
            m.serialize_entry("http_content_type", &str_of(ct))?;
        }
        if let Some(cr) = self.response_header(b"content-range") {
            let (start, end, size) = content_range(cr);
            let mut obj = serde_json::Map::new();
            obj.insert("raw".into(), str_of(cr).into());
            if let Some(v) = start {
                obj.insert("start".into(), v.into());
            }
            if let Some(v) = end {
                obj.insert("end".into(), v.into());
            }
            if let Some(v) = size {
                obj.insert("size".into(), v.into());
            }
            m.serialize_entry("content_range", &obj)?;
        }
        if let Some(r) = self.referer() {
            m.serialize_entry("http_refer", &str_of(r))?;
        }
        if let Some(req) = self.req() {
            m.serialize_entry("http_method", &str_of(&req.method))?;
            if let Some(p) = &req.protocol {
                m.serialize_entry("protocol", &str_of(p))?;
            }
        }
        if let Some(resp) = self.resp() {
            match resp.status {
                Some(code) => m.serialize_entry("status", &code)?,
                None if !resp.status_raw.is_empty() => {
                    m.serialize_entry("status_string", &str_of(&resp.status_raw))?
                }
                None => {}
            }
            if let Some(l) = self.location() {
                m.serialize_entry("redirect", &str_of(l))?;
            }
        }
        m.serialize_entry("length", &self.response_body_len())?;
        if dump.request() {
            if let Some(req) = self.req().filter(|r| !r.headers.is_empty()) {
                m.serialize_entry("request_headers", &HeaderList(&req.headers))?;
            }
        }
        if dump.response() {
            if let Some(resp) = self.resp().filter(|r| !r.headers.is_empty()) {
                m.serialize_entry("response_headers", &HeaderList(&resp.headers))?;
            }
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Small byte helpers.

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// A header name trimmed of C `isspace` bytes, vertical tab included (libhtp's trimming).
fn trim_name(s: &[u8]) -> &[u8] {
    let keep = |b: &u8| !(b.is_ascii_whitespace() || *b == 0x0b);
    match (s.iter().position(keep), s.iter().rposition(keep)) {
        (Some(a), Some(z)) => s.get(a..=z).unwrap_or_default(),
        _ => &[],
    }
}

fn strip_cr(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = trim(s);
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------------------------
// URI handling.

/// libhtp's path decoding under Suricata's IDS personality (without lowercasing): %HH and %uHHHH
/// decoded (invalid escapes kept as is), backslashes become slashes, repeated slashes are
/// compressed and `.`/`..` segments removed.
fn normalize_path(path: &[u8]) -> Vec<u8> {
    let mut dec = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        let mut c = b;
        let mut adv = 1;
        if b == b'%' {
            let h = |k: usize| path.get(i + k).copied().and_then(hex_val);
            if let (Some(a), Some(d)) = (h(1), h(2)) {
                c = a << 4 | d;
                adv = 3;
            } else if matches!(path.get(i + 1), Some(b'u' | b'U')) {
                if let (Some(a), Some(b2), Some(c2), Some(d)) = (h(2), h(3), h(4), h(5)) {
                    // Best-fit: code points in the first 256 map to themselves, others to '?'.
                    c = if a == 0 && b2 == 0 { c2 << 4 | d } else { b'?' };
                    adv = 6;
                }
            }
        }
        if c == b'\\' {
            c = b'/';
        }
        if !(c == b'/' && dec.last() == Some(&b'/')) {
            dec.push(c);
        }
        i += adv;
    }
    remove_dot_segments(&dec)
}

/// RFC 3986 section 5.2.4 on bytes.
fn remove_dot_segments(input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(b"../") {
            rest = r;
        } else if let Some(r) = rest.strip_prefix(b"./") {
            rest = r;
        } else if rest.starts_with(b"/./") {
            rest = &rest[2..];
        } else if rest == b"/." {
            rest = b"/";
        } else if rest.starts_with(b"/../") || rest == b"/.." {
            rest = if rest.len() == 3 { b"/" } else { &rest[3..] };
            let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
            out.truncate(cut);
        } else if rest == b"." || rest == b".." {
            rest = b"";
        } else {
            let start = usize::from(rest.first() == Some(&b'/'));
            let end = rest
                .iter()
                .skip(start)
                .position(|&b| b == b'/')
                .map_or(rest.len(), |p| p + start);
            out.extend_from_slice(&rest[..end]);
            rest = &rest[end..];
        }
    }
    out
}

struct ParsedUri<'a> {
    authority: Option<&'a [u8]>,
    normalized: Vec<u8>,
}

fn parse_uri(raw: &[u8], connect: bool) -> ParsedUri<'_> {
    if connect {
        return ParsedUri {
            authority: Some(raw),
            normalized: raw.to_vec(),
        };
    }
    let mut rest = raw;
    let mut authority = None;
    // Absolute form: scheme "://" authority.
    if let Some(p) = memchr::memmem::find(raw, b"://") {
        let scheme = raw.get(..p).unwrap_or_default();
        if !scheme.is_empty()
            && scheme
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(b))
        {
            let after = raw.get(p + 3..).unwrap_or_default();
            let end = after
                .iter()
                .position(|b| b"/?#".contains(b))
                .unwrap_or(after.len());
            let auth = after.get(..end).unwrap_or_default();
            // Drop userinfo.
            let auth = match auth.iter().rposition(|&b| b == b'@') {
                Some(at) => auth.get(at + 1..).unwrap_or_default(),
                None => auth,
            };
            authority = Some(auth);
            rest = after.get(end..).unwrap_or_default();
        }
    }
    let (before_frag, frag) = match rest.iter().position(|&b| b == b'#') {
        Some(p) => (rest.get(..p).unwrap_or_default(), rest.get(p..)),
        None => (rest, None),
    };
    let (path, query) = match before_frag.iter().position(|&b| b == b'?') {
        Some(p) => (
            before_frag.get(..p).unwrap_or_default(),
            before_frag.get(p..),
        ),
        None => (before_frag, None),
    };
    let mut normalized = normalize_path(path);
    if let Some(q) = query {
        normalized.extend_from_slice(q);
    }
    if let Some(f) = frag {
        normalized.extend_from_slice(f);
    }
    ParsedUri {
        authority,
        normalized,
    }
}

/// Splits "host[:port]" (IPv6 in brackets). Returns the lowercased host without trailing dots and
/// the port, `Err(())` for the port when one is present but invalid.
fn split_authority(a: &[u8]) -> (Vec<u8>, Result<Option<u16>, ()>) {
    let a = trim(a);
    let (host, port) = if a.first() == Some(&b'[') {
        match a.iter().position(|&b| b == b']') {
            Some(p) => (
                a.get(..=p).unwrap_or_default(),
                a.get(p + 1..).and_then(|r| r.strip_prefix(b":")),
            ),
            None => (a, None),
        }
    } else {
        match a.iter().position(|&b| b == b':') {
            Some(p) => (a.get(..p).unwrap_or_default(), a.get(p + 1..)),
            None => (a, None),
        }
    };
    let mut host = host.to_ascii_lowercase();
    while host.last() == Some(&b'.') {
        host.pop();
    }
    let port = match port {
        None => Ok(None),
        Some(p) => match parse_u64(p) {
            Some(n) if (1..=65535).contains(&n) => Ok(u16::try_from(n).ok()),
            _ => Err(()),
        },
    };
    (host, port)
}

// ---------------------------------------------------------------------------------------------
// Head scanning and parsing.

enum Scan {
    /// The head ends after this many bytes of the new data.
    Found(usize),
    NeedMore,
    TooLong,
}

/// Looks for the empty line ending a head in `carried` (the unfinished line already buffered)
/// followed by `rest`. `line_start` is where the current line starts in `rest` (`None`: it
/// started in `carried`); it is updated for the next call.
fn scan_head(carried: &[u8], rest: &[u8], line_start: &mut Option<usize>, max_line: usize) -> Scan {
    let mut from = 0;
    for off in memchr::memchr_iter(b'\n', rest) {
        let (len, first) = match *line_start {
            None => (
                carried.len().saturating_add(off),
                carried.first().or(rest.first()).copied(),
            ),
            Some(s) => (off.saturating_sub(s), rest.get(s).copied()),
        };
        if len > max_line.saturating_add(1) {
            return Scan::TooLong;
        }
        if len == 0 || (len == 1 && first == Some(b'\r')) {
            return Scan::Found(off + 1);
        }
        *line_start = Some(off + 1);
        from = off + 1;
    }
    let partial = match *line_start {
        None => carried.len().saturating_add(rest.len()),
        Some(s) => rest.len().saturating_sub(s.max(from)),
    };
    if partial > max_line.saturating_add(1) {
        Scan::TooLong
    } else {
        Scan::NeedMore
    }
}

/// `scan_head` for responses, whose lines libhtp (as Suricata 8 runs it) ends at CRLF, LF CR,
/// LF or a lone CR, so `\r\r` ends a head and `ok\rTransfer-Encoding: chunked` is two lines.
/// A CR or LF as the last byte seen waits for the next byte.
fn scan_response_head(
    carried: &[u8],
    rest: &[u8],
    line_start: &mut Option<usize>,
    max_line: usize,
) -> Scan {
    let c = carried.len();
    let at = |i: usize| {
        if i < c {
            carried.get(i).copied()
        } else {
            rest.get(i - c).copied()
        }
    };
    let eol_from = |i: usize| {
        let in_carried = carried
            .get(i..)
            .and_then(|t| memchr::memchr2(b'\r', b'\n', t))
            .map(|p| i + p);
        in_carried.or_else(|| {
            let from = i.saturating_sub(c);
            memchr::memchr2(b'\r', b'\n', rest.get(from..).unwrap_or_default())
                .map(|p| c + from + p)
        })
    };
    let mut i = 0;
    while let Some(j) = eol_from(i) {
        if j - i > max_line.saturating_add(1) {
            return Scan::TooLong;
        }
        let Some(eol) = response_eol(at, j, j == i) else {
            break;
        };
        let end = j + eol;
        if j == i {
            return Scan::Found(end.saturating_sub(c));
        }
        i = end;
    }
    *line_start = if i >= c { Some(i - c) } else { None };
    if c.saturating_add(rest.len()).saturating_sub(i) > max_line.saturating_add(1) {
        Scan::TooLong
    } else {
        Scan::NeedMore
    }
}

/// Length of the line end at `j` (a CR or LF) in a response head, by libhtp's response rules:
/// the deformed `\n\r\r\n` before `\n`/`\r\n`, the deformed `\r\n\r` + CR/SP/HT run + optional
/// LF not before `\n`/`\r\n`, else CRLF, LF CR, LF or CR. `empty_line`: the line is empty, where
/// libhtp ends the head at the first regular line end. `None`: more bytes are needed to tell.
fn response_eol(at: impl Fn(usize) -> Option<u8>, j: usize, empty_line: bool) -> Option<usize> {
    let b0 = at(j)?;
    let next_is_eol = |k: usize| match at(k) {
        None => None,
        Some(b'\n') => Some(true),
        Some(b'\r') => at(k + 1).map(|b| b == b'\n'),
        Some(_) => Some(false),
    };
    if !empty_line
        && b0 == b'\n'
        && at(j + 1) == Some(b'\r')
        && at(j + 2) == Some(b'\r')
        && at(j + 3) == Some(b'\n')
        && next_is_eol(j + 4)?
    {
        return Some(4);
    }
    if !empty_line && b0 == b'\r' && at(j + 1) == Some(b'\n') && at(j + 2) == Some(b'\r') {
        let mut k = j + 3;
        while matches!(at(k), Some(b'\r' | b' ' | b'\t')) {
            k += 1;
        }
        at(k)?;
        if k > j + 3 {
            if at(k) == Some(b'\n') {
                k += 1;
            }
            if !next_is_eol(k)? {
                return Some(k - j);
            }
        }
    }
    match (b0, at(j + 1)?) {
        (b'\r', b'\n') | (b'\n', b'\r') => Some(2),
        _ => Some(1),
    }
}

/// The lines of a response head, split as `scan_response_head` found them, without their
/// line ends.
fn response_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = head;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            None => Some(std::mem::take(&mut rest)),
            Some(j) => {
                let line = rest.get(..j).unwrap_or_default();
                let at = |i: usize| rest.get(i).copied();
                // The head is whole: what needed more bytes is the regular rule's one byte.
                let eol = response_eol(at, j, line.is_empty()).unwrap_or(1);
                rest = rest.get(j + eol..).unwrap_or_default();
                Some(line)
            }
        }
    })
}

/// Header lines of a head (after its start line), unfolded, as (name, value) pairs. Calls
/// `missing_colon` for lines without a colon (kept as a name with an empty value, like libhtp).
/// `fold_nul`: a line starting with NUL continues the previous one (libhtp's response rule).
fn for_each_header<'a>(
    lines: impl Iterator<Item = &'a [u8]>,
    fold_nul: bool,
    mut f: impl FnMut(&'a [u8], Vec<u8>, bool),
) {
    let mut cur: Option<(&'a [u8], Vec<u8>, bool)> = None;
    for line in lines {
        let line = strip_cr(line);
        if line.is_empty() {
            break;
        }
        if line
            .first()
            .is_some_and(|&b| is_ws(b) || (fold_nul && b == 0))
        {
            if let Some((_, v, _)) = cur.as_mut() {
                // Obsolete line folding: the continuation joins the value with one space.
                let t = trim(line.strip_prefix(b"\0").unwrap_or(line));
                if !t.is_empty() {
                    if !v.is_empty() {
                        v.push(b' ');
                    }
                    v.extend_from_slice(t);
                }
                continue;
            }
        }
        if let Some((n, v, ok)) = cur.take() {
            f(n, v, ok);
        }
        cur = Some(match line.iter().position(|&b| b == b':') {
            Some(p) => (
                trim_name(line.get(..p).unwrap_or_default()),
                trim(line.get(p + 1..).unwrap_or_default()).to_vec(),
                true,
            ),
            None => (trim(line), Vec::new(), false),
        });
    }
    if let Some((n, v, ok)) = cur {
        f(n, v, ok);
    }
}

/// Adds a header to the merged table. Returns false when the table is full.
fn add_header(headers: &mut Headers, name: &[u8], value: Vec<u8>, max: usize) -> AddResult {
    // libhtp looks names up ignoring NULs (`Transfer\0-Encoding` is Transfer-Encoding to it);
    // the table keeps such a name without them, so lookups stay plain comparisons.
    let cleaned: Vec<u8>;
    let name = if name.contains(&0) {
        cleaned = name.iter().copied().filter(|&b| b != 0).collect();
        cleaned.as_slice()
    } else {
        name
    };
    if let Some((_, v)) = headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        if name.eq_ignore_ascii_case(b"content-length") {
            // libhtp keeps the first Content-Length; a different repeat is suspicious.
            return if *v == value {
                AddResult::Ok
            } else {
                AddResult::DuplicateCl
            };
        }
        if v.len().saturating_add(value.len()) < 65536 {
            v.extend_from_slice(b", ");
            v.extend_from_slice(&value);
        }
        return AddResult::Ok;
    }
    if headers.len() >= max {
        return AddResult::Full;
    }
    headers.push((name.to_vec(), value));
    AddResult::Ok
}

#[derive(PartialEq)]
enum AddResult {
    Ok,
    Full,
    DuplicateCl,
}

fn parse_headers(
    lines: &mut dyn Iterator<Item = &[u8]>,
    headers: &mut Headers,
    max: usize,
    dir: Direction,
    tx_id: u64,
    out: &mut AppOutput,
) {
    let req = dir == Direction::ToServer;
    let mut full_reported = false;
    for_each_header(
        lines,
        dir == Direction::ToClient,
        |name, value, has_colon| {
            if !has_colon {
                out.event(
                    AppProto::Http,
                    if req {
                        "REQUEST_FIELD_MISSING_COLON"
                    } else {
                        "RESPONSE_FIELD_MISSING_COLON"
                    },
                    dir,
                    Some(tx_id),
                );
            }
            if name.is_empty() && value.is_empty() {
                return;
            }
            match add_header(headers, name, value, max) {
                AddResult::Ok => {}
                AddResult::Full => {
                    if !full_reported {
                        full_reported = true;
                        out.event(
                            AppProto::Http,
                            if req {
                                "REQUEST_TOO_MANY_HEADERS"
                            } else {
                                "RESPONSE_TOO_MANY_HEADERS"
                            },
                            dir,
                            Some(tx_id),
                        );
                    }
                }
                AddResult::DuplicateCl => out.event(
                    AppProto::Http,
                    if req {
                        "DUPLICATE_CONTENT_LENGTH_FIELD_IN_REQUEST"
                    } else {
                        "DUPLICATE_CONTENT_LENGTH_FIELD_IN_RESPONSE"
                    },
                    dir,
                    Some(tx_id),
                ),
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Body decoding.

/// Where decompressed output goes: room is set before each write so output never exceeds the
/// body limit or the decompression limit; once full, writes fail and decoding stops.
#[derive(Debug, Default)]
struct Sink {
    out: Vec<u8>,
    room: usize,
    total: u64,
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("full"));
        }
        let n = buf.len().min(self.room);
        self.out.extend_from_slice(buf.get(..n).unwrap_or_default());
        self.room -= n;
        self.total = self.total.saturating_add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Codec {
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    Raw(Box<flate2::write::DeflateDecoder<Sink>>),
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Codec")
    }
}

impl Codec {
    fn sink(&mut self) -> &mut Sink {
        match self {
            Codec::Gzip(d) => d.get_mut(),
            Codec::Zlib(d) => d.get_mut(),
            Codec::Raw(d) => d.get_mut(),
        }
    }
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Codec::Gzip(d) => d.write_all(data),
            Codec::Zlib(d) => d.write_all(data),
            Codec::Raw(d) => d.write_all(data),
        }
    }
    fn try_finish(&mut self) -> std::io::Result<()> {
        match self {
            Codec::Gzip(d) => d.try_finish(),
            Codec::Zlib(d) => d.try_finish(),
            Codec::Raw(d) => d.try_finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Enc {
    Gzip,
    Deflate,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DecState {
    Running,
    /// Not compressed after all: raw bytes are the body.
    Passthrough,
    /// Limit reached or broken stream: the rest is counted, not decoded.
    Stopped,
}

/// One Content-Encoding layer.
#[derive(Debug)]
struct Layer {
    enc: Enc,
    codec: Option<Codec>,
    /// Raw bytes seen before any output (for the pass-through fallback and the restart).
    prefix: Vec<u8>,
    /// Raw bytes fed so far.
    seen: u64,
    /// Deflate bytes held until two are known (zlib header or raw stream).
    held: Vec<u8>,
    state: DecState,
    produced: bool,
    /// A gzip stream whose header the decoder refused was restarted as raw deflate.
    restarted: bool,
    /// Stopped because its output reached the limit it was given.
    full: bool,
}

impl Layer {
    fn new(enc: Enc) -> Layer {
        let codec = match enc {
            Enc::Gzip => Some(Codec::Gzip(Box::new(flate2::write::GzDecoder::new(
                Sink::default(),
            )))),
            // zlib-wrapped or raw: decided from the first two bytes.
            Enc::Deflate => None,
        };
        Layer {
            enc,
            codec,
            prefix: Vec::new(),
            seen: 0,
            held: Vec::new(),
            state: DecState::Running,
            produced: false,
            restarted: false,
            full: false,
        }
    }

    /// Writes `parts` into the codec and moves its output to `body`.
    fn run(
        &mut self,
        parts: [&[u8]; 2],
        body: &mut Vec<u8>,
        limit: usize,
        bomb: u64,
        last: bool,
    ) -> std::io::Result<()> {
        let Some(codec) = self.codec.as_mut() else {
            return Ok(());
        };
        let room_bomb =
            usize::try_from(bomb.saturating_sub(codec.sink().total)).unwrap_or(usize::MAX);
        codec.sink().room = limit.saturating_sub(body.len()).min(room_bomb);
        let mut res = Ok(());
        for part in parts {
            if res.is_ok() {
                res = codec.write_all(part);
            }
        }
        if res.is_ok() && last {
            res = codec.try_finish();
        }
        let sink = codec.sink();
        store(body, &sink.out, limit);
        sink.out.clear();
        if sink.total > 0 && !self.produced {
            self.produced = true;
            self.prefix = Vec::new();
        }
        res
    }

    /// Feeds raw body bytes (`last`: the body ended); appends decoded output to `body`.
    /// Returns an event name on failure.
    fn feed(
        &mut self,
        data: &[u8],
        body: &mut Vec<u8>,
        limit: usize,
        bomb: u64,
        last: bool,
    ) -> Option<&'static str> {
        match self.state {
            DecState::Stopped => return None,
            DecState::Passthrough => {
                store(body, data, limit);
                return None;
            }
            DecState::Running => {}
        }
        if body.len() >= limit && !data.is_empty() {
            self.state = DecState::Stopped;
            self.full = true;
            return None;
        }
        let early = std::mem::take(&mut self.held);
        if self.codec.is_none() {
            let mut first = early.iter().chain(data.iter());
            let (a, b) = (first.next().copied(), first.next().copied());
            if b.is_none() && !last {
                self.held = early;
                self.held.extend_from_slice(data);
                self.record_prefix(data);
                self.seen = self.seen.saturating_add(data.len() as u64);
                return None;
            }
            let zlib = match (a, b) {
                (Some(a), Some(b)) => a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0,
                _ => false,
            };
            self.codec = Some(if zlib {
                Codec::Zlib(Box::new(flate2::write::ZlibDecoder::new(Sink::default())))
            } else {
                Codec::Raw(Box::new(
                    flate2::write::DeflateDecoder::new(Sink::default()),
                ))
            });
        }
        // Whether `prefix` holds every raw byte before `data[took..]`.
        let seen_before = self.seen;
        self.seen = self.seen.saturating_add(data.len() as u64);
        let took = self.record_prefix(data);
        let whole = self.prefix.len() as u64 == seen_before.saturating_add(took as u64);
        let mut res = self.run([&early, data], body, limit, bomb, last);
        let header_refused = res
            .as_ref()
            .is_err_and(|e| e.kind() != std::io::ErrorKind::WriteZero);
        if header_refused
            && self.enc == Enc::Gzip
            && !self.produced
            && !self.restarted
            && whole
            && self.prefix.len() > 10
        {
            // A gzip stream whose header the decoder refuses (reserved flags, a header CRC
            // flag without the CRC, a wrong header CRC) is restarted as raw deflate after the
            // header, as libhtp and lenient clients read it.
            let skip = gzip_header_len(&self.prefix).unwrap_or(10);
            self.restarted = true;
            self.codec = Some(Codec::Raw(Box::new(flate2::write::DeflateDecoder::new(
                Sink::default(),
            ))));
            let prefix = std::mem::take(&mut self.prefix);
            res = self.run(
                [
                    prefix.get(skip..).unwrap_or_default(),
                    data.get(took..).unwrap_or_default(),
                ],
                body,
                limit,
                bomb,
                last,
            );
            if !self.produced {
                self.prefix = prefix;
            }
        }
        let (total, room) = match self.codec.as_mut() {
            Some(c) => (c.sink().total, c.sink().room),
            None => (0, 0),
        };
        let Err(e) = res else {
            return None;
        };
        self.state = DecState::Stopped;
        if e.kind() == std::io::ErrorKind::Other && room == 0 {
            self.full = total < bomb;
            return (total >= bomb).then_some("COMPRESSION_BOMB");
        }
        if e.kind() == std::io::ErrorKind::WriteZero {
            // Data after the end of the compressed stream: ignored.
            return None;
        }
        if !self.produced {
            // Labelled compressed but is not: keep the bytes as sent, as libhtp does.
            self.state = DecState::Passthrough;
            store(body, &self.prefix, limit);
            store(body, data.get(took..).unwrap_or_default(), limit);
            self.prefix = Vec::new();
        }
        Some("GZIP_DECOMPRESSION_FAILED")
    }

    /// Keeps the first raw bytes until output appears; returns how many of `data` it took.
    fn record_prefix(&mut self, data: &[u8]) -> usize {
        if self.produced {
            return 0;
        }
        let n = data.len().min(PREFIX_CAP.saturating_sub(self.prefix.len()));
        self.prefix
            .extend_from_slice(data.get(..n).unwrap_or_default());
        n
    }
}

/// The Content-Encoding layers of a body, in decoding order: each layer's output is the next
/// one's input, the last writes the body.
#[derive(Debug)]
struct Decoder {
    layers: Vec<Layer>,
    /// Output of the layer before, input of the next (only with more than one layer).
    scratch: [Vec<u8>; 2],
}

impl Decoder {
    fn new(encs: &[Enc]) -> Option<Decoder> {
        (!encs.is_empty()).then(|| Decoder {
            layers: encs.iter().map(|&e| Layer::new(e)).collect(),
            scratch: [Vec::new(), Vec::new()],
        })
    }

    /// Whether decoding stopped because the body limit was reached.
    fn full(&self) -> bool {
        self.layers.last().is_some_and(|l| l.full)
    }

    fn stop(&mut self) {
        for l in &mut self.layers {
            l.state = DecState::Stopped;
        }
    }

    /// Feeds raw body bytes through every layer; the first failure's event is returned.
    fn feed(
        &mut self,
        data: &[u8],
        body: &mut Vec<u8>,
        limit: usize,
        bomb: u64,
        last: bool,
    ) -> Option<&'static str> {
        let Some((final_layer, inner)) = self.layers.split_last_mut() else {
            store(body, data, limit);
            return None;
        };
        if inner.is_empty() {
            return final_layer.feed(data, body, limit, bomb, last);
        }
        // Inner layers are bounded by the bomb limit alone; the body limit applies at the end.
        let cap = usize::try_from(bomb).unwrap_or(usize::MAX);
        let [mut input, mut output] = std::mem::take(&mut self.scratch);
        let mut event = None;
        for (i, layer) in inner.iter_mut().enumerate() {
            output.clear();
            let src = if i == 0 { data } else { input.as_slice() };
            if let Some(e) = layer.feed(src, &mut output, cap, bomb, last) {
                event = event.or(Some(e));
            }
            std::mem::swap(&mut input, &mut output);
        }
        if let Some(e) = final_layer.feed(&input, body, limit, bomb, last) {
            event = event.or(Some(e));
        }
        input.clear();
        output.clear();
        self.scratch = [input, output];
        event
    }
}

/// Length of a gzip member header (RFC 1952: 10 fixed bytes, then the optional fields its flags
/// announce; reserved flags are ignored), when `p` holds all of it.
fn gzip_header_len(p: &[u8]) -> Option<usize> {
    let flags = *p.get(3)?;
    let mut k = 10usize;
    if flags & 0x04 != 0 {
        let xlen = usize::from(*p.get(k)?) | usize::from(*p.get(k + 1)?) << 8;
        k = k.checked_add(2 + xlen)?;
    }
    for bit in [0x08, 0x10] {
        if flags & bit != 0 {
            k = k + memchr::memchr(0, p.get(k..)?)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        k += 2;
    }
    (k <= p.len()).then_some(k)
}

fn store(body: &mut Vec<u8>, data: &[u8], limit: usize) {
    let room = limit.saturating_sub(body.len());
    if room > 0 {
        body.extend_from_slice(data.get(..data.len().min(room)).unwrap_or_default());
    }
}

// ---------------------------------------------------------------------------------------------
// The per-direction state machine.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailer,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Head,
    Body(Body),
    /// After a CONNECT request: data is held until the response says tunnel or not.
    WaitConnect,
    Tunnel,
    Dead,
}

#[derive(Debug)]
struct Side {
    mode: Mode,
    /// Head bytes while a head straddles pieces; chunk-size/trailer line bytes in a body; held
    /// data while waiting for a CONNECT response.
    buf: Vec<u8>,
    /// Start of the unfinished line in `buf` (head scanning).
    line_start: usize,
    /// Transaction whose body is being read.
    tx: u64,
    body: Vec<u8>,
    body_len: u64,
    body_limit: usize,
    // Boxed: most bodies are not encoded, and the parser lives in every flow's state.
    decoder: Option<Box<Decoder>>,
    /// Body bytes lost in gaps.
    gap_bytes: u64,
    trailers: Headers,
    chunk_ext_seen: bool,
    /// Bytes were lost past the end of a body: the next message start is checked.
    resync: bool,
}

impl Side {
    fn new(body_limit: usize) -> Side {
        Side {
            mode: Mode::Head,
            buf: Vec::new(),
            line_start: 0,
            tx: 0,
            body: Vec::new(),
            body_len: 0,
            body_limit,
            decoder: None,
            gap_bytes: 0,
            trailers: Vec::new(),
            chunk_ext_seen: false,
            resync: false,
        }
    }
}

#[derive(Debug)]
struct Pending {
    tx: HttpTransaction,
    req_done: bool,
    resp_done: bool,
    seen_100: bool,
}

/// HTTP/1.x parser for one connection.
#[derive(Debug)]
pub struct HttpParser {
    cfg: HttpConfig,
    req: Side,
    resp: Side,
    txs: VecDeque<Pending>,
    next_tx_id: u64,
    /// The transaction the next response belongs to.
    next_resp_tx: u64,
    tunnel: bool,
    /// Client bytes sent after a CONNECT before its 2xx answer: the tunnel's first bytes.
    tunnel_client_data: Vec<u8>,
}

fn ev(out: &mut AppOutput, name: &'static str, dir: Direction, tx: Option<u64>) {
    out.event(AppProto::Http, name, dir, tx);
}

impl HttpParser {
    pub fn new(cfg: HttpConfig) -> HttpParser {
        HttpParser {
            req: Side::new(cfg.request_body_limit),
            resp: Side::new(cfg.response_body_limit),
            cfg,
            txs: VecDeque::new(),
            next_tx_id: 0,
            next_resp_tx: 0,
            tunnel: false,
            tunnel_client_data: Vec::new(),
        }
    }

    /// Whether a CONNECT (or 101 Switching Protocols) turned the connection into a tunnel.
    pub fn is_tunnel(&self) -> bool {
        self.tunnel
    }

    /// The client's bytes held while a CONNECT awaited its answer, now the tunnel's first bytes
    /// (e.g. a TLS ClientHello), for whoever parses the tunnelled protocol.
    pub fn take_tunnel_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.tunnel_client_data)
    }

    fn side(&mut self, dir: Direction) -> &mut Side {
        match dir {
            Direction::ToServer => &mut self.req,
            Direction::ToClient => &mut self.resp,
        }
    }

    fn pending(&mut self, id: u64) -> Option<&mut Pending> {
        self.txs.iter_mut().find(|p| p.tx.tx_id == id)
    }

    fn emit_ready(&mut self, out: &mut AppOutput) {
        while self.txs.front().is_some_and(|p| p.req_done && p.resp_done) {
            if let Some(p) = self.txs.pop_front() {
                out.records.push(AppRecord::Http(std::sync::Arc::new(p.tx)));
            }
        }
        while self.txs.len() > self.cfg.max_pending_txs {
            if let Some(p) = self.txs.pop_front() {
                if self.next_resp_tx <= p.tx.tx_id {
                    self.next_resp_tx = p.tx.tx_id.saturating_add(1);
                }
                out.records.push(AppRecord::Http(std::sync::Arc::new(p.tx)));
            }
        }
    }

    fn new_tx(&mut self) -> u64 {
        let id = self.next_tx_id;
        self.next_tx_id = self.next_tx_id.saturating_add(1);
        self.txs.push_back(Pending {
            tx: HttpTransaction {
                tx_id: id,
                request: None,
                response: None,
                dump: self.cfg.dump_all_headers,
            },
            req_done: false,
            resp_done: false,
            seen_100: false,
        });
        id
    }

    fn parse_dir(&mut self, dir: Direction, data: &[u8], out: &mut AppOutput) {
        let mut pos = 0;
        while pos < data.len() {
            let rest = data.get(pos..).unwrap_or_default();
            let used = match self.side(dir).mode {
                Mode::Dead | Mode::Tunnel => return,
                Mode::WaitConnect => {
                    let max = self.cfg.max_head_size;
                    let side = self.side(dir);
                    let n = rest.len().min(max.saturating_sub(side.buf.len()));
                    side.buf
                        .extend_from_slice(rest.get(..n).unwrap_or_default());
                    rest.len()
                }
                Mode::Head => self.head_step(dir, rest, out),
                Mode::Body(b) => self.body_step(dir, b, rest, out),
            };
            // Every step consumes at least one byte or changes the mode (a head found to be a
            // headless response's body), so the loop ends.
            if used == 0 && self.side(dir).mode == Mode::Head {
                pos = pos.saturating_add(1);
            } else {
                pos = pos.saturating_add(used);
            }
        }
    }

    /// Consumes head bytes from `rest`; returns how many.
    fn head_step(&mut self, dir: Direction, rest: &[u8], out: &mut AppOutput) -> usize {
        let max_line = self.cfg.max_line_len;
        let max_head = self.cfg.max_head_size;
        let side = self.side(dir);
        let mut skipped = 0;
        if side.buf.is_empty() {
            // Stray line ends between messages (e.g. after a body) are ignored, as libhtp does.
            skipped = rest
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .unwrap_or(rest.len());
            if skipped == rest.len() {
                return skipped;
            }
        }
        let rest = rest.get(skipped..).unwrap_or_default();
        if self.side(dir).resync && self.side(dir).buf.is_empty() {
            if probe(dir, rest) == Probe::NoMatch {
                ev(out, "UNKNOWN_ERROR", dir, None);
                self.give_up(dir);
                return skipped.saturating_add(rest.len());
            }
            self.side(dir).resync = false;
        }
        if dir == Direction::ToClient && self.maybe_headless_response(rest, out) {
            return skipped;
        }
        let side = self.side(dir);
        let mut ls = if side.buf.is_empty() { Some(0) } else { None };
        let carried = side.buf.get(side.line_start..).unwrap_or_default();
        let res = match dir {
            Direction::ToServer => scan_head(carried, rest, &mut ls, max_line),
            Direction::ToClient => scan_response_head(carried, rest, &mut ls, max_line),
        };
        match res {
            Scan::Found(end) => {
                let total = side.buf.len().saturating_add(end);
                if total > max_head {
                    self.head_too_long(dir, out);
                    return skipped.saturating_add(end);
                }
                let head_part = rest.get(..end).unwrap_or_default();
                if side.buf.is_empty() {
                    self.process_head(dir, head_part, out);
                } else {
                    side.buf.extend_from_slice(head_part);
                    let buf = std::mem::take(&mut side.buf);
                    self.process_head(dir, &buf, out);
                    let side = self.side(dir);
                    side.buf = buf;
                    side.buf.clear();
                    side.line_start = 0;
                }
                skipped.saturating_add(end)
            }
            Scan::NeedMore => {
                if side.buf.len().saturating_add(rest.len()) > max_head {
                    self.head_too_long(dir, out);
                } else {
                    let base = side.buf.len();
                    side.buf.extend_from_slice(rest);
                    if let Some(s) = ls {
                        side.line_start = base.saturating_add(s);
                    }
                }
                skipped.saturating_add(rest.len())
            }
            Scan::TooLong => {
                self.head_too_long(dir, out);
                skipped.saturating_add(rest.len())
            }
        }
    }

    /// A response that does not start with "HTTP" has no head: libhtp treats the data as an
    /// HTTP/0.9 body running until the connection closes. Decided once five bytes are known.
    fn maybe_headless_response(&mut self, rest: &[u8], out: &mut AppOutput) -> bool {
        let side = &self.resp;
        let have = side.buf.len().saturating_add(rest.len());
        if side.buf.len() >= 5 || have < 5 {
            return false;
        }
        let mut first = [0u8; 5];
        for (i, b) in side.buf.iter().chain(rest.iter()).take(5).enumerate() {
            if let Some(slot) = first.get_mut(i) {
                *slot = *b;
            }
        }
        // libhtp skips whitespace and NULs before looking for "HTTP".
        let start = first
            .iter()
            .position(|&b| !is_ws(b) && b != 0 && !b.is_ascii_whitespace())
            .unwrap_or(0);
        let look = first.get(start..).unwrap_or_default();
        let n = look.len().min(4);
        if look
            .get(..n)
            .is_some_and(|l| l.eq_ignore_ascii_case(&b"HTTP"[..n]))
        {
            return false;
        }
        let tx = self.match_response(out);
        let missing_proto = self
            .pending(tx)
            .and_then(|p| p.tx.request.as_ref())
            .is_some_and(|r| r.protocol.is_none());
        if !missing_proto {
            ev(
                out,
                "RESPONSE_INVALID_PROTOCOL",
                Direction::ToClient,
                Some(tx),
            );
        }
        if let Some(p) = self.pending(tx) {
            p.tx.response = Some(HttpResponse::default());
        }
        let held = std::mem::take(&mut self.resp.buf);
        self.start_body(Direction::ToClient, tx, Body::UntilClose, Vec::new());
        self.body_data(Direction::ToClient, &held, out);
        self.resp.buf = held;
        self.resp.buf.clear();
        self.resp.line_start = 0;
        true
    }

    fn head_too_long(&mut self, dir: Direction, out: &mut AppOutput) {
        let name = match dir {
            Direction::ToServer => "REQUEST_FIELD_TOO_LONG",
            Direction::ToClient => "RESPONSE_FIELD_TOO_LONG",
        };
        let tx = match dir {
            Direction::ToServer => None,
            Direction::ToClient => {
                (self.next_resp_tx < self.next_tx_id).then_some(self.next_resp_tx)
            }
        };
        ev(out, name, dir, tx);
        self.give_up(dir);
    }

    /// Stops parsing a direction; its unfinished transaction is still reported at `finish`.
    fn give_up(&mut self, dir: Direction) {
        let side = self.side(dir);
        side.mode = Mode::Dead;
        side.buf = Vec::new();
        side.line_start = 0;
    }

    fn process_head(&mut self, dir: Direction, head: &[u8], out: &mut AppOutput) {
        match dir {
            Direction::ToServer => self.process_request_head(head, out),
            Direction::ToClient => self.process_response_head(head, out),
        }
    }

    fn process_request_head(&mut self, head: &[u8], out: &mut AppOutput) {
        let dir = Direction::ToServer;
        let id = self.new_tx();
        let mut lines = head.split(|&b| b == b'\n');
        let raw_line = strip_cr(lines.next().unwrap_or_default());
        let mut r = HttpRequest {
            head: head.to_vec(),
            line: raw_line.to_vec(),
            ..Default::default()
        };
        let line = trim(raw_line);
        if line.len() != raw_line.len() && raw_line.first().is_some_and(|b| b.is_ascii_whitespace())
        {
            ev(out, "REQUEST_LINE_LEADING_WHITESPACE", dir, Some(id));
        }
        let mend = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
        r.method = line.get(..mend).unwrap_or_default().to_vec();
        let after = line.get(mend..).unwrap_or_default();
        let ws = after.iter().take_while(|&&b| is_ws(b)).count();
        if ws > 1 {
            ev(out, "METHOD_DELIM_NON_COMPLIANT", dir, Some(id));
        }
        let rest = after.get(ws..).unwrap_or_default();
        if rest.is_empty() {
            ev(out, "REQUEST_LINE_INCOMPLETE", dir, Some(id));
        } else {
            let split = rest.iter().rposition(|&b| is_ws(b)).and_then(|k| {
                let proto = rest.get(k + 1..)?;
                let pfx = proto.get(..5)?;
                pfx.eq_ignore_ascii_case(b"HTTP/").then(|| {
                    let uri = rest.get(..k).unwrap_or_default();
                    let uri_end = uri.iter().rposition(|&b| !is_ws(b)).map_or(0, |p| p + 1);
                    (uri.get(..uri_end).unwrap_or_default(), proto)
                })
            });
            match split {
                Some((uri, proto)) => {
                    r.uri_raw = uri.to_vec();
                    r.protocol = Some(proto.to_vec());
                }
                None => {
                    r.uri_raw = rest.to_vec();
                    ev(out, "REQUEST_LINE_MISSING_PROTOCOL", dir, Some(id));
                }
            }
        }
        if r.uri_raw.iter().any(|&b| is_ws(b)) {
            ev(out, "URI_DELIM_NON_COMPLIANT", dir, Some(id));
        }
        parse_headers(
            &mut lines,
            &mut r.headers,
            self.cfg.max_headers,
            dir,
            id,
            out,
        );

        let connect = r.method.eq_ignore_ascii_case(b"CONNECT");
        let parsed = parse_uri(&r.uri_raw, connect);
        r.uri_normalized = parsed.normalized;
        let host_hdr = find_header(&r.headers, b"host");
        let mut bad_port = false;
        if let Some(a) = parsed.authority {
            let (h, p) = split_authority(a);
            r.hostname = Some(h);
            match p {
                Ok(p) => r.port = p,
                Err(()) => bad_port = true,
            }
            if let Some(hh) = host_hdr {
                let (h2, _) = split_authority(hh);
                if Some(&h2) != r.hostname.as_ref() {
                    ev(out, "HOST_HEADER_AMBIGUOUS", dir, Some(id));
                }
            }
        } else if let Some(hh) = host_hdr {
            let (h, p) = split_authority(hh);
            r.hostname = Some(h);
            match p {
                Ok(p) => r.port = p,
                Err(()) => bad_port = true,
            }
        }
        if bad_port {
            ev(out, "INVALID_AUTHORITY_PORT", dir, Some(id));
        }
        if host_hdr.is_none()
            && r.protocol
                .as_deref()
                .is_some_and(|p| p.eq_ignore_ascii_case(b"HTTP/1.1"))
        {
            ev(out, "MISSING_HOST_HEADER", dir, Some(id));
        }

        let te = find_header(&r.headers, b"transfer-encoding");
        let cl = find_header(&r.headers, b"content-length");
        let body = if let Some(te) = te {
            if contains_ci(te, b"chunked") {
                Some(Body::ChunkSize)
            } else {
                ev(
                    out,
                    "INVALID_TRANSFER_ENCODING_VALUE_IN_REQUEST",
                    dir,
                    Some(id),
                );
                None
            }
        } else {
            None
        };
        let body = body.or_else(|| {
            cl.and_then(|cl| match parse_u64(cl) {
                Some(0) => None,
                Some(n) => Some(Body::Length(n)),
                None => {
                    ev(
                        out,
                        "INVALID_CONTENT_LENGTH_FIELD_IN_REQUEST",
                        dir,
                        Some(id),
                    );
                    None
                }
            })
        });
        // Requests: a single well-formed layer only, as before libhtp's slow path existed.
        let enc = content_encodings(
            find_header(&r.headers, b"content-encoding"),
            1,
            false,
            |_| {},
        );
        if let Some(p) = self.pending(id) {
            p.tx.request = Some(r);
        }
        match body {
            Some(b) => self.start_body(dir, id, b, enc),
            None => {
                self.complete_request(id);
                if connect {
                    self.req.mode = Mode::WaitConnect;
                }
            }
        }
    }

    fn complete_request(&mut self, id: u64) {
        if let Some(p) = self.pending(id) {
            p.req_done = true;
            if let Some(r) = p.tx.request.as_mut() {
                r.complete = true;
            }
        }
    }

    /// The transaction a new response belongs to (a response-only one when none is waiting).
    fn match_response(&mut self, out: &mut AppOutput) -> u64 {
        if self.next_resp_tx < self.next_tx_id && self.pending(self.next_resp_tx).is_some() {
            return self.next_resp_tx;
        }
        let id = self.new_tx();
        self.next_resp_tx = id;
        if let Some(p) = self.pending(id) {
            p.req_done = true;
        }
        ev(
            out,
            "UNABLE_TO_MATCH_RESPONSE_TO_REQUEST",
            Direction::ToClient,
            Some(id),
        );
        id
    }

    fn process_response_head(&mut self, head: &[u8], out: &mut AppOutput) {
        let dir = Direction::ToClient;
        let id = self.match_response(out);
        let mut lines = response_lines(head);
        let raw_line = strip_cr(lines.next().unwrap_or_default());
        let mut r = HttpResponse {
            head: head.to_vec(),
            line: raw_line.to_vec(),
            ..Default::default()
        };
        // NULs before the protocol are skipped, as libhtp skips them.
        let start = raw_line
            .iter()
            .position(|&b| b != 0)
            .unwrap_or(raw_line.len());
        let line = trim(raw_line.get(start..).unwrap_or_default());
        let pend = line.iter().position(|&b| is_ws(b)).unwrap_or(line.len());
        r.protocol = line.get(..pend).unwrap_or_default().to_vec();
        let rest = trim(line.get(pend..).unwrap_or_default());
        let send = rest.iter().position(|&b| is_ws(b)).unwrap_or(rest.len());
        r.status_raw = rest.get(..send).unwrap_or_default().to_vec();
        r.message = trim(rest.get(send..).unwrap_or_default()).to_vec();
        if !r
            .protocol
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"HTTP/"))
        {
            ev(out, "RESPONSE_INVALID_PROTOCOL", dir, Some(id));
        }
        r.status = parse_u64(&r.status_raw)
            .filter(|n| (100..=999).contains(n))
            .and_then(|n| u16::try_from(n).ok());
        if r.status.is_none() {
            ev(out, "RESPONSE_INVALID_STATUS", dir, Some(id));
        }
        parse_headers(
            &mut lines,
            &mut r.headers,
            self.cfg.max_headers,
            dir,
            id,
            out,
        );
        let status = r.status.unwrap_or(0);

        let (head_req, connect) = match self.pending(id).and_then(|p| p.tx.request.as_ref()) {
            Some(q) => (
                q.method.eq_ignore_ascii_case(b"HEAD"),
                q.method.eq_ignore_ascii_case(b"CONNECT"),
            ),
            None => (false, false),
        };

        // A 100 that announces a body is the final response (libhtp: only a 100 without
        // Content-Length and Transfer-Encoding is skipped as interim).
        let announces_body = find_header(&r.headers, b"content-length").is_some()
            || find_header(&r.headers, b"transfer-encoding").is_some();
        if (100..200).contains(&status) && status != 101 && !(status == 100 && announces_body) {
            // Interim response: the real one follows for the same transaction.
            if let Some(p) = self.pending(id) {
                if status == 100 {
                    if p.seen_100 {
                        ev(out, "100_CONTINUE_ALREADY_SEEN", dir, Some(id));
                    }
                    p.seen_100 = true;
                }
            }
            return;
        }
        self.next_resp_tx = id.saturating_add(1);

        let tunnel = status == 101 || (connect && (200..300).contains(&status));
        let te = find_header(&r.headers, b"transfer-encoding");
        let cl = find_header(&r.headers, b"content-length");
        let enc = content_encodings(
            find_header(&r.headers, b"content-encoding"),
            self.cfg.decompress_layer_limit,
            true,
            |e| ev(out, e, dir, Some(id)),
        );
        let mut body = None;
        if !(tunnel || head_req || status == 204 || status == 304) {
            if let Some(te) = te.filter(|te| contains_ci(te, b"chunked")) {
                let _ = te;
                if r.protocol.eq_ignore_ascii_case(b"HTTP/1.0") {
                    ev(out, "RESPONSE_CHUNKED_OLD_PROTO", dir, Some(id));
                }
                body = Some(Body::ChunkSize);
            } else {
                if te.is_some() {
                    ev(
                        out,
                        "INVALID_TRANSFER_ENCODING_VALUE_IN_RESPONSE",
                        dir,
                        Some(id),
                    );
                }
                body = match cl.map(parse_u64) {
                    Some(Some(0)) => None,
                    Some(Some(n)) => Some(Body::Length(n)),
                    Some(None) => {
                        ev(
                            out,
                            "INVALID_CONTENT_LENGTH_FIELD_IN_RESPONSE",
                            dir,
                            Some(id),
                        );
                        Some(Body::UntilClose)
                    }
                    None => Some(Body::UntilClose),
                };
            }
        }
        if let Some(p) = self.pending(id) {
            p.tx.response = Some(r);
        }
        if tunnel {
            self.complete_response(id, out);
            self.tunnel = true;
            if self.req.mode == Mode::WaitConnect {
                self.tunnel_client_data = std::mem::take(&mut self.req.buf);
            }
            self.req.mode = Mode::Tunnel;
            self.resp.mode = Mode::Tunnel;
            self.req.buf = Vec::new();
            self.resp.buf = Vec::new();
            return;
        }
        match body {
            Some(b) => self.start_body(dir, id, b, enc),
            None => self.complete_response(id, out),
        }
        if connect && self.req.mode == Mode::WaitConnect {
            // Not a tunnel: the held client data is ordinary HTTP.
            self.req.mode = Mode::Head;
            let held = std::mem::take(&mut self.req.buf);
            self.parse_dir(Direction::ToServer, &held, out);
        }
    }

    fn complete_response(&mut self, id: u64, out: &mut AppOutput) {
        if let Some(p) = self.pending(id) {
            p.resp_done = true;
            if let Some(r) = p.tx.response.as_mut() {
                r.complete = true;
            }
        }
        self.emit_ready(out);
    }

    fn start_body(&mut self, dir: Direction, tx: u64, body: Body, enc: Vec<Enc>) {
        let side = self.side(dir);
        side.mode = Mode::Body(body);
        side.tx = tx;
        // One allocation of the final size for known lengths, instead of a doubling series.
        let hint = match body {
            Body::Length(n) => usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(side.body_limit),
            _ => 0,
        };
        side.body = if enc.is_empty() {
            Vec::with_capacity(hint)
        } else {
            Vec::new()
        };
        side.body_len = 0;
        side.decoder = Decoder::new(&enc).map(Box::new);
        side.gap_bytes = 0;
        side.trailers = Vec::new();
        side.chunk_ext_seen = false;
        side.buf.clear();
        side.line_start = 0;
    }

    /// Body bytes after dechunking.
    fn body_data(&mut self, dir: Direction, data: &[u8], out: &mut AppOutput) {
        let bomb = self.cfg.decompress_limit;
        let side = self.side(dir);
        side.body_len = side.body_len.saturating_add(data.len() as u64);
        let tx = side.tx;
        let limit = side.body_limit;
        let event = match side.decoder.as_mut() {
            Some(d) => d.feed(data, &mut side.body, limit, bomb, false),
            None => {
                store(&mut side.body, data, limit);
                None
            }
        };
        if let Some(e) = event {
            ev(out, e, dir, Some(tx));
        }
    }

    /// The message body ended (or the stream did): hand the body to its transaction.
    /// `closed`: the body ended as its framing said, not cut off.
    fn end_body(&mut self, dir: Direction, closed: bool, out: &mut AppOutput) {
        let bomb = self.cfg.decompress_limit;
        let side = self.side(dir);
        let tx = side.tx;
        let limit = side.body_limit;
        let mut event = None;
        let mut truncated = side.body_len > limit as u64;
        if let Some(mut d) = side.decoder.take() {
            event = d.feed(&[], &mut side.body, limit, bomb, true);
            truncated = d.full();
        }
        let body = std::mem::take(&mut side.body);
        let body_len = side.body_len;
        let body_file = BodyFile {
            gap_bytes: side.gap_bytes,
            truncated,
            closed,
        };
        let trailers = std::mem::take(&mut side.trailers);
        side.mode = Mode::Head;
        side.buf.clear();
        side.line_start = 0;
        if let Some(e) = event {
            ev(out, e, dir, Some(tx));
        }
        let max = self.cfg.max_headers;
        if let Some(p) = self.pending(tx) {
            match dir {
                Direction::ToServer => {
                    if let Some(r) = p.tx.request.as_mut() {
                        r.body = body;
                        r.body_len = body_len;
                        r.body_file = body_file;
                        for (n, v) in trailers {
                            let _ = add_header(&mut r.headers, &n, v, max);
                        }
                    }
                }
                Direction::ToClient => {
                    if let Some(r) = p.tx.response.as_mut() {
                        r.body = body;
                        r.body_len = body_len;
                        r.body_file = body_file;
                        for (n, v) in trailers {
                            let _ = add_header(&mut r.headers, &n, v, max);
                        }
                    }
                }
            }
        }
        match dir {
            Direction::ToServer => {
                self.complete_request(tx);
                self.emit_ready(out);
            }
            Direction::ToClient => self.complete_response(tx, out),
        }
    }

    /// Takes one line (up to LF) of a chunked body into `buf`; returns bytes consumed and
    /// whether the line is complete.
    fn take_line(&mut self, dir: Direction, rest: &[u8]) -> (usize, bool, bool) {
        let max = self.cfg.max_line_len;
        let side = self.side(dir);
        let (n, done) = match memchr::memchr(b'\n', rest) {
            Some(p) => (p + 1, true),
            None => (rest.len(), false),
        };
        let room = max.saturating_sub(side.buf.len());
        let too_long = n > room;
        side.buf
            .extend_from_slice(rest.get(..n.min(room)).unwrap_or_default());
        (n, done, too_long)
    }

    fn body_step(&mut self, dir: Direction, b: Body, rest: &[u8], out: &mut AppOutput) -> usize {
        let req = dir == Direction::ToServer;
        match b {
            Body::Length(rem) => {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(rest.len());
                self.body_data(dir, rest.get(..n).unwrap_or_default(), out);
                let left = rem.saturating_sub(n as u64);
                if left == 0 {
                    self.end_body(dir, true, out);
                } else {
                    self.side(dir).mode = Mode::Body(Body::Length(left));
                }
                n
            }
            Body::UntilClose => {
                self.body_data(dir, rest, out);
                rest.len()
            }
            Body::ChunkData(rem) => {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(rest.len());
                self.body_data(dir, rest.get(..n).unwrap_or_default(), out);
                let left = rem.saturating_sub(n as u64);
                self.side(dir).mode = Mode::Body(if left == 0 {
                    Body::ChunkEnd
                } else {
                    Body::ChunkData(left)
                });
                n
            }
            Body::ChunkEnd => {
                // The CRLF after chunk data; anything else on that line is tolerated.
                let (n, done, _) = self.take_line(dir, rest);
                if done {
                    let side = self.side(dir);
                    side.buf.clear();
                    side.mode = Mode::Body(Body::ChunkSize);
                }
                n
            }
            Body::ChunkSize => {
                let (n, done, too_long) = self.take_line(dir, rest);
                let tx = self.side(dir).tx;
                let bad = if req {
                    "INVALID_REQUEST_CHUNK_LEN"
                } else {
                    "INVALID_RESPONSE_CHUNK_LEN"
                };
                if too_long {
                    ev(out, bad, dir, Some(tx));
                    self.chunk_fallback(dir, out);
                    return n;
                }
                if !done {
                    // A line that cannot become a chunk size is not waited for: a body sent
                    // without the chunking its header announced is read as it comes.
                    if !chunk_size_plausible(&self.side(dir).buf) {
                        ev(out, bad, dir, Some(tx));
                        self.chunk_fallback(dir, out);
                    }
                    return n;
                }
                let side = self.side(dir);
                let line = trim(strip_cr(side.buf.strip_suffix(b"\n").unwrap_or(&side.buf)));
                if line.is_empty() {
                    // Tolerate blank lines before a chunk size.
                    side.buf.clear();
                    return n;
                }
                let (size_part, ext) = match line.iter().position(|&c| c == b';') {
                    Some(p) => (trim(line.get(..p).unwrap_or_default()), true),
                    None => (line, false),
                };
                let size = if size_part.is_empty() || size_part.len() > 15 {
                    None
                } else {
                    size_part.iter().try_fold(0u64, |acc, &c| {
                        acc.checked_mul(16)?.checked_add(u64::from(hex_val(c)?))
                    })
                };
                if size.is_some() {
                    side.buf.clear();
                }
                if ext && !side.chunk_ext_seen {
                    side.chunk_ext_seen = true;
                    ev(
                        out,
                        if req {
                            "REQUEST_CHUNK_EXTENSION"
                        } else {
                            "RESPONSE_CHUNK_EXTENSION"
                        },
                        dir,
                        Some(tx),
                    );
                }
                match size {
                    Some(0) => self.side(dir).mode = Mode::Body(Body::Trailer),
                    Some(s) => self.side(dir).mode = Mode::Body(Body::ChunkData(s)),
                    None => {
                        ev(out, bad, dir, Some(tx));
                        self.chunk_fallback(dir, out);
                    }
                }
                n
            }
            Body::Trailer => {
                let (n, done, too_long) = self.take_line(dir, rest);
                if too_long {
                    let tx = self.side(dir).tx;
                    ev(
                        out,
                        if req {
                            "REQUEST_FIELD_TOO_LONG"
                        } else {
                            "RESPONSE_FIELD_TOO_LONG"
                        },
                        dir,
                        Some(tx),
                    );
                    self.end_body(dir, false, out);
                    self.give_up(dir);
                    return n;
                }
                if !done {
                    return n;
                }
                let max = self.cfg.max_headers;
                let side = self.side(dir);
                let line = strip_cr(side.buf.strip_suffix(b"\n").unwrap_or(&side.buf));
                if line.is_empty() {
                    self.end_body(dir, true, out);
                } else {
                    let line = line.to_vec();
                    side.buf.clear();
                    let trailers = &mut side.trailers;
                    for_each_header(std::iter::once(line.as_slice()), false, |name, value, _| {
                        let _ = add_header(trailers, name, value, max);
                    });
                }
                n
            }
        }
    }

    /// A broken chunk size: requests cannot be resynchronised; a response's remaining bytes are
    /// taken as body until the connection closes (what clients do).
    fn chunk_fallback(&mut self, dir: Direction, out: &mut AppOutput) {
        match dir {
            Direction::ToServer => {
                self.end_body(dir, false, out);
                self.give_up(dir);
            }
            Direction::ToClient => {
                // libhtp re-reads the offending line as the start of an identity body.
                let side = self.side(dir);
                let line = std::mem::take(&mut side.buf);
                side.mode = Mode::Body(Body::UntilClose);
                self.body_data(dir, &line, out);
                let side = self.side(dir);
                side.buf = line;
                side.buf.clear();
            }
        }
    }
}

/// Whether an unfinished chunk-size line can still become one: optional whitespace, hex
/// digits, then whitespace, `;` (an extension) or the line end.
fn chunk_size_plausible(line: &[u8]) -> bool {
    let t = line
        .iter()
        .position(|&b| !b.is_ascii_whitespace())
        .map_or(&[][..], |p| line.get(p..).unwrap_or_default());
    let hex = t.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex > 16 {
        return false;
    }
    let rest = t.get(hex..).unwrap_or_default();
    let after_ws = rest.iter().find(|&&b| b != b' ' && b != b'\t');
    match after_ws {
        None => true,
        Some(&b) => hex > 0 && (b == b';' || b == b'\r' || b == b'\n'),
    }
}

/// `a` equals `b` ignoring case and NUL bytes (libhtp's `cmp_nocase_nozero`, so `gz\0ip` is
/// gzip to it, and to the clients it models).
fn eq_nocase_nozero(a: &[u8], b: &[u8]) -> bool {
    a.iter()
        .filter(|&&c| c != 0)
        .map(u8::to_ascii_lowercase)
        .eq(b.iter().map(u8::to_ascii_lowercase))
}

/// The decoding layers a Content-Encoding value asks for, in decoding order, following
/// libhtp: a single known coding is the fast path; anything else is split on `,` and ` `
/// (empty pieces count as layers too), every piece containing "gzip" or "deflate" is that
/// coding (`ABNORMAL_CE_HEADER` unless spelt exactly), and the codings are undone last-applied
/// first. More than `limit` pieces (0: no limit) raise `TOO_MANY_ENCODING_LAYERS` and the
/// rest are not decoded. `slow`: whether to take the slow path at all.
fn content_encodings(
    v: Option<&[u8]>,
    limit: usize,
    slow: bool,
    mut warn: impl FnMut(&'static str),
) -> Vec<Enc> {
    let Some(v) = v.map(trim) else {
        return Vec::new();
    };
    if eq_nocase_nozero(v, b"gzip") || eq_nocase_nozero(v, b"x-gzip") {
        return vec![Enc::Gzip];
    }
    if eq_nocase_nozero(v, b"deflate") || eq_nocase_nozero(v, b"x-deflate") {
        return vec![Enc::Deflate];
    }
    if !slow || eq_nocase_nozero(v, b"inflate") {
        return Vec::new();
    }
    let limit = if limit == 0 { usize::MAX } else { limit };
    let mut layers = Vec::new();
    for (n, piece) in v.split(|&b| b == b',' || b == b' ').enumerate() {
        if n >= limit {
            warn("TOO_MANY_ENCODING_LAYERS");
            break;
        }
        let enc = if contains_ci(piece, b"gzip") {
            if piece != b"gzip" && piece != b"x-gzip" {
                warn("ABNORMAL_CE_HEADER");
            }
            Some(Enc::Gzip)
        } else if contains_ci(piece, b"deflate") {
            if piece != b"deflate" && piece != b"x-deflate" {
                warn("ABNORMAL_CE_HEADER");
            }
            Some(Enc::Deflate)
        } else {
            if piece != b"inflate" && piece != b"lzma" {
                warn("ABNORMAL_CE_HEADER");
            }
            None
        };
        layers.extend(enc);
    }
    layers.reverse();
    layers
}

impl AppParser for HttpParser {
    fn parse(&mut self, dir: Direction, data: &[u8], _ts_ns: u64, out: &mut AppOutput) {
        self.parse_dir(dir, data, out);
    }

    fn gap(&mut self, dir: Direction, len: u64, out: &mut AppOutput) {
        if len == 0 {
            return;
        }
        let side = self.side(dir);
        let tx = side.tx;
        match side.mode {
            Mode::Dead | Mode::Tunnel => {}
            Mode::Body(b) => {
                side.body_len = side.body_len.saturating_add(len);
                let lost = match b {
                    Body::Length(rem) | Body::ChunkData(rem) => len.min(rem),
                    _ => len,
                };
                side.gap_bytes = side.gap_bytes.saturating_add(lost);
                // Decompression cannot continue across lost bytes.
                if let Some(d) = side.decoder.as_mut() {
                    d.stop();
                }
                match b {
                    Body::UntilClose => {}
                    Body::Length(rem) | Body::ChunkData(rem) if len <= rem => {
                        let left = rem - len;
                        side.mode = Mode::Body(match (b, left) {
                            (Body::Length(_), 0) => {
                                self.end_body(dir, true, out);
                                return;
                            }
                            (Body::Length(_), l) => Body::Length(l),
                            (_, 0) => Body::ChunkEnd,
                            (_, l) => Body::ChunkData(l),
                        });
                    }
                    Body::Length(_) | Body::ChunkData(_) => {
                        // The loss runs past the body: the next data should start a new message;
                        // `resync` checks that it does.
                        self.end_body(dir, false, out);
                        self.side(dir).resync = true;
                    }
                    _ => {
                        ev(out, "UNKNOWN_ERROR", dir, Some(tx));
                        self.end_body(dir, false, out);
                        self.give_up(dir);
                    }
                }
            }
            Mode::Head | Mode::WaitConnect => {
                let tx = match dir {
                    Direction::ToServer => None,
                    Direction::ToClient => {
                        (self.next_resp_tx < self.next_tx_id).then_some(self.next_resp_tx)
                    }
                };
                ev(out, "UNKNOWN_ERROR", dir, tx);
                self.give_up(dir);
            }
        }
    }

    fn end_of_stream(&mut self, dir: Direction, _ts_ns: u64, out: &mut AppOutput) {
        if let Mode::Body(b) = self.side(dir).mode {
            self.end_body(dir, b == Body::UntilClose, out);
        }
        let side = self.side(dir);
        if side.mode != Mode::Tunnel {
            side.mode = Mode::Dead;
            side.buf = Vec::new();
        }
        if dir == Direction::ToServer {
            // Requests still being received will not finish.
            for p in self.txs.iter_mut() {
                p.req_done = true;
            }
            self.emit_ready(out);
        }
    }

    fn finish(&mut self, _ts_ns: u64, out: &mut AppOutput) {
        for dir in [Direction::ToServer, Direction::ToClient] {
            if let Mode::Body(b) = self.side(dir).mode {
                self.end_body(dir, b == Body::UntilClose, out);
            }
        }
        while let Some(p) = self.txs.pop_front() {
            out.records.push(AppRecord::Http(std::sync::Arc::new(p.tx)));
        }
        self.req.mode = Mode::Dead;
        self.resp.mode = Mode::Dead;
    }

    fn is_done(&self) -> bool {
        self.tunnel
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
