//! Certificate credentials: the certificates an app registers, and the client assertions (JWTs
//! signed with a registered certificate's key) that stand in for a client secret, as Entra
//! checks them.
//!
//! An assertion names its certificate by thumbprint in its header, `x5t` (SHA-1) or `x5t#S256`
//! (SHA-256). Clients spell the same thumbprint in several ways (MSAL Python writes base64url
//! with `=` padding, others without, some hex), so every spelling is decoded to the digest's
//! bytes before it is compared.
//!
//! Validity times are checked against the system's time, not dmsync's Clock: a real client
//! dates its assertion by its own wall clock, and an advanced Clock would otherwise refuse every
//! fresh assertion.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::Digest;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use dmsync_core::identity::AppCertificate;

/// The assertion type Entra accepts in `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far a client's clock may be from ours, either way.
const CLOCK_SKEW_SECONDS: i64 = 300;

/// The longest an assertion may be valid: the libraries make them valid for ten minutes, and
/// every assertion is remembered until it expires, so a long-lived one is refused.
pub const MAX_ASSERTION_LIFETIME_SECONDS: i64 = 3600;

/// The longest `jti` kept: the libraries send a GUID.
const MAX_JTI_CHARS: usize = 256;

/// The largest certificate PEM the admin API takes; a real certificate is one or two kilobytes.
pub const MAX_CERTIFICATE_PEM_BYTES: usize = 16 * 1024;

/// Why a certificate cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateRefusal {
    TooLarge,
    /// Not a PEM `CERTIFICATE`, or not an X.509 certificate inside.
    NotACertificate,
    /// A certificate whose key is not RSA: Entra's assertions are RS256 or PS256.
    NotRsa,
}

/// Parses a PEM certificate into what an app keeps of it.
pub fn certificate_from_pem(pem: &str) -> Result<AppCertificate, CertificateRefusal> {
    if pem.len() > MAX_CERTIFICATE_PEM_BYTES {
        return Err(CertificateRefusal::TooLarge);
    }
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| CertificateRefusal::NotACertificate)?;
    if block.label != "CERTIFICATE" {
        return Err(CertificateRefusal::NotACertificate);
    }
    let (_, cert) = X509Certificate::from_der(&block.contents).map_err(|_| CertificateRefusal::NotACertificate)?;
    if !matches!(cert.public_key().parsed(), Ok(PublicKey::RSA(_))) {
        return Err(CertificateRefusal::NotRsa);
    }
    let validity = cert.validity();
    Ok(AppCertificate {
        thumbprint_sha1: upper_hex(&<sha1::Sha1 as sha1::Digest>::digest(&block.contents)),
        thumbprint_sha256: upper_hex(&sha2::Sha256::digest(&block.contents)),
        certificate_pem: pem.trim().to_owned(),
        not_before: validity.not_before.to_datetime(),
        not_after: validity.not_after.to_datetime(),
    })
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The bytes of a thumbprint in any spelling a client uses: hex (either case), or base64url or
/// base64, with or without padding. `None` when it is none of them.
pub fn thumbprint_bytes(spelling: &str) -> Option<Vec<u8>> {
    let spelling = spelling.trim();
    let is_hex = matches!(spelling.len(), 40 | 64) && spelling.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        return (0..spelling.len()).step_by(2).map(|i| u8::from_str_radix(&spelling[i..i + 2], 16).ok()).collect();
    }
    let unpadded = spelling.trim_end_matches('=');
    URL_SAFE_NO_PAD.decode(unpadded).ok().or_else(|| {
        let standard: String = unpadded.chars().collect();
        let padding = (4 - standard.len() % 4) % 4;
        STANDARD.decode(format!("{standard}{}", "=".repeat(padding))).ok()
    })
}

/// What an accepted assertion leaves to remember: its id and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedAssertion {
    pub jti: String,
    pub expires_at: OffsetDateTime,
}

/// Why an assertion is refused; the token endpoint maps each to Entra's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionRefusal {
    /// Not a JWT, an algorithm other than RS256 or PS256, no thumbprint, or a missing claim.
    Malformed(&'static str),
    /// No certificate of the app has the thumbprint the header names (as the client spelled it).
    UnknownCertificate(String),
    /// The certificate named is registered, but its key did not sign the assertion.
    BadSignature,
    /// `iss` or `sub` is not the client id.
    WrongClient,
    /// `aud` is not this tenant's token endpoint.
    WrongAudience,
    /// Expired, not yet valid, valid for too long, or signed by an expired certificate.
    OutsideValidity,
}

/// An assertion's claims. Its times are NumericDates, which may have a fraction (MSAL Python
/// writes `time.time()` as it is), so they are read as floating point and floored.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: Option<String>,
}

