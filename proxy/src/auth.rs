//! HTTP Basic authentication against a cluster's authorized hashes.
//!
//! A cluster lists `user:hex(sha256(password))` entries. A request carries
//! `Authorization: Basic base64(user:password)`. Every entry is compared,
//! in time that does not depend on where (or whether) the match is, so the
//! answer time tells nothing about the list.

use base64::Engine;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

/// Whether the request's credentials match one of `authorized`.
pub fn authorized(headers: &HeaderMap, authorized: &[String]) -> bool {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .map(http::HeaderValue::as_bytes);
    authorized_value(value, authorized)
}

/// Whether an `Authorization` value (the first such header of a request,
/// if any) matches one of `authorized`.
pub fn authorized_value(value: Option<&[u8]>, authorized: &[String]) -> bool {
    let Some(credentials) = value
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| {
            value
                .strip_prefix("Basic ")
                .or_else(|| value.strip_prefix("basic "))
        })
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
    else {
        return false;
    };
    let Some(colon) = credentials.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&credentials[..colon], &credentials[colon + 1..]);
    let mut candidate = user.to_vec();
    candidate.push(b':');
    candidate.extend_from_slice(hex::encode(Sha256::digest(password)).as_bytes());
    let mut matched = Choice::from(0);
    for entry in authorized {
        // Hex digests may be written in either case; user names are exact.
        let normalized = match entry.rsplit_once(':') {
            Some((user, hash)) => format!("{user}:{}", hash.to_ascii_lowercase()),
            None => entry.clone(),
        };
        // Inputs of different lengths compare unequal at once: the length
        // of an entry is no secret, its bytes are.
        matched |= normalized.as_bytes().ct_eq(&candidate);
    }
    bool::from(matched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn matching_credentials_pass_and_others_fail() {
        // sha256("secret")
        let entry =
            "alice:2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b".to_owned();
        let mut headers = HeaderMap::new();
        let good = base64::engine::general_purpose::STANDARD.encode("alice:secret");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Basic {good}")).unwrap(),
        );
        assert!(authorized(&headers, std::slice::from_ref(&entry)));
        let bad = base64::engine::general_purpose::STANDARD.encode("alice:wrong");
        headers.insert(
            "authorization",
            HeaderValue::from_str(&format!("Basic {bad}")).unwrap(),
        );
        assert!(!authorized(&headers, std::slice::from_ref(&entry)));
        assert!(!authorized(&HeaderMap::new(), &[entry]));
    }
}
