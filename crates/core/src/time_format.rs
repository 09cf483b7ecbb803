//! Spark's date and time patterns, for the CSV source's formats and the expressions that
//! take a pattern (`date_format`, `to_timestamp`).

/// A Spark (Java `DateTimeFormatter`) pattern as a chrono one: `yyyy-MM-dd HH:mm:ss` becomes
/// `%Y-%m-%d %H:%M:%S`. Quoted text stays literal.
pub fn java_to_chrono(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let spec = match (c, run) {
            ('y', 2) => "%y",
            ('y', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', n) => match n {
                1..=3 => "%3f",
                4..=6 => "%6f",
                _ => "%9f",
            },
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('a', _) => "%p",
            ('D', _) => "%j",
            ('X' | 'x' | 'Z', _) => "%:z",
            ('%', _) => "%%",
            _ => "",
        };
        if spec.is_empty() {
            out.extend(std::iter::repeat_n(c, run));
        } else {
            out.push_str(spec);
        }
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_patterns_become_chrono_patterns() {
        assert_eq!(java_to_chrono("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(java_to_chrono("dd/MM/yy 'at' HH"), "%d/%m/%y at %H");
        assert_eq!(
            java_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS"),
            "%Y-%m-%dT%H:%M:%S.%3f"
        );
    }
}
