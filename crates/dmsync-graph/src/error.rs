//! Graph's error bodies: the OData error envelope, and Intune's JSON-in-message variant.

use serde::{Deserialize, Serialize};

/// `{"error":{"code","message","innerError":{…}}}`, the body of every Graph error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct GraphErrorBody {
    pub error: MainError,
}

impl GraphErrorBody {
    /// The body as JSON, byte for byte what `serde_json::to_vec` makes of it (a test holds it
    /// there), written by hand with [`crate::json::push_str`]: serde_json's byte-at-a-time
    /// escaping of the message was the largest single cost of a rejected sync.
    pub fn to_json(&self) -> Vec<u8> {
        use crate::json::push_str;
        let e = &self.error;
        let mut out = Vec::with_capacity(160 + e.code.len() + e.message.len() * 5 / 4);
        out.extend_from_slice(b"{\"error\":{\"code\":");
        push_str(&mut out, &e.code);
        out.extend_from_slice(b",\"message\":");
        push_str(&mut out, &e.message);
        if !e.details.is_empty() {
            out.extend_from_slice(b",\"details\":[");
            for (i, d) in e.details.iter().enumerate() {
                out.extend_from_slice(if i == 0 { b"{\"code\":" } else { b",{\"code\":" });
                push_str(&mut out, &d.code);
                out.extend_from_slice(b",\"message\":");
                push_str(&mut out, &d.message);
                if let Some(target) = &d.target {
                    out.extend_from_slice(b",\"target\":");
                    push_str(&mut out, target);
                }
                out.push(b'}');
            }
            out.push(b']');
        }
        if let Some(inner) = &e.inner_error {
            out.extend_from_slice(b",\"innerError\":{\"date\":");
            push_str(&mut out, &inner.date);
            out.extend_from_slice(b",\"request-id\":");
            push_str(&mut out, &inner.request_id);
            out.extend_from_slice(b",\"client-request-id\":");
            push_str(&mut out, &inner.client_request_id);
            out.push(b'}');
        }
        out.extend_from_slice(b"}}");
        out
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MainError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub details: Vec<ErrorDetail>,
    /// Graph spells it with a capital E on the wire, whatever the docs table says.
    #[serde(rename = "innerError", skip_serializing_if = "Option::is_none", default)]
    #[cfg_attr(feature = "schema", schemars(with = "InnerError"))]
    pub inner_error: Option<InnerError>,
}

/// One entry of `error.details`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InnerError {
    pub date: String,
    #[serde(rename = "request-id")]
    pub request_id: String,
    #[serde(rename = "client-request-id")]
    pub client_request_id: String,
}

/// The JSON document that Intune puts, as a string, in `error.message`. Field order and the
/// CRLF-indented layout follow what Intune sends, because some scripts print it verbatim and
/// others parse `CustomApiErrorPhrase` out of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IntuneErrorMessage {
    #[serde(rename = "_version")]
    pub version: u32,
    #[serde(rename = "Message")]
    pub message: String,
    #[serde(rename = "CustomApiErrorPhrase")]
    pub custom_api_error_phrase: String,
    #[serde(rename = "RetryAfter")]
    pub retry_after: Option<u64>,
    #[serde(rename = "ErrorSourceService")]
    pub error_source_service: String,
    #[serde(rename = "HttpHeaders")]
    pub http_headers: String,
}

