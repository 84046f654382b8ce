//! Small validators of values written in the file.

use crate::proto::command::HttpStatusRange;

/// `"any"`, `"2xx"`, `"200-399"` or `"404"`, within 100-599.
pub(super) fn parse_status_range(spec: &str) -> Option<HttpStatusRange> {
    let spec = spec.trim();
    let code = |text: &str| -> Option<u32> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok()
    };
    let (start, end) = if spec.eq_ignore_ascii_case("any") {
        (100, 599)
    } else if let [class @ b'1'..=b'5', x, y] = spec.as_bytes()
        && x.eq_ignore_ascii_case(&b'x')
        && y.eq_ignore_ascii_case(&b'x')
    {
        let start = u32::from(class - b'0') * 100;
        (start, start + 99)
    } else if let Some((start, end)) = spec.split_once('-') {
        (code(start)?, code(end)?)
    } else {
        let single = code(spec)?;
        (single, single)
    };
    ((100..=599).contains(&start) && (100..=599).contains(&end) && start <= end)
        .then_some(HttpStatusRange { start, end })
}

/// An RFC 9110 token: what a header or cookie name may be made of.
pub(super) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Control characters that would end a header line early (tab is allowed).
pub(super) fn has_forbidden_controls(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, 0x00..=0x08 | 0x0A..=0x1F | 0x7F))
}

/// A TCP frontend's SNI: an ASCII hostname, or one leading `*.` label;
/// lowercased.
pub(super) fn normalize_sni(sni: &str) -> Result<String, String> {
    let invalid = || {
        format!(
            "{sni:?} is not an SNI pattern: expected a hostname such as \"db.example.com\" or \"*.example.com\""
        )
    };
    if !sni.is_ascii() {
        return Err(format!(
            "{sni:?} is not ASCII: write internationalized names in their xn-- form"
        ));
    }
    let rest = sni.strip_prefix("*.").unwrap_or(sni);
    if rest.is_empty()
        || rest.contains('*')
        || rest.contains('/')
        || rest.split('.').any(str::is_empty)
    {
        return Err(invalid());
    }
    Ok(sni.to_ascii_lowercase())
}

/// A backend `unix_path`: an absolute path or an `@abstract` name that fits
/// a `sockaddr_un`.
pub(super) fn check_unix_path(path: &str) -> Result<(), String> {
    if path.contains('\0') {
        return Err("a unix_path cannot hold a NUL byte".to_owned());
    }
    let name = match path.strip_prefix('@') {
        Some("") => return Err("an abstract unix_path needs a name after '@'".to_owned()),
        Some(name) => name,
        None if path.starts_with('/') => path,
        None => {
            return Err(format!(
                "{path:?} is neither an absolute path nor an @abstract name"
            ));
        }
    };
    if name.len() > 107 {
        return Err("a unix_path is at most 107 bytes long".to_owned());
    }
    Ok(())
}

/// A network interface name as Linux accepts it.
pub(super) fn check_interface_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b.is_ascii_control());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a network interface name (1 to 15 bytes, no '/', ':' or spaces)"
        ))
    }
}

/// A host made only of numeric dot-separated parts (decimal, octal or
/// `0x` hex) that did not parse as an IP address.
pub(super) fn is_numeric_shorthand(host: &str) -> bool {
    host.split('.').all(|part| {
        !part.is_empty()
            && match part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
                None => part.bytes().all(|b| b.is_ascii_digit()),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_ranges_take_sozus_four_forms() {
        let range = |spec| parse_status_range(spec).map(|r| (r.start, r.end));
        assert_eq!(range("any"), Some((100, 599)));
        assert_eq!(range("2xx"), Some((200, 299)));
        assert_eq!(range("5XX"), Some((500, 599)));
        assert_eq!(range("200-399"), Some((200, 399)));
        assert_eq!(range(" 404 "), Some((404, 404)));
        for bad in [
            "", "6xx", "99", "600", "399-200", "+200", "2x", "abc", "200-",
        ] {
            assert_eq!(range(bad), None, "{bad}");
        }
    }

    #[test]
    fn sni_patterns_are_hostnames_or_one_leading_wildcard() {
        assert_eq!(normalize_sni("DB.Example.com").unwrap(), "db.example.com");
        assert_eq!(normalize_sni("*.example.com").unwrap(), "*.example.com");
        for bad in [
            "", "*", "*.", "a.*.com", "*.*.com", "a..b", ".a", "/re/.com", "é.com",
        ] {
            assert!(normalize_sni(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_shorthands_are_recognised() {
        for shorthand in ["010.0.0.1", "1.2.3", "0x7f.1", "127"] {
            assert!(is_numeric_shorthand(shorthand), "{shorthand}");
        }
        for name in ["localhost", "dead.beef", "123.example.com", "a"] {
            assert!(!is_numeric_shorthand(name), "{name}");
        }
    }

    #[test]
    fn unix_paths_and_interfaces_are_checked() {
        assert!(check_unix_path("/run/app.sock").is_ok());
        assert!(check_unix_path("@app").is_ok());
        for bad in ["app.sock", "@", "/a\0b", &format!("/{}", "x".repeat(200))] {
            assert!(check_unix_path(bad).is_err(), "{bad}");
        }
        assert!(check_interface_name("eth0").is_ok());
        for bad in ["", "..", "a/b", "a b", "averyveryverylongname"] {
            assert!(check_interface_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_and_header_values() {
        assert!(is_token("X-Forwarded-For"));
        assert!(!is_token("Bad Header"));
        assert!(!is_token(""));
        assert!(has_forbidden_controls("a\r\nb"));
        assert!(!has_forbidden_controls("a\tb"));
    }
}