/// A NumericDate in whole seconds (`as` saturates, so no value overflows).
fn seconds(date: Option<f64>) -> Option<i64> {
    date.filter(|d| d.is_finite()).map(|d| d.floor() as i64)
}

/// Checks a client assertion: signed by one of `certificates`, issued by and about `client_id`,
/// for an audience `audience_ok` accepts, and valid at `now`. Whether it was used before is
/// the store's to say, with the returned id.
pub fn verify_assertion(
    assertion: &str,
    client_id: &str,
    certificates: &[AppCertificate],
    audience_ok: impl Fn(&str) -> bool,
    now: OffsetDateTime,
) -> Result<AcceptedAssertion, AssertionRefusal> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionRefusal::Malformed("not a JWT"))?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256) {
        return Err(AssertionRefusal::Malformed("the algorithm must be RS256 or PS256"));
    }
    let named = header
        .x5t_s256
        .as_deref()
        .map(|t| (t, true))
        .or(header.x5t.as_deref().map(|t| (t, false)))
        .ok_or(AssertionRefusal::Malformed("the header names no certificate (x5t or x5t#S256)"))?;
    let (spelling, sha256) = named;
    let wanted = thumbprint_bytes(spelling).ok_or_else(|| AssertionRefusal::UnknownCertificate(spelling.to_owned()))?;
    let certificate = certificates
        .iter()
        .find(|c| {
            let registered = if sha256 { &c.thumbprint_sha256 } else { &c.thumbprint_sha1 };
            thumbprint_bytes(registered).is_some_and(|r| r == wanted)
        })
        .ok_or_else(|| AssertionRefusal::UnknownCertificate(spelling.to_owned()))?;
    let key = decoding_key(certificate).ok_or(AssertionRefusal::BadSignature)?;

    // The signature first, with every claim check of the library off: each claim is checked
    // below, so that each refusal gets Entra's own answer.
    let mut validation = Validation::new(header.alg);
    validation.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => AssertionRefusal::BadSignature,
            _ => AssertionRefusal::Malformed("the claims are not readable"),
        })?
        .claims;

    if claims.iss.as_deref() != Some(client_id) || claims.sub.as_deref() != Some(client_id) {
        return Err(AssertionRefusal::WrongClient);
    }
    let audience_matches = match &claims.aud {
        Some(serde_json::Value::String(aud)) => audience_ok(aud),
        Some(serde_json::Value::Array(auds)) => auds.iter().filter_map(|a| a.as_str()).any(&audience_ok),
        _ => false,
    };
    if !audience_matches {
        return Err(AssertionRefusal::WrongAudience);
    }
    let exp = seconds(claims.exp).ok_or(AssertionRefusal::Malformed("the assertion has no exp"))?;
    let jti = claims.jti.filter(|j| !j.is_empty() && j.len() <= MAX_JTI_CHARS);
    let jti = jti.ok_or(AssertionRefusal::Malformed("the assertion has no jti"))?;
    let now_s = now.unix_timestamp();
    let start = seconds(claims.nbf).or(seconds(claims.iat)).unwrap_or(now_s);
    let in_window = exp + CLOCK_SKEW_SECONDS > now_s
        && start - CLOCK_SKEW_SECONDS <= now_s
        && exp.saturating_sub(start) <= MAX_ASSERTION_LIFETIME_SECONDS
        && now <= certificate.not_after;
    if !in_window {
        return Err(AssertionRefusal::OutsideValidity);
    }
    let expires_at = OffsetDateTime::from_unix_timestamp(exp.saturating_add(CLOCK_SKEW_SECONDS))
        .map_err(|_| AssertionRefusal::OutsideValidity)?;
    Ok(AcceptedAssertion { jti, expires_at })
}

