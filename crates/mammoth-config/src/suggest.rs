//! "Did you mean `x`?" hints for unknown keys and values.

/// The number of single-character edits (insert, delete, replace) turning `a` into `b`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0usize; b.len().saturating_add(1)];
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(current.len());
        row.push(i.saturating_add(1));
        for (j, cb) in b.iter().enumerate() {
            let replace = previous
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(usize::from(ca != *cb));
            let delete = previous
                .get(j.saturating_add(1))
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let insert = row.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            row.push(replace.min(delete).min(insert));
        }
        current = row;
        std::mem::swap(&mut previous, &mut current);
    }
    previous.last().copied().unwrap_or(0)
}

fn normalize(s: &str) -> String {
    s.to_ascii_lowercase().replace('-', "_")
}

/// The candidate closest to `name`, if one is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let wanted = normalize(name);
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    candidates
        .iter()
        .map(|c| (edit_distance(&wanted, &normalize(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A hint for an unknown `name`: "did you mean `x`?", else the list of what is allowed.
pub fn hint(name: &str, candidates: &[&str]) -> String {
    match closest(name, candidates) {
        Some(best) => format!("did you mean `{best}`?"),
        None if candidates.is_empty() => "remove it".to_owned(),
        None => {
            let all: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("expected one of: {}", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn typo_suggests_the_nearest_key_and_far_names_list_all() {
        assert_eq!(
            closest("evnt_store", &["event_store", "message_bus"]),
            Some("event_store")
        );
        assert_eq!(
            closest("max-attempts", &["max_attempts", "backoff"]),
            Some("max_attempts")
        );
        assert_eq!(closest("zzz", &["event_store"]), None);
        assert_eq!(hint("zzz", &["a", "b"]), "expected one of: `a`, `b`");
    }
}
