//! `X-Twilio-Signature`: how Twilio proves that a webhook (a status callback) came from Twilio.
//!
//! Twilio signs every webhook with the account's Auth Token:
//! `base64(HMAC-SHA1(auth_token, url + params))`, where `url` is the exact URL it requested and
//! `params` are the posted form fields, distinct names in code-point order, each name's distinct
//! values in order, concatenated as `name + value` with no separators. This module is the one
//! place Keryu computes it: the Twilio simulator [`sign`]s the callbacks it posts and the
//! command API [`verify`]s them, so both sides agree by construction and the test vectors of
//! Twilio's own SDKs pin the algorithm.
//!
//! Accepting an unsigned callback would let anyone mark a notification delivered or failed
//! (the original Keryu did); a receiver must run [`verify`] over *every* posted field, because
//! Twilio adds fields without notice.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// The HTTP header carrying the signature.
pub const HEADER: &str = "X-Twilio-Signature";

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio would send for a request to `url` posting the form fields `params`:
/// `base64(HMAC-SHA1(auth_token, url + sorted params))`.
///
/// `url` is used exactly as given (scheme, host, port, path and query); `params` hold the
/// decoded names and values in any order, repeated names allowed.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let tag = keyed(auth_token, &signed_data(url, params))
        .finalize()
        .into_bytes();
    STANDARD.encode(tag)
}

/// Whether `signature` is Twilio's signature of a request to `url` posting `params`.
///
/// The comparison runs in constant time. Like Twilio's SDKs it tolerates a proxy that added or
/// removed the port: the signature is accepted over `url` with its port stripped, or with the
/// scheme's default port (`:443`, `:80`) added when `url` names none. A signature that is not
/// base64 of the right length never verifies.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let Ok(tag) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    let [without_port, with_port] = port_variants(url);
    // Both variants are always checked so the time taken does not depend on which one matched.
    let matches_without = keyed(auth_token, &signed_data(&without_port, params))
        .verify_slice(&tag)
        .is_ok();
    let matches_with = keyed(auth_token, &signed_data(&with_port, params))
        .verify_slice(&tag)
        .is_ok();
    matches_without | matches_with
}

/// The string Twilio signs: the URL followed by `name + value` for each distinct pair, sorted by
/// name and then value (sorting the pairs does both at once; `str` orders by code point).
fn signed_data(url: &str, params: &[(String, String)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let capacity = url.len()
        + pairs
            .iter()
            .map(|(name, value)| name.len() + value.len())
            .sum::<usize>();
    let mut data = String::with_capacity(capacity);
    data.push_str(url);
    for (name, value) in pairs {
        data.push_str(name);
        data.push_str(value);
    }
    data
}

fn keyed(auth_token: &str, data: &str) -> HmacSha1 {
    // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
    let mut mac =
        HmacSha1::new_from_slice(auth_token.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(data.as_bytes());
    mac
}

/// `[url without its port, url with the default port]`; either is `url` itself when there is
/// nothing to strip or add.
fn port_variants(url: &str) -> [Cow<'_, str>; 2] {
    let Some(authority) = Authority::find(url) else {
        return [Cow::Borrowed(url), Cow::Borrowed(url)];
    };
    match authority.port_start {
        Some(port_start) => [
            Cow::Owned(format!("{}{}", &url[..port_start], &url[authority.end..])),
            Cow::Borrowed(url),
        ],
        None => {
            let scheme = &url[..authority.scheme_end];
            let default_port = if scheme.eq_ignore_ascii_case("https") {
                ":443"
            } else if scheme.eq_ignore_ascii_case("http") {
                ":80"
            } else {
                return [Cow::Borrowed(url), Cow::Borrowed(url)];
            };
            let (head, tail) = url.split_at(authority.end);
            [
                Cow::Borrowed(url),
                Cow::Owned(format!("{head}{default_port}{tail}")),
            ]
        }
    }
}

/// Byte offsets of the authority (`user@host:port`) of an absolute URL.
struct Authority {
    /// Where the scheme ends (the offset of `://`).
    scheme_end: usize,
    /// The offset of the `:` before the port, if a port is given.
    port_start: Option<usize>,
    /// The offset just past the authority.
    end: usize,
}

impl Authority {
    fn find(url: &str) -> Option<Authority> {
        let scheme_end = url.find("://")?;
        let start = scheme_end + 3;
        let end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |offset| start + offset);
        let host_start = url[start..end]
            .rfind('@')
            .map_or(start, |at| start + at + 1);
        let host_port = &url[host_start..end];
        // An IPv6 literal (`[::1]:8080`) has colons of its own; the port follows the `]`.
        let after_host = if host_port.starts_with('[') {
            host_port
                .find(']')
                .map_or(host_port.len(), |close| close + 1)
        } else {
            0
        };
        let port_start = host_port[after_host..]
            .rfind(':')
            .map(|colon| host_start + after_host + colon);
        Some(Authority {
            scheme_end,
            port_start,
            end,
        })
    }
}

#[cfg(test)]
mod tests;