/// The RSA public key of a registered certificate.
fn decoding_key(certificate: &AppCertificate) -> Option<DecodingKey> {
    let (_, block) = x509_parser::pem::parse_x509_pem(certificate.certificate_pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&block.contents).ok()?;
    match cert.public_key().parsed().ok()? {
        PublicKey::RSA(rsa) => Some(DecodingKey::from_rsa_raw_components(rsa.modulus, rsa.exponent)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const CLIENT: &str = "55555555-5555-4555-8555-555555555555";
    const AUDIENCE: &str = "https://login.microsoftonline.com/t/oauth2/v2.0/token";

    /// A self-signed RSA certificate and its key, as a user makes one for an app.
    fn certificate() -> (AppCertificate, EncodingKey) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
        let cert = rcgen::CertificateParams::new(vec!["dmsync-test".into()]).unwrap().self_signed(&key).unwrap();
        let registered = certificate_from_pem(&cert.pem()).expect("a certificate");
        (registered, EncodingKey::from_rsa_pem(key.serialize_pem().as_bytes()).unwrap())
    }

    fn sign(key: &EncodingKey, header: Header, claims: serde_json::Value) -> String {
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    /// The claims MSAL Python writes: its times have a fraction.
    fn claims(now: i64) -> serde_json::Value {
        let (iat, exp) = (now as f64 + 0.25, now as f64 + 600.25);
        json!({"iss": CLIENT, "sub": CLIENT, "aud": AUDIENCE, "iat": iat, "nbf": iat, "exp": exp, "jti": "a"})
    }

    #[test]
    fn every_spelling_of_a_thumbprint_is_the_same_thumbprint() {
        let bytes: Vec<u8> = (0u8..20).map(|b| b.wrapping_mul(37)).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        for spelling in [
            hex.clone(),
            hex.to_uppercase(),
            URL_SAFE_NO_PAD.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            STANDARD.encode(&bytes),
        ] {
            assert_eq!(thumbprint_bytes(&spelling).as_deref(), Some(bytes.as_slice()), "{spelling}");
        }
        assert_eq!(thumbprint_bytes("not a thumbprint!"), None);
    }

    #[test]
    fn an_assertion_signed_by_a_registered_certificate_is_accepted_by_either_thumbprint() {
        let (cert, key) = certificate();
        let now = OffsetDateTime::now_utc();
        let sha1 = thumbprint_bytes(&cert.thumbprint_sha1).unwrap();
        let sha256 = thumbprint_bytes(&cert.thumbprint_sha256).unwrap();
        for (alg, x5t, x5t_s256) in [
            (Algorithm::RS256, Some(base64::engine::general_purpose::URL_SAFE.encode(&sha1)), None),
            (Algorithm::PS256, None, Some(URL_SAFE_NO_PAD.encode(&sha256))),
        ] {
            let mut header = Header::new(alg);
            header.x5t = x5t;
            header.x5t_s256 = x5t_s256;
            let assertion = sign(&key, header, claims(now.unix_timestamp()));
            let accepted = verify_assertion(&assertion, CLIENT, std::slice::from_ref(&cert), |a| a == AUDIENCE, now);
            assert_eq!(accepted.unwrap().jti, "a");
        }
    }

    #[test]
    fn assertions_are_refused_for_each_reason() {
        let (cert, key) = certificate();
        let (_, other_key) = certificate();
        let now = OffsetDateTime::now_utc();
        let t = now.unix_timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.x5t = Some(cert.thumbprint_sha1.clone());
        let check = |assertion: &str| {
            verify_assertion(assertion, CLIENT, std::slice::from_ref(&cert), |a| a == AUDIENCE, now).unwrap_err()
        };
        assert_eq!(check(&sign(&other_key, header.clone(), claims(t))), AssertionRefusal::BadSignature);
        let mut wrong = claims(t);
        wrong["iss"] = json!("someone else");
        assert_eq!(check(&sign(&key, header.clone(), wrong)), AssertionRefusal::WrongClient);
        let mut wrong = claims(t);
        wrong["aud"] = json!("https://elsewhere/token");
        assert_eq!(check(&sign(&key, header.clone(), wrong)), AssertionRefusal::WrongAudience);
        assert_eq!(check(&sign(&key, header.clone(), claims(t - 3600))), AssertionRefusal::OutsideValidity);
        let mut long = claims(t);
        long["exp"] = json!(t + 2 * MAX_ASSERTION_LIFETIME_SECONDS);
        assert_eq!(check(&sign(&key, header.clone(), long)), AssertionRefusal::OutsideValidity);
        let mut no_jti = claims(t);
        no_jti.as_object_mut().unwrap().remove("jti");
        assert!(matches!(check(&sign(&key, header.clone(), no_jti)), AssertionRefusal::Malformed(_)));
        let mut unknown = header.clone();
        unknown.x5t = Some("AAAA".into());
        assert_eq!(check(&sign(&key, unknown, claims(t))), AssertionRefusal::UnknownCertificate("AAAA".into()));
        assert!(matches!(check("not.a.jwt"), AssertionRefusal::Malformed(_)));
        let hs = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(t), &EncodingKey::from_secret(b"k"));
        assert!(matches!(check(&hs.unwrap()), AssertionRefusal::Malformed(_)));
    }

    #[test]
    fn only_rsa_certificates_are_registered() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ec".into()]).unwrap().self_signed(&key).unwrap();
        assert_eq!(certificate_from_pem(&cert.pem()), Err(CertificateRefusal::NotRsa));
        assert_eq!(certificate_from_pem("garbage"), Err(CertificateRefusal::NotACertificate));
        assert_eq!(certificate_from_pem(&key.serialize_pem()), Err(CertificateRefusal::NotACertificate));
        assert_eq!(certificate_from_pem(&"A".repeat(MAX_CERTIFICATE_PEM_BYTES + 1)), Err(CertificateRefusal::TooLarge));
    }
}
