//! What Keryu asks Twilio to send, and the Message resource Twilio answers with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The channel prefix of WhatsApp addresses (`whatsapp:+15552229999`).
const WHATSAPP_PREFIX: &str = "whatsapp:";

/// One WhatsApp message to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The recipient in E.164 (`+15552229999`); the client adds the `whatsapp:` prefix.
    pub to: String,
    /// The sender (a WhatsApp-enabled number of the account) in E.164.
    pub from: String,
    /// Free-form text, or an approved template.
    pub content: OutgoingContent,
    /// Where Twilio should post status callbacks (`sent`, `delivered`, `read`, failures);
    /// `None` leaves it to the account's configuration.
    pub status_callback: Option<String>,
}

/// The content of a message. Outside WhatsApp's 24-hour customer-service window only a
/// template may be sent; free-form text then fails asynchronously with 63016.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingContent {
    /// Free-form text (`Body`, at most 1600 characters).
    Body(String),
    /// A Content API template (`ContentSid` + `ContentVariables`), sent without a `Body`.
    Template {
        /// The template's SID, `HX` + 32 hex.
        content_sid: String,
        /// Values of its placeholders by key (`"1"` for `{{1}}`); unset ones fall back to the
        /// template's defaults.
        variables: BTreeMap<String, String>,
    },
}

impl OutgoingMessage {
    /// The form fields of the create request, in Twilio's PascalCase names.
    pub(crate) fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("To", channel_address(&self.to)),
            ("From", channel_address(&self.from)),
        ];
        match &self.content {
            OutgoingContent::Body(body) => form.push(("Body", body.clone())),
            OutgoingContent::Template {
                content_sid,
                variables,
            } => {
                form.push(("ContentSid", content_sid.clone()));
                // Twilio refuses an empty `{}` (21656); no variables means template defaults.
                if !variables.is_empty() {
                    let object: serde_json::Map<String, serde_json::Value> = variables
                        .iter()
                        .map(|(key, value)| (key.clone(), serde_json::Value::from(value.as_str())))
                        .collect();
                    form.push((
                        "ContentVariables",
                        serde_json::Value::Object(object).to_string(),
                    ));
                }
            }
        }
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url.clone()));
        }
        form
    }
}

/// The WhatsApp channel address of an E.164 number (`whatsapp:+1555…`); an address that
/// already carries the prefix is returned unchanged.
pub fn channel_address(number: &str) -> String {
    if number.starts_with(WHATSAPP_PREFIX) {
        number.to_owned()
    } else {
        format!("{WHATSAPP_PREFIX}{number}")
    }
}

