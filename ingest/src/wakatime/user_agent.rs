//! The editor and operating system of a heartbeat, read from the
//! WakaTime User-Agent:
//!
//! - Python CLI: `wakatime/13.1.0 (Linux-6.1.0-x86_64-with-glibc2.36) Python3.11.7.final.0 vim/9.0 vim-wakatime/11.0.0`
//! - Go CLI: `wakatime/v1.73.0 (linux-6.1.0-amd64) go1.21.1 vscode/1.85.0 vscode-wakatime/24.4.0`
//!
//! The editor is the name of the plugin (`vim-wakatime` → `vim`), or else
//! of the last `name/version` word; the OS is the first word in
//! parentheses. Anything else is "Unknown".

use crate::limits::MAX_HEARTBEAT_FIELD_CHARS;

pub const UNKNOWN: &str = "Unknown";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub editor: String,
    pub os: String,
}

pub fn parse(user_agent: &str) -> Client {
    Client {
        editor: editor(user_agent).unwrap_or_else(|| UNKNOWN.to_owned()),
        os: os(user_agent).unwrap_or_else(|| UNKNOWN.to_owned()),
    }
}

fn editor(ua: &str) -> Option<String> {
    // Outside the parentheses: `name/version` words.
    let outside: String = {
        let mut depth = 0usize;
        ua.chars()
            .map(|c| {
                match c {
                    '(' => depth += 1,
                    ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if depth > 0 || c == ')' { ' ' } else { c }
            })
            .collect()
    };
    let words: Vec<&str> = outside
        .split_whitespace()
        .filter_map(|w| w.split_once('/').map(|(name, _)| name))
        .filter(|name| !name.is_empty() && !name.eq_ignore_ascii_case("wakatime"))
        .collect();
    let name = words
        .iter()
        .rev()
        .find_map(|w| w.strip_suffix("-wakatime"))
        .or_else(|| words.last().copied())?;
    Some(pretty(name))
}

fn os(ua: &str) -> Option<String> {
    let start = ua.find('(')? + 1;
    let inner = &ua[start..];
    let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
    let first = inner.split(['-', ' ', ';', '_']).next()?.trim();
    let os = match first.to_ascii_lowercase().as_str() {
        "" => return None,
        "linux" => "Linux".to_owned(),
        "darwin" | "macos" | "mac" => "macOS".to_owned(),
        "windows" | "win32" | "cygwin" | "msys" => "Windows".to_owned(),
        "freebsd" => "FreeBSD".to_owned(),
        "openbsd" => "OpenBSD".to_owned(),
        "netbsd" => "NetBSD".to_owned(),
        _ => first.to_owned(),
    };
    Some(limit(os))
}

/// Editor names as people write them (`vscode` → `VS Code`).
pub fn pretty(name: &str) -> String {
    let known = match name.to_ascii_lowercase().as_str() {
        "vim" => "Vim",
        "neovim" | "nvim" => "Neovim",
        "vscode" | "code" => "VS Code",
        "emacs" => "Emacs",
        "sublime" | "sublime_text" => "Sublime Text",
        "intellij" | "jetbrains" | "intellijidea" => "JetBrains",
        "xcode" => "Xcode",
        "zed" => "Zed",
        "helix" => "Helix",
        _ => return limit(name.to_owned()),
    };
    known.to_owned()
}

fn limit(mut s: String) -> String {
    if s.chars().count() > MAX_HEARTBEAT_FIELD_CHARS {
        s = s.chars().take(MAX_HEARTBEAT_FIELD_CHARS).collect();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_we_know() {
        for (ua, editor, os) in [
            (
                "wakatime/13.1.0 (Linux-6.1.0-x86_64-with-glibc2.36) Python3.11.7.final.0 vim/9.0 vim-wakatime/11.0.0",
                "Vim",
                "Linux",
            ),
            (
                "wakatime/v1.73.0 (linux-6.1.0-amd64) go1.21.1 vscode/1.85.0 vscode-wakatime/24.4.0",
                "VS Code",
                "Linux",
            ),
            (
                "wakatime/v1.73.0 (darwin-23.1.0-arm64) go1.21.1 emacs/29.1 emacs-wakatime/1.0.2",
                "Emacs",
                "macOS",
            ),
            (
                "wakatime/v1.73.0 (windows-10.0-amd64) go1.21.1 kakoune/2023",
                "kakoune",
                "Windows",
            ),
            ("curl/8.0", "curl", UNKNOWN),
            ("", UNKNOWN, UNKNOWN),
            ("wakatime/1.0 (weird", UNKNOWN, "weird"),
        ] {
            assert_eq!(
                parse(ua),
                Client {
                    editor: editor.into(),
                    os: os.into()
                },
                "{ua}"
            );
        }
    }
}
