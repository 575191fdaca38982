//! The test vectors of twilio-python's `request_validator` tests (reference §7), plus the
//! port tolerance and tampering cases around them.

use super::*;

const TOKEN: &str = "12345";
const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

/// The call parameters of the SDK tests, deliberately not in sorted order.
fn call_params() -> Vec<(String, String)> {
    pairs(&[
        ("To", "+18005551212"),
        ("From", "+14158675309"),
        ("Digits", "1234"),
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
    ])
}

#[test]
fn signs_the_url_followed_by_the_sorted_params() {
    assert_eq!(
        signed_data(URL, &call_params()),
        "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309\
         Digits1234From+14158675309To+18005551212"
    );
    assert_eq!(
        sign(TOKEN, URL, &call_params()),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    );
}

#[test]
fn signs_urls_with_ports_as_given() {
    let cases = [
        (
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ),
        (
            "http://mycompany.com:80/myapp.php?foo=1&bar=2",
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        ),
        (
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(sign(TOKEN, url, &call_params()), expected, "{url}");
    }
}

#[test]
fn repeated_names_and_values_are_sorted_and_deduplicated() {
    let params = pairs(&[
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]);
    assert_eq!(sign(TOKEN, URL, &params), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
}

#[test]
fn json_bodies_are_signed_through_the_body_hash_in_the_url() {
    let url = format!(
        "{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    );
    assert_eq!(sign(TOKEN, &url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
    assert!(verify(TOKEN, &url, &[], "a9nBmqA0ju/hNViExpshrM61xv4="));
}

#[test]
fn verifies_a_valid_signature_whatever_the_param_order() {
    let mut reversed = call_params();
    reversed.reverse();
    assert!(verify(
        TOKEN,
        URL,
        &call_params(),
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
    assert!(verify(
        TOKEN,
        URL,
        &reversed,
        "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    ));
}

#[test]
fn tolerates_a_port_added_or_removed_on_the_way() {
    let cases = [
        // Signed without a port, received with one: the port is stripped.
        (
            "https://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ),
        // Signed with a non-default port, received with it: kept as given.
        (
            "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
        // Signed with the default port, received without: the default port is added.
        (URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        ),
    ];
    for (url, signature) in cases {
        assert!(verify(TOKEN, url, &call_params(), signature), "{url}");
    }
}

#[test]
fn rejects_a_wrong_token_a_changed_field_or_url_and_garbage() {
    let signature = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";
    assert!(!verify("54321", URL, &call_params(), signature));

    let mut changed = call_params();
    changed[0].1 = "+18005551213".to_owned();
    assert!(!verify(TOKEN, URL, &changed, signature));

    let mut added = call_params();
    added.push(("ErrorCode".to_owned(), "30003".to_owned()));
    assert!(!verify(TOKEN, URL, &added, signature));

    assert!(!verify(
        TOKEN,
        "https://mycompany.com/myapp.php?foo=1&bar=3",
        &call_params(),
        signature
    ));
    for garbage in ["", "not base64!", "RSOYDt4T1cUTdK1PDd93", "AAAA"] {
        assert!(!verify(TOKEN, URL, &call_params(), garbage), "{garbage:?}");
    }
}

#[test]
fn finds_the_port_behind_credentials_and_ipv6_literals() {
    let [without, with] = port_variants("http://user:pw@[::1]:8080/cb?x=1");
    assert_eq!(without, "http://user:pw@[::1]/cb?x=1");
    assert_eq!(with, "http://user:pw@[::1]:8080/cb?x=1");

    let [without, with] = port_variants("https://[::1]/cb");
    assert_eq!(without, "https://[::1]/cb");
    assert_eq!(with, "https://[::1]:443/cb");

    let [without, with] = port_variants("http://example.com");
    assert_eq!(without, "http://example.com");
    assert_eq!(with, "http://example.com:80");

    let [without, with] = port_variants("not a url");
    assert_eq!(
        (without.as_ref(), with.as_ref()),
        ("not a url", "not a url")
    );
}