/// Twilio's Message resource (API 2010-04-01), as answered by create and fetch.
///
/// Every field but `sid` and `status` is nullable in Twilio's spec and kept optional here;
/// fields Twilio adds later are ignored. Dates stay in Twilio's RFC 2822 form
/// (`Thu, 24 Aug 2023 05:01:45 +0000`) because Keryu records its own times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageResource {
    /// `SM` + 32 hex (`MM…` for media messages): the id callbacks refer to.
    pub sid: String,
    /// `queued` right after a create; then `sending`, `sent`, `delivered`, `read`, or
    /// `failed`/`undelivered`. Kept as text so a status Twilio adds does not break parsing.
    pub status: String,
    /// Twilio's error code once the message failed or was undelivered.
    #[serde(default)]
    pub error_code: Option<i64>,
    /// Twilio's description of `error_code`.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The recipient address as Twilio stored it (`whatsapp:+…`).
    #[serde(default)]
    pub to: Option<String>,
    /// The sender address (`whatsapp:+…`); null when a Messaging Service picks it later.
    #[serde(default)]
    pub from: Option<String>,
    /// The text (for templates, as rendered by Twilio).
    #[serde(default)]
    pub body: Option<String>,
    /// The account that owns the message.
    #[serde(default)]
    pub account_sid: Option<String>,
    /// The Messaging Service that sent it, if any.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// `outbound-api` for messages created through this API.
    #[serde(default)]
    pub direction: Option<String>,
    /// Number of segments, as a string (Twilio's type).
    #[serde(default)]
    pub num_segments: Option<String>,
    /// Number of media attachments, as a string (Twilio's type).
    #[serde(default)]
    pub num_media: Option<String>,
    /// The price once billed (a decimal string, usually negative).
    #[serde(default)]
    pub price: Option<String>,
    /// The currency of `price`.
    #[serde(default)]
    pub price_unit: Option<String>,
    /// Always `2010-04-01`.
    #[serde(default)]
    pub api_version: Option<String>,
    /// When Twilio created the resource (RFC 2822).
    #[serde(default)]
    pub date_created: Option<String>,
    /// When Twilio last changed it (RFC 2822).
    #[serde(default)]
    pub date_updated: Option<String>,
    /// When Twilio handed it to the channel (RFC 2822); null until sent.
    #[serde(default)]
    pub date_sent: Option<String>,
    /// The resource's path, relative to the API base.
    #[serde(default)]
    pub uri: Option<String>,
    /// Paths of related resources (`media`).
    #[serde(default)]
    pub subresource_uris: Option<BTreeMap<String, String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_message_is_posted_with_whatsapp_addresses() {
        let message = OutgoingMessage {
            to: "+15552229999".to_owned(),
            from: "whatsapp:+14155238886".to_owned(),
            content: OutgoingContent::Body("Hello".to_owned()),
            status_callback: Some("https://keryu.example/webhooks/twilio/status".to_owned()),
        };
        assert_eq!(
            message.form(),
            vec![
                ("To", "whatsapp:+15552229999".to_owned()),
                ("From", "whatsapp:+14155238886".to_owned()),
                ("Body", "Hello".to_owned()),
                (
                    "StatusCallback",
                    "https://keryu.example/webhooks/twilio/status".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_template_is_posted_as_content_sid_and_json_variables_without_body() {
        let variables = BTreeMap::from([
            ("2".to_owned(), "14:00".to_owned()),
            ("1".to_owned(), "Ana \"A\"".to_owned()),
        ]);
        let message = OutgoingMessage {
            to: "+15552229999".to_owned(),
            from: "+14155238886".to_owned(),
            content: OutgoingContent::Template {
                content_sid: "HX0123456789abcdef0123456789abcdef".to_owned(),
                variables,
            },
            status_callback: None,
        };
        let form = message.form();
        assert!(form.iter().all(|(name, _)| *name != "Body"));
        assert!(form.contains(&(
            "ContentSid",
            "HX0123456789abcdef0123456789abcdef".to_owned()
        )));
        assert!(form.contains(&(
            "ContentVariables",
            r#"{"1":"Ana \"A\"","2":"14:00"}"#.to_owned()
        )));

        let without_variables = OutgoingMessage {
            content: OutgoingContent::Template {
                content_sid: "HX0123456789abcdef0123456789abcdef".to_owned(),
                variables: BTreeMap::new(),
            },
            ..message
        };
        assert!(
            without_variables
                .form()
                .iter()
                .all(|(name, _)| *name != "ContentVariables")
        );
    }

    /// The create example of Twilio's OpenAPI document, verbatim.
    #[test]
    fn parses_the_message_resource_of_twilios_spec() {
        let json = r#"{
            "account_sid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "api_version": "2010-04-01",
            "body": "Hello! \ud83d\udc4d",
            "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
            "date_sent": "Thu, 24 Aug 2023 05:01:45 +0000",
            "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
            "direction": "outbound-api",
            "error_code": null,
            "error_message": null,
            "from": "+14155552345",
            "num_media": "0",
            "num_segments": "1",
            "price": null,
            "price_unit": null,
            "messaging_service_sid": "MGaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sid": "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "status": "queued",
            "subresource_uris": {
                "media": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Media.json"
            },
            "to": "+14155552345",
            "uri": "/2010-04-01/Accounts/ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/Messages/SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.json"
        }"#;
        let message: MessageResource = serde_json::from_str(json).expect("the spec's example");
        assert_eq!(message.sid, "SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(message.status, "queued");
        assert_eq!(message.error_code, None);
        assert_eq!(message.body.as_deref(), Some("Hello! 👍"));
        assert_eq!(message.num_segments.as_deref(), Some("1"));

        let failed: MessageResource = serde_json::from_str(
            r#"{"sid":"SMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"failed","error_code":63016,
                "error_message":"outside the window","unknown_new_field":true}"#,
        )
        .expect("a sparse resource");
        assert_eq!(failed.error_code, Some(63016));
        assert_eq!(failed.to, None);
    }
}
