//! Test certificates made with rcgen: a CA, and leaf certificates for a loopback server and a
//! client, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// A leaf certificate and its key, PEM.
    pub fn leaf(&self, cn: &str, sans: &[&str], eku: ExtendedKeyUsagePurpose) -> (String, String) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The files of one test: a CA, a server certificate for 127.0.0.1/localhost, a client one.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn write(dir: &Path, prefix: &str, ca: &Ca) -> Pki {
        let file = |name: &str, text: &str| {
            let p = dir.join(format!("{prefix}-{name}"));
            std::fs::write(&p, text).unwrap();
            p
        };
        let (sc, sk) = ca.leaf(
            "syslog.test",
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (cc, ck) = ca.leaf("vigil-sensor", &[], ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca: file("ca.pem", &ca.issuer.pem()),
            server_cert: file("server.pem", &sc),
            server_key: file("server.key", &sk),
            client_cert: file("client.pem", &cc),
            client_key: file("client.key", &ck),
        }
    }
}
