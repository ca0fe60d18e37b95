//! How personal data is shown to staff: masked by default, in full only to tokens with the
//! `pii:read` scope (and then audited by the shell).

/// `zhang@example.com` → `z***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// `+8613812345678` → `138****5678`; other countries keep their code: `+1******0100`.
pub fn mask_phone(e164: &str) -> String {
    let digits: Vec<char> = e164.chars().filter(char::is_ascii_digit).collect();
    if let Some(national) = e164.strip_prefix("+86").filter(|n| n.len() == 11) {
        return format!("{}****{}", &national[..3], &national[7..]);
    }
    if digits.len() < 6 {
        return "***".into();
    }
    let tail: String = digits[digits.len() - 4..].iter().collect();
    let head: String = digits[..1].iter().collect();
    format!("+{head}{}{tail}", "*".repeat(digits.len() - 5))
}

/// `张伟` → `张*`, `Wei Zhang` → `W********`: the first character only.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => format!("{first}{}", "*".repeat(chars.count().clamp(1, 8))),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_keep_the_first_letter_and_the_domain() {
        assert_eq!(mask_email("zhang@example.com"), "z***@example.com");
        assert_eq!(mask_email("broken"), "***");
    }

    #[test]
    fn chinese_mobiles_show_the_familiar_mask() {
        assert_eq!(mask_phone("+8613812345678"), "138****5678");
        assert_eq!(mask_phone("+14155550100"), "+1******0100");
        assert_eq!(mask_phone("+1"), "***");
    }

    #[test]
    fn names_show_one_character() {
        assert_eq!(mask_name("张伟"), "张*");
        assert_eq!(mask_name("Wei Zhang"), "W********");
        assert_eq!(mask_name(""), "");
    }
}