impl IntuneErrorMessage {
    /// Renders the message the way Intune does: .NET's indented JSON with `\r\n` line breaks.
    ///
    /// Written field by field rather than through serde's pretty printer and a `\n` → `\r\n`
    /// pass: every 429 of a retry storm renders one. The test below holds it to the serde
    /// rendering.
    pub fn to_message_string(&self) -> String {
        let mut out = Vec::with_capacity(160 + self.message.len() + self.custom_api_error_phrase.len());
        let string = |out: &mut Vec<u8>, name: &str, value: &str| {
            out.extend_from_slice(b",\r\n  \"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\": ");
            crate::json::push_str(out, value);
        };
        out.extend_from_slice(b"{\r\n  \"_version\": ");
        out.extend_from_slice(self.version.to_string().as_bytes());
        string(&mut out, "Message", &self.message);
        string(&mut out, "CustomApiErrorPhrase", &self.custom_api_error_phrase);
        out.extend_from_slice(b",\r\n  \"RetryAfter\": ");
        match self.retry_after {
            Some(seconds) => out.extend_from_slice(seconds.to_string().as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        string(&mut out, "ErrorSourceService", &self.error_source_service);
        string(&mut out, "HttpHeaders", &self.http_headers);
        out.extend_from_slice(b"\r\n}");
        String::from_utf8(out).expect("JSON text is UTF-8")
    }

    /// Parses `error.message` back, for clients and tests.
    pub fn parse(message: &str) -> Option<IntuneErrorMessage> {
        serde_json::from_str(message).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intune_message_has_dotnet_layout_and_order() {
        let m = IntuneErrorMessage {
            version: 3,
            message: "An error has occurred".into(),
            custom_api_error_phrase: "".into(),
            retry_after: None,
            error_source_service: "".into(),
            http_headers: "{}".into(),
        };
        let s = m.to_message_string();
        assert!(s.starts_with("{\r\n  \"_version\": 3,\r\n  \"Message\": \"An error has occurred\",\r\n"));
        assert!(s.contains("\"RetryAfter\": null"));
        assert!(s.ends_with("\"HttpHeaders\": \"{}\"\r\n}"));
        assert_eq!(IntuneErrorMessage::parse(&s), Some(m));
    }

    #[test]
    fn intune_message_matches_serdes_indented_rendering_with_crlf() {
        for m in [
            IntuneErrorMessage {
                version: 3,
                message: "quote \" backslash \\ newline \n tab \t unicode é \u{1}".into(),
                custom_api_error_phrase: "Phrase".into(),
                retry_after: Some(599),
                error_source_service: "Svc".into(),
                http_headers: "{\"a\":\"b\"}".into(),
            },
            IntuneErrorMessage {
                version: 12,
                message: String::new(),
                custom_api_error_phrase: String::new(),
                retry_after: None,
                error_source_service: String::new(),
                http_headers: "{}".into(),
            },
        ] {
            let reference = serde_json::to_string_pretty(&m).unwrap().replace('\n', "\r\n");
            assert_eq!(m.to_message_string(), reference);
        }
    }

    #[test]
    fn hand_written_body_is_serde_jsons() {
        let detail = |target: Option<&str>| ErrorDetail {
            code: "C\"1".into(),
            message: "line\r\n".into(),
            target: target.map(Into::into),
        };
        let inner =
            InnerError { date: "2022-08-30T17:17:03".into(), request_id: "r".into(), client_request_id: "c\\".into() };
        for (details, inner_error) in [
            (vec![], None),
            (vec![], Some(inner.clone())),
            (vec![detail(None)], None),
            (vec![detail(Some("line 2")), detail(None), detail(Some(""))], Some(inner)),
        ] {
            let body = GraphErrorBody {
                error: MainError {
                    code: "TooManyRequests".into(),
                    message: "{\r\n  \"_version\": 3\r\n}".into(),
                    details,
                    inner_error,
                },
            };
            assert_eq!(String::from_utf8(body.to_json()).unwrap(), serde_json::to_string(&body).unwrap());
        }
    }

    #[test]
    fn inner_error_is_camel_cased_with_capital_e() {
        let body = GraphErrorBody {
            error: MainError {
                code: "BadRequest".into(),
                message: "m".into(),
                details: vec![],
                inner_error: Some(InnerError {
                    date: "2022-08-30T17:17:03".into(),
                    request_id: "r".into(),
                    client_request_id: "c".into(),
                }),
            },
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["error"]["innerError"]["request-id"], "r");
        assert_eq!(v["error"]["innerError"]["client-request-id"], "c");
    }
}
